#include "eval/evaluation.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/atomic_file.h"
#include "inference/metrics/bleu.h"
#include "inference/metrics/rouge.h"
#include "kernels/check.h"
#include "models/file_util.h"
#include "scheduler_runtime/kv_classifier.h"
#include "scheduler_runtime/scheduled_generation.h"

namespace pmpd::eval {

std::string FormatQuantile(double q) {
  std::string s = absl::StrFormat("%.4f", q);
  while (s.size() > 4 && s.back() == '0') s.pop_back();  // "0.2000" -> "0.20", "0.1125" stays
  return s;
}

std::string EvalMethod::Describe() const {
  if (!classifier_dir.empty()) {
    return absl::StrCat(
        "prefill ", prefill_precision, ", learned ", absl::StrJoin(precisions, "->"),
        switch_quantile > 0 ? " at quantile " + FormatQuantile(switch_quantile) : "", " (",
        classifier_dir, ")");
  }
  std::string s =
      absl::StrCat("prefill ", prefill_precision, ", decode ", absl::StrJoin(precisions, "->"));
  if (!switch_steps.empty()) absl::StrAppend(&s, " at ", absl::StrJoin(switch_steps, ","));
  return s;
}

EvalPrompts FitPrompts(const EvalTask& task, const models::Tokenizer& tok, int context,
                       int max_new_tokens, const models::ChatTemplate* chat) {
  const int budget = std::max(2, context - std::max(1, max_new_tokens));
  auto encode = [&](const std::string& prompt) {
    if (chat == nullptr) return tok.Encode(prompt, true);
    auto ids = chat->Encode(tok, {{"user", prompt}}, /*add_generation_prompt=*/true);
    PMPD_CHECK(ids.ok(), "a single user message is a valid conversation");
    return std::move(*ids);
  };
  EvalPrompts out;
  if (chat != nullptr) {
    out.stop_ids = chat->StopIds(tok);
    out.chat_template = chat->name();
  }
  for (const EvalExample& ex : task.examples) {
    std::vector<int> ids = encode(ex.Prompt());
    if (static_cast<int>(ids.size()) > budget) {
      // Longest content prefix (cut at a space) that fits: binary search over its length.
      size_t lo = 0, hi = ex.content.size();
      while (lo < hi) {
        const size_t mid = (lo + hi + 1) / 2;
        const size_t cut = ex.content.rfind(' ', mid);
        const std::string content = ex.content.substr(0, cut == std::string::npos ? 0 : cut);
        if (static_cast<int>(encode(ex.prefix + content + ex.suffix).size()) <= budget) {
          lo = mid;
        } else {
          hi = mid - 1;
        }
      }
      const size_t cut = ex.content.rfind(' ', lo);
      ids =
          encode(ex.prefix + ex.content.substr(0, cut == std::string::npos ? 0 : cut) + ex.suffix);
      if (static_cast<int>(ids.size()) > budget) ids.resize(budget);  // template alone too long
    }
    out.ids.push_back(std::move(ids));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> GreedyOutputs(inference::Engine& model,
                                                       const models::Tokenizer& tok,
                                                       const EvalPrompts& prompts,
                                                       int max_new_tokens, int precision) {
  std::vector<std::string> out;
  for (const auto& p : prompts.ids) {
    auto r = scheduler::GreedyGeneration(model, p, max_new_tokens, precision, prompts.stop_ids);
    if (!r.ok()) return r.status();
    out.push_back(tok.Decode(r->text_ids()));
  }
  return out;
}

PairedDifference Paired(const std::vector<double>& a, const std::vector<double>& b) {
  PairedDifference d;
  if (a.size() != b.size() || a.size() < 2) return d;
  d.n = static_cast<int>(a.size());
  for (size_t i = 0; i < a.size(); ++i) d.mean += a[i] - b[i];
  d.mean /= d.n;
  double ss = 0;
  for (size_t i = 0; i < a.size(); ++i) ss += (a[i] - b[i] - d.mean) * (a[i] - b[i] - d.mean);
  d.standard_error = std::sqrt(ss / (d.n - 1) / d.n);
  return d;
}

QualityScores Score(QualityMetric metric, const std::vector<std::string>& outputs,
                    const std::vector<std::vector<std::string>>& references) {
  QualityScores q;
  if (outputs.empty()) return q;
  if (metric == QualityMetric::kRougeL) {
    double s = 0;
    for (size_t i = 0; i < outputs.size(); ++i) {
      const double f = metrics::RougeLMax(references[i], outputs[i]).fmeasure;
      s += f;
      q.per_example.push_back(100.0 * f);
    }
    q.quality = 100.0 * s / outputs.size();
    return q;
  }
  size_t streams = 0;
  for (const auto& r : references) streams = std::max(streams, r.size());
  std::vector<std::vector<std::string>> by_stream(streams,
                                                  std::vector<std::string>(outputs.size()));
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (size_t r = 0; r < streams; ++r)
      by_stream[r][i] = references[i][std::min(r, references[i].size() - 1)];
  }
  q.quality = metrics::CorpusBleu(outputs, by_stream).score;
  return q;
}

double Quality(QualityMetric metric, const std::vector<std::string>& outputs,
               const std::vector<std::vector<std::string>>& references) {
  return Score(metric, outputs, references).quality;
}

absl::StatusOr<EvalRow> RunMethod(inference::Engine& model, const models::Tokenizer& tok,
                                  const EvalMethod& method, const EvalPrompts& prompts,
                                  const std::vector<std::vector<std::string>>& references,
                                  QualityMetric metric, int max_new_tokens,
                                  const std::function<void(int, int)>& progress) {
  absl::StatusOr<std::unique_ptr<scheduler::PrecisionScheduler>> sched;
  if (method.classifier_dir.empty()) {
    sched = scheduler::MakeStaticScheduler(method.precisions, method.switch_steps);
  } else {
    scheduler::LearnedSchedulerOptions lo;
    lo.classifier_dir = method.classifier_dir;
    lo.precisions = method.precisions;
    lo.kv_heads = model.config().num_key_value_heads;
    lo.head_dim = model.config().head_dim;
    lo.device = inference::DeviceName(model.device());
    lo.switch_quantile = method.switch_quantile;
    sched = scheduler::MakeLearnedScheduler(lo);
  }
  if (!sched.ok()) return sched.status();
  scheduler::ScheduledGenerationOptions opt;
  opt.generation.max_new_tokens = max_new_tokens;
  opt.generation.stop_ids = prompts.stop_ids;
  opt.prefill_precision = method.prefill_precision;
  EvalRow row;
  row.method = method.name;
  row.schedule = method.Describe();
  double bits = 0, decode_ms = 0, schedule_us = 0;
  int64_t tokens = 0, steps = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto r = scheduler::GenerateScheduled(model, prompts.ids[i], opt, sched->get());
    if (!r.ok()) return r.status();
    double example_bits = 0;
    for (int p : r->token_precisions) example_bits += p;
    bits += example_bits;
    tokens += static_cast<int64_t>(r->token_precisions.size());
    row.example_bits.push_back(
        r->token_precisions.empty() ? 0 : example_bits / r->token_precisions.size());
    decode_ms += r->generation.decode_ms;
    schedule_us += r->schedule_us;
    steps += r->generation.decode_steps;
    row.outputs.push_back(tok.Decode(r->generation.text_ids()));
    if (progress) progress(static_cast<int>(i + 1), static_cast<int>(prompts.size()));
  }
  row.examples = static_cast<int>(prompts.size());
  row.avg_bits = tokens > 0 ? bits / tokens : 0;
  row.tokens_per_s = decode_ms > 0 ? 1000.0 * steps / decode_ms : 0;
  row.decode_us_per_step = steps > 0 ? 1000.0 * decode_ms / steps : 0;
  row.scheduler_us_per_prompt = prompts.ids.empty() ? 0 : schedule_us / prompts.size();
  QualityScores scores = Score(metric, row.outputs, references);
  row.quality = scores.quality;
  row.example_quality = std::move(scores.per_example);
  return row;
}

namespace {

// Quality of uniform high precision on the prompts: the reference both calibrations measure
// against.
absl::StatusOr<double> UniformHighQuality(inference::Engine& model, const models::Tokenizer& tok,
                                          int high, const EvalPrompts& prompts,
                                          const std::vector<std::vector<std::string>>& references,
                                          QualityMetric metric, int max_new_tokens) {
  auto row = RunMethod(model, tok, EvalMethod{"high", high, {high}, {}, ""}, prompts, references,
                       metric, max_new_tokens);
  if (!row.ok()) return row.status();
  return row->quality;
}

// Whether `bits` keeps within a bit budget (1e-9 absorbs the averaging's rounding).
bool WithinBudget(double bits, double max_avg_bits) { return bits <= max_avg_bits + 1e-9; }

// The choice rule both calibrations share; `best` is null before the first feasible candidate.
// max_avg_bits < 0: feasible when quality >= min_quality; fewer bits win, then higher quality.
// max_avg_bits >= 0: feasible within that many bits; higher quality wins, then fewer bits.
bool Improves(const EvalRow& row, const EvalRow* best, double min_quality, double max_avg_bits) {
  if (max_avg_bits < 0) {
    return row.quality >= min_quality &&
           (best == nullptr || row.avg_bits < best->avg_bits - 1e-12 ||
            (std::fabs(row.avg_bits - best->avg_bits) <= 1e-12 && row.quality > best->quality));
  }
  return WithinBudget(row.avg_bits, max_avg_bits) &&
         (best == nullptr || row.quality > best->quality + 1e-12 ||
          (std::fabs(row.quality - best->quality) <= 1e-12 && row.avg_bits < best->avg_bits));
}

}  // namespace

absl::StatusOr<CalibrationResult> CalibrateStatic(
    inference::Engine& model, const models::Tokenizer& tok, const std::vector<int>& precisions,
    const EvalPrompts& prompts, const std::vector<std::vector<std::string>>& references,
    QualityMetric metric, int max_new_tokens, double epsilon,
    const std::function<void(int, int)>& progress) {
  if (precisions.size() < 2)
    return absl::InvalidArgumentError("--calibrate-static needs at least two --precisions");
  const int N = max_new_tokens;
  std::vector<int> grid = {0, N / 8, N / 4, N / 2, 3 * N / 4, N};
  grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
  // Every non-decreasing tuple of switch steps over the grid.
  std::vector<std::vector<int>> tuples;
  std::vector<int> cur;
  std::function<void(size_t)> rec = [&](size_t from) {
    if (cur.size() + 1 == precisions.size()) {
      tuples.push_back(cur);
      return;
    }
    for (size_t i = from; i < grid.size(); ++i) {
      cur.push_back(grid[i]);
      rec(i);
      cur.pop_back();
    }
  };
  rec(0);
  CalibrationResult result;
  auto ref = UniformHighQuality(model, tok, precisions.front(), prompts, references, metric,
                                max_new_tokens);
  if (!ref.ok()) return ref.status();
  result.reference_quality = *ref;
  const int total = static_cast<int>(tuples.size() * precisions.size());
  int done = 0;
  bool found = false;
  for (int prefill : precisions) {
    for (const auto& steps : tuples) {
      EvalMethod m{"static", prefill, precisions, steps, ""};
      auto row = RunMethod(model, tok, m, prompts, references, metric, max_new_tokens);
      if (!row.ok()) return row.status();
      row->outputs.clear();
      if (progress) progress(++done, total);
      if (Improves(*row, found ? &result.chosen_row : nullptr, *ref - epsilon,
                   /*max_avg_bits=*/-1)) {
        found = true;
        result.chosen = m;
        result.chosen_row = *row;
      }
      result.candidates.push_back(std::move(*row));
    }
  }
  if (!found)
    result.chosen = EvalMethod{"static", precisions.front(), precisions,
                               std::vector<int>(precisions.size() - 1, N), ""};
  return result;
}

absl::StatusOr<CalibrationResult> CalibrateLearned(
    inference::Engine& model, const models::Tokenizer& tok, const std::vector<int>& precisions,
    const std::string& classifier_dir, const EvalPrompts& prompts,
    const std::vector<std::vector<std::string>>& references, QualityMetric metric,
    int max_new_tokens, double epsilon, double max_avg_bits, double reference_quality,
    const std::function<void(int, int)>& progress) {
  if (precisions.size() < 2)
    return absl::InvalidArgumentError("--calibrate-learned needs at least two --precisions");
  CalibrationResult result;
  const int total = static_cast<int>(std::size(kLearnedQuantileGrid)) +
                    (reference_quality < 0 ? 1 : 0) +
                    (max_avg_bits >= 0 ? kLearnedQuantileRefinements : 0);
  int done = 0;
  if (reference_quality < 0) {
    auto ref = UniformHighQuality(model, tok, precisions.front(), prompts, references, metric,
                                  max_new_tokens);
    if (!ref.ok()) return ref.status();
    reference_quality = *ref;
    if (progress) progress(++done, total);
  }
  result.reference_quality = reference_quality;
  bool found = false;
  auto try_quantile = [&](double q) -> absl::StatusOr<double> {  // its average bits
    EvalMethod m{"learned", precisions.front(), precisions, {}, classifier_dir, q};
    auto row = RunMethod(model, tok, m, prompts, references, metric, max_new_tokens);
    if (!row.ok()) return row.status();
    row->outputs.clear();
    if (progress) progress(++done, total);
    if (Improves(*row, found ? &result.chosen_row : nullptr, reference_quality - epsilon,
                 max_avg_bits)) {
      found = true;
      result.chosen = m;
      result.chosen_row = *row;
    }
    const double bits = row->avg_bits;
    result.candidates.push_back(std::move(*row));
    result.candidate_quantiles.push_back(q);
    return bits;
  };
  for (double q : kLearnedQuantileGrid) {
    if (auto st = try_quantile(q); !st.ok()) return st.status();
  }
  if (max_avg_bits >= 0) {
    // The budget lies between two grid quantiles: lo, the largest within it (0: none is), and
    // hi, the next one. Bisect between them so the choice can come close to the budget.
    const std::vector<double>& q = result.candidate_quantiles;
    auto within = [&](size_t i) {
      return WithinBudget(result.candidates[i].avg_bits, max_avg_bits);
    };
    double lo = 0, hi = -1;
    for (size_t i = 0; i < q.size(); ++i) {  // 0 is argmax, not a quantile: skipped
      if (q[i] > 0 && within(i)) lo = std::max(lo, q[i]);
    }
    for (size_t i = 0; i < q.size(); ++i) {
      if (q[i] > lo && !within(i) && (hi < 0 || q[i] < hi)) hi = q[i];
    }
    for (int r = 0; r < kLearnedQuantileRefinements; ++r) {
      if (hi < 0) {  // every quantile above lo within the budget: nothing to refine
        if (progress) progress(++done, total);
        continue;
      }
      const double mid = 0.5 * (lo + hi);
      auto bits = try_quantile(mid);
      if (!bits.ok()) return bits.status();
      (WithinBudget(*bits, max_avg_bits) ? lo : hi) = mid;
    }
  }
  if (!found) {  // the nearest miss: the best quality, or within a budget the fewest bits
    size_t pick = 0;
    for (size_t i = 1; i < result.candidates.size(); ++i) {
      const EvalRow& c = result.candidates[i];
      const EvalRow& b = result.candidates[pick];
      if (max_avg_bits < 0 ? c.quality > b.quality : c.avg_bits < b.avg_bits) pick = i;
    }
    result.chosen = EvalMethod{"learned", precisions.front(), precisions,
                               {},        classifier_dir,     result.candidate_quantiles[pick]};
  }
  return result;
}

absl::Status WriteEvalCsv(const std::string& path, const std::vector<EvalRow>& rows) {
  const bool second = std::any_of(rows.begin(), rows.end(),
                                  [](const EvalRow& r) { return r.quality_vs_model >= 0; });
  std::string csv = absl::StrCat("method,schedule,examples,avg_bits,quality,",
                                 second ? "quality_vs_model," : "", "tokens_per_s\n");
  for (const auto& r : rows) {
    absl::StrAppend(&csv, r.method, ",\"", r.schedule, "\",", r.examples, ",",
                    absl::StrFormat("%.4f", r.avg_bits), ",", absl::StrFormat("%.4f", r.quality),
                    ",", second ? absl::StrFormat("%.4f,", r.quality_vs_model) : "",
                    absl::StrFormat("%.2f", r.tokens_per_s), "\n");
  }
  return base::WriteFileAtomically(path, csv);
}

absl::Status WriteEvalSvg(const std::string& path, const std::string& title,
                          const std::string& quality_name, const std::vector<EvalRow>& rows) {
  if (rows.empty()) return absl::InvalidArgumentError("no rows to plot");
  double x0 = 1e9, x1 = -1e9, y0 = 1e9, y1 = -1e9;
  for (const auto& r : rows) {
    x0 = std::min(x0, r.avg_bits), x1 = std::max(x1, r.avg_bits);
    y0 = std::min(y0, r.quality), y1 = std::max(y1, r.quality);
  }
  const double xpad = std::max(0.25, 0.1 * (x1 - x0)), ypad = std::max(1.0, 0.1 * (y1 - y0));
  x0 -= xpad, x1 += xpad, y0 -= ypad, y1 += ypad;
  const double W = 640, H = 420, L = 70, R = 30, T = 40, B = 60;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::string s = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "font-family=\"sans-serif\" "
      "font-size=\"13\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%.0f\" y=\"24\" font-size=\"15\">%s</text>\n",
      W, H, L, title);
  absl::StrAppendFormat(
      &s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", L, H - B,
      W - R, H - B);
  absl::StrAppendFormat(
      &s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", L, T, L,
      H - B);
  for (int i = 0; i <= 4; ++i) {
    const double xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
    absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.2f</text>\n",
                          px(xv), H - B + 18, xv);
    absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n",
                          L - 6, py(yv) + 4, yv);
  }
  absl::StrAppendFormat(&s,
                        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">average bits per "
                        "generated token</text>\n",
                        (L + W - R) / 2, H - 18);
  absl::StrAppendFormat(&s,
                        "<text x=\"18\" y=\"%.1f\" transform=\"rotate(-90 18 %.1f)\" "
                        "text-anchor=\"middle\">%s</text>\n",
                        (T + H - B) / 2, (T + H - B) / 2, quality_name);
  // The line through the uniform-precision baselines (rows "uniform-<p>", "high", "low"), by bits:
  // what PMPD has to beat. Without such rows, the line between the lowest- and highest-bit rows.
  std::vector<const EvalRow*> base;
  for (const auto& r : rows) {
    if (absl::StartsWith(r.method, "uniform") || r.method == "high" || r.method == "low")
      base.push_back(&r);
  }
  if (base.size() < 2) {
    base.clear();
    base.push_back(&*std::min_element(rows.begin(), rows.end(),
                                      [](auto& a, auto& b) { return a.avg_bits < b.avg_bits; }));
    base.push_back(&*std::max_element(rows.begin(), rows.end(),
                                      [](auto& a, auto& b) { return a.avg_bits < b.avg_bits; }));
  }
  std::sort(base.begin(), base.end(),
            [](const EvalRow* a, const EvalRow* b) { return a->avg_bits < b->avg_bits; });
  std::string points;
  for (const EvalRow* r : base)
    absl::StrAppendFormat(&points, "%.1f,%.1f ", px(r->avg_bits), py(r->quality));
  absl::StrAppendFormat(
      &s, "<polyline points=\"%s\" fill=\"none\" stroke=\"gray\" stroke-dasharray=\"5,4\"/>\n",
      points);
  absl::StrAppendFormat(
      &s,
      "<text x=\"%.1f\" y=\"%.1f\" fill=\"gray\" font-size=\"11\" text-anchor=\"end\">"
      "dashed: the uniform-precision baselines joined (PMPD should lie above)</text>\n",
      W - R - 4, H - B - 8);
  // The learned sweep (rows learned-q<q>): one curve by bits, small unlabelled points.
  std::vector<const EvalRow*> sweep;
  for (const auto& r : rows) {
    if (absl::StartsWith(r.method, "learned-q")) sweep.push_back(&r);
  }
  if (!sweep.empty()) {
    std::sort(sweep.begin(), sweep.end(),
              [](const EvalRow* a, const EvalRow* b) { return a->avg_bits < b->avg_bits; });
    std::string pts;
    for (const EvalRow* r : sweep)
      absl::StrAppendFormat(&pts, "%.1f,%.1f ", px(r->avg_bits), py(r->quality));
    absl::StrAppendFormat(
        &s, "<polyline points=\"%s\" fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"1.5\"/>\n",
        pts);
    for (const EvalRow* r : sweep) {
      absl::StrAppendFormat(&s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#ff7f0e\"/>\n",
                            px(r->avg_bits), py(r->quality));
    }
    absl::StrAppendFormat(
        &s,
        "<text x=\"%.1f\" y=\"%.1f\" fill=\"#ff7f0e\" font-size=\"11\" text-anchor=\"end\">"
        "orange curve: learned at switch quantiles %s..%s</text>\n",
        W - R - 4, H - B - 22, sweep.front()->method.substr(9), sweep.back()->method.substr(9));
  }
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (absl::StartsWith(r.method, "learned-q")) continue;
    absl::StrAppendFormat(&s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"%s\"/>\n",
                          px(r.avg_bits), py(r.quality), colors[i % 6]);
    const bool right_half = px(r.avg_bits) > L + 0.6 * (W - L - R);  // keep labels inside the frame
    absl::StrAppendFormat(
        &s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">%s (%.2f bits, %.1f)</text>\n",
        px(r.avg_bits) + (right_half ? -9 : 9), py(r.quality) - 8, right_half ? "end" : "start",
        r.method, r.avg_bits, r.quality);
  }
  s += "</svg>\n";
  return base::WriteFileAtomically(path, s);
}

}  // namespace pmpd::eval
