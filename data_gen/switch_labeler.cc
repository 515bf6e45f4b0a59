#include "data_gen/switch_labeler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "dataset/kv_dataset.h"
#include "inference/generator.h"
#include "inference/metrics/rouge.h"
#include "inference/sampler.h"
#include "kernels/check.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "scheduler_runtime/scheduled_generation.h"

namespace pmpd::data_gen {
namespace {

// Scored as text without the end-of-sequence token that ended it (a byte-level BPE tokenizer
// decodes <|im_end|> as text, which would count as a matching word).
double Rouge(const models::Tokenizer& tok, const std::string& reference,
             const std::vector<int>& ids) {
  return metrics::RougeL(reference, DecodeWithoutEos(tok, ids)).fmeasure;
}

absl::Status CheckOptions(int max_context, absl::Span<const int> prompt,
                          const PairLabelOptions& o) {
  if (o.high <= o.low)
    return absl::InvalidArgumentError(
        absl::StrCat("pair ", o.high, " -> ", o.low, " is not decreasing"));
  if (o.candidate_steps.empty() || o.max_new_tokens < 1) {
    return absl::InvalidArgumentError("need at least one candidate step and max_new_tokens >= 1");
  }
  for (size_t i = 0; i < o.candidate_steps.size(); ++i) {
    if (o.candidate_steps[i] < 0 || o.candidate_steps[i] >= o.max_new_tokens ||
        (i > 0 && o.candidate_steps[i] <= o.candidate_steps[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("candidate steps must increase within [0, ", o.max_new_tokens, ")"));
    }
  }
  if (prompt.empty() || static_cast<int>(prompt.size()) + o.max_new_tokens > max_context) {
    return absl::OutOfRangeError(
        absl::StrCat("prompt of ", prompt.size(), " tokens + ", o.max_new_tokens,
                     " new tokens does not fit the context of ", max_context));
  }
  return absl::OkStatus();
}

// Rouge-L of the all-high output and of every branch against the reference, then the label.
void Score(const models::Tokenizer& tok, const std::string& reference, PairLabel* out) {
  out->rouge_l_high = Rouge(tok, reference, out->high_ids);
  out->rouge_l.clear();
  for (const auto& ids : out->branch_ids) out->rouge_l.push_back(Rouge(tok, reference, ids));
  out->label = LabelFromRouge(out->rouge_l, out->rouge_l_high);
}

// Defers every decision to `inner` and copies the engine's last-layer cache when the prefill is
// done, so a scheduled generation also yields the cache the learned scheduler would read (no second
// prefill).
class PrefillKvRecorder : public scheduler::PrecisionScheduler {
 public:
  PrefillKvRecorder(scheduler::PrecisionScheduler& inner, const inference::Engine& engine,
                    std::vector<float>* k, std::vector<float>* v)
      : inner_(inner), engine_(engine), k_(k), v_(v) {}
  void Reset() override { inner_.Reset(); }
  absl::Status OnPrefill(const inference::KvView& kv) override {
    engine_.CopyLastLayerKv(k_, v_);
    return inner_.OnPrefill(kv);
  }
  int NextPrecision(int step, int current, absl::Span<const float> logits) override {
    return inner_.NextPrecision(step, current, logits);
  }
  const std::vector<int>& precisions() const override { return inner_.precisions(); }
  std::string Describe() const override { return inner_.Describe(); }

 private:
  scheduler::PrecisionScheduler& inner_;
  const inference::Engine& engine_;
  std::vector<float>*k_, *v_;
};

}  // namespace

std::string DecodeWithoutEos(const models::Tokenizer& tok, absl::Span<const int> ids) {
  if (!ids.empty() && ids.back() == tok.eos_id()) ids.remove_suffix(1);
  return tok.Decode(ids);
}

int LabelFromRouge(absl::Span<const double> branch_rouge, double high_rouge) {
  return dataset::SwitchLabel(branch_rouge, high_rouge, 0.0);
}

absl::StatusOr<PairLabel> LabelPairBatched(inference::LlamaModel& model,
                                           const models::Tokenizer& tok,
                                           absl::Span<const int> prompt,
                                           const std::string& reference_text,
                                           const PairLabelOptions& o) {
  if (auto st = CheckOptions(model.max_context(), prompt, o); !st.ok()) return st;
  PairLabel out;
  const int n = o.max_new_tokens, T = static_cast<int>(prompt.size());
  const int V = model.config().vocab_size;
  if (auto st = model.SetPrecision(o.high); !st.ok()) return st;
  // The all-hi greedy decode on the main cache (the one generation loop: the last token is not
  // fed), keeping the prefill's last-layer K/V.
  inference::GenerationOptions greedy;
  greedy.max_new_tokens = n;
  inference::GenerationHooks hooks;
  hooks.after_prefill = [&]() {
    model.CopyLastLayerKv(&out.k, &out.v);
    return absl::OkStatus();
  };
  auto high = inference::Generate(model, prompt, greedy, {}, hooks);
  if (!high.ok()) return high.status();
  out.high_ids = std::move(high->new_ids);
  const int high_len = static_cast<int>(out.high_ids.size());
  // Branch c switches at s = max(c, 1): it shares the prompt and high tokens [0, s - 1) with the
  // cache and feeds high token s - 1 at lo. A branch with s >= high_len never switches.
  const int C = static_cast<int>(o.candidate_steps.size());
  out.branch_ids.assign(C, {});
  std::vector<int> active, prefix, feed;
  for (int b = 0; b < C; ++b) {
    const int s = std::max(o.candidate_steps[b], 1);
    out.branch_ids[b].assign(out.high_ids.begin(), out.high_ids.begin() + std::min(s, high_len));
    if (s < high_len) {
      active.push_back(b);
      prefix.push_back(T + s - 1);
      feed.push_back(out.high_ids[s - 1]);
    }
  }
  if (!active.empty()) {
    std::vector<float> logits;
    if (auto st = model.StartBranches(prefix); !st.ok()) return st;
    if (auto st = model.SetPrecision(o.low); !st.ok()) return st;
    while (!active.empty()) {
      if (auto st = model.ForwardBranches(feed, &logits); !st.ok()) return st;
      std::vector<int> keep, next_active, next_feed;
      for (size_t i = 0; i < active.size(); ++i) {
        std::vector<int>& ids = out.branch_ids[active[i]];
        const int next = inference::Argmax(absl::MakeConstSpan(logits).subspan(i * V, V));
        ids.push_back(next);
        if (inference::IsStopToken(greedy, model.config().eos_token_ids, next) ||
            static_cast<int>(ids.size()) == n) {
          continue;
        }
        keep.push_back(static_cast<int>(i));
        next_active.push_back(active[i]);
        next_feed.push_back(next);
      }
      if (!next_active.empty() && next_active.size() < active.size()) {
        if (auto st = model.KeepBranches(keep); !st.ok()) return st;
      }
      active = std::move(next_active);
      feed = std::move(next_feed);
    }
  }
  Score(tok, reference_text, &out);
  return out;
}

absl::StatusOr<PairLabel> LabelPairSequential(inference::Engine& engine,
                                              const models::Tokenizer& tok,
                                              absl::Span<const int> prompt,
                                              const std::string& reference_text,
                                              const PairLabelOptions& o) {
  if (auto st = CheckOptions(engine.max_context(), prompt, o); !st.ok()) return st;
  PairLabel out;
  scheduler::ScheduledGenerationOptions g;
  g.generation.max_new_tokens = o.max_new_tokens;
  auto high = scheduler::MakeStaticScheduler({o.high}, {});
  if (!high.ok()) return high.status();
  PrefillKvRecorder record(**high, engine, &out.k,
                           &out.v);  // the all-high run's prefill is the one stored
  auto r = scheduler::GenerateScheduled(engine, prompt, g, &record);
  if (!r.ok()) return r.status();
  out.high_ids = r->generation.new_ids;
  for (int c : o.candidate_steps) {
    auto sched = scheduler::MakeStaticScheduler({o.high, o.low}, {c});
    if (!sched.ok()) return sched.status();
    auto b = scheduler::GenerateScheduled(engine, prompt, g, sched->get());
    if (!b.ok()) return b.status();
    out.branch_ids.push_back(b->generation.new_ids);
  }
  Score(tok, reference_text, &out);
  return out;
}

namespace {

// One greedy run of LabelOnSlots: a root (its own prefill of the request's prompt, every token at
// `precision`) or a branch (a root's cache up to its switch step, then `precision`).
struct SlotRun {
  int request = 0;
  int precision = 0;
  int parent = -1;            // branches: the root they copy
  int switch_step = 0;        // branches: s = max(c, 1); tokens [0, s) are the root's
  bool record_kv = false;     // roots that are some pair's all-high run: keep the prefill's K/V
  std::vector<int> children;  // roots: their branches
  int unstarted = 0;          // roots: children neither started nor resolved
  int slot = -1;
  bool started = false, done = false;
  std::vector<int> ids;
  std::vector<float> k, v;
};

}  // namespace

PairLabelOptions SlotLabelOptions::Pair(int p) const {
  PMPD_CHECK(p >= 0 && p + 1 < static_cast<int>(precisions.size()), "pair outside the ladder");
  PairLabelOptions po;
  po.high = precisions[p];
  po.low = precisions[p + 1];
  po.candidate_steps = candidate_steps;
  po.max_new_tokens = max_new_tokens;
  return po;
}

absl::StatusOr<std::vector<SlotLabelResult>> LabelOnSlots(
    inference::Engine& engine, const models::Tokenizer& tok,
    absl::Span<const SlotLabelRequest> requests, const SlotLabelOptions& o) {
  const int B = engine.max_batch(), n = o.max_new_tokens;
  if (B < 2) {
    return absl::FailedPreconditionError(absl::StrCat(
        "labelling on sequence slots needs an engine with at least 2 slots, this one has ", B));
  }
  if (o.precisions.size() < 2) {
    return absl::InvalidArgumentError("need at least two precisions (one pair)");
  }
  const int P = static_cast<int>(o.precisions.size());
  for (const SlotLabelRequest& r : requests) {
    for (int p = 0; p + 1 < P; ++p) {
      if (auto st = CheckOptions(engine.max_context(), r.prompt, o.Pair(p)); !st.ok()) return st;
    }
  }
  // The runs: per request the reference run (unless given), each pair's all-high root (the
  // reference run when the precisions agree) and one branch per distinct switch step.
  std::vector<SlotRun> runs;
  std::vector<int> roots;  // in admission order
  std::vector<int> reference_run(requests.size(), -1);
  std::vector<std::vector<int>> high_run(requests.size(), std::vector<int>(P - 1, -1));
  std::vector<std::vector<std::vector<int>>> branch_run(requests.size());
  const auto add_root = [&](int req, int precision) {
    runs.push_back(SlotRun{});
    runs.back().request = req;
    runs.back().precision = precision;
    roots.push_back(static_cast<int>(runs.size()) - 1);
    return static_cast<int>(runs.size()) - 1;
  };
  for (int q = 0; q < static_cast<int>(requests.size()); ++q) {
    if (!requests[q].has_reference) reference_run[q] = add_root(q, o.reference_precision);
    branch_run[q].assign(P - 1, std::vector<int>(o.candidate_steps.size(), -1));
    for (int p = 0; p + 1 < P; ++p) {
      const int h = reference_run[q] >= 0 && o.precisions[p] == o.reference_precision
                        ? reference_run[q]
                        : add_root(q, o.precisions[p]);
      high_run[q][p] = h;
      runs[h].record_kv = true;
      for (size_t c = 0; c < o.candidate_steps.size(); ++c) {
        const int s = std::max(o.candidate_steps[c], 1);
        if (c > 0 && std::max(o.candidate_steps[c - 1], 1) == s) {  // candidates 0 and 1
          branch_run[q][p][c] = branch_run[q][p][c - 1];
          continue;
        }
        SlotRun b;
        b.request = q;
        b.precision = o.precisions[p + 1];
        b.parent = h;
        b.switch_step = s;
        runs.push_back(std::move(b));
        branch_run[q][p][c] = static_cast<int>(runs.size()) - 1;
        runs[h].children.push_back(branch_run[q][p][c]);
        ++runs[h].unstarted;
      }
    }
  }

  inference::GenerationOptions greedy;  // the stopping rule of every generation loop
  greedy.max_new_tokens = n;
  const auto& eos = engine.config().eos_token_ids;
  const auto stops = [&](const SlotRun& r) {
    return static_cast<int>(r.ids.size()) >= n || inference::IsStopToken(greedy, eos, r.ids.back());
  };
  std::vector<int> slot_run(B, -1);  // which run holds each slot
  int roots_holding = 0;
  const auto release = [&](int i) {
    SlotRun& r = runs[i];
    if (r.slot < 0 || !r.done || r.unstarted > 0) return;
    slot_run[r.slot] = -1;
    r.slot = -1;
    if (r.parent < 0) --roots_holding;
  };
  const auto free_slot = [&]() {
    for (int s = 0; s < B; ++s) {
      if (slot_run[s] < 0) return s;
    }
    return -1;
  };
  // Starts (or resolves) the children of root i whose switch step it has reached.
  const auto start_children = [&](int i) -> absl::Status {
    SlotRun& root = runs[i];
    const int T = static_cast<int>(requests[root.request].prompt.size());
    for (int c : root.children) {
      SlotRun& b = runs[c];
      if (b.started) continue;
      const int emitted = static_cast<int>(root.ids.size());
      if (root.done && b.switch_step >= emitted) {
        b.ids = root.ids;  // the all-high output ended first: it never switches
        b.started = b.done = true;
        --root.unstarted;
        continue;
      }
      if (emitted < b.switch_step) continue;  // the root has not reached the switch yet
      const int slot = free_slot();
      if (slot < 0) return absl::OkStatus();  // later, when a slot frees
      if (auto st = engine.CopySequence(root.slot, slot, T + b.switch_step - 1); !st.ok())
        return st;
      b.slot = slot;
      slot_run[slot] = c;
      b.ids.assign(root.ids.begin(), root.ids.begin() + b.switch_step);
      b.started = true;
      --root.unstarted;
    }
    release(i);
    return absl::OkStatus();
  };

  size_t next_root = 0;
  int remaining = static_cast<int>(runs.size());
  std::vector<int> slots, feed, argmax;
  while (remaining > 0) {
    bool progressed = false;
    // Branches first: they free their roots' slots.
    for (int i : roots) {
      if (runs[i].slot >= 0 && runs[i].unstarted > 0) {
        const int before = runs[i].unstarted;
        if (auto st = start_children(i); !st.ok()) return st;
        progressed = progressed || runs[i].unstarted != before;
      }
    }
    // New roots while a slot is free and one slot stays out of the roots' hands.
    while (next_root < roots.size() && roots_holding < B - 1) {
      const int slot = free_slot();
      if (slot < 0) break;
      const int i = roots[next_root++];
      SlotRun& r = runs[i];
      const SlotLabelRequest& req = requests[r.request];
      int first = 0;
      if (auto st = engine.SelectSequence(slot); !st.ok()) return st;
      engine.Reset();
      if (auto st = engine.SetPrecision(r.precision); !st.ok()) return st;
      if (auto st = engine.Prefill(req.prompt, nullptr, &first); !st.ok()) return st;
      if (r.record_kv) engine.CopyLastLayerKv(&r.k, &r.v);
      r.slot = slot;
      slot_run[slot] = i;
      ++roots_holding;
      r.started = true;
      r.ids.push_back(first);
      r.done = stops(r);
      if (auto st = start_children(i); !st.ok()) return st;
      progressed = true;
    }
    // One decode step of every running run, one DecodeBatch per precision (highest first).
    std::vector<int> precisions;
    for (int s = 0; s < B; ++s) {
      if (slot_run[s] >= 0 && !runs[slot_run[s]].done)
        precisions.push_back(runs[slot_run[s]].precision);
    }
    std::sort(precisions.rbegin(), precisions.rend());
    precisions.erase(std::unique(precisions.begin(), precisions.end()), precisions.end());
    for (int p : precisions) {
      slots.clear();
      feed.clear();
      std::vector<int> members;
      for (int s = 0; s < B; ++s) {
        const int i = slot_run[s];
        if (i >= 0 && !runs[i].done && runs[i].precision == p) {
          members.push_back(i);
          slots.push_back(s);
          feed.push_back(runs[i].ids.back());
        }
      }
      if (slots.empty()) continue;
      if (auto st = engine.SetPrecision(p); !st.ok()) return st;
      if (auto st = engine.DecodeBatch(slots, feed, nullptr, &argmax); !st.ok()) return st;
      for (size_t m = 0; m < members.size(); ++m) {
        SlotRun& r = runs[members[m]];
        r.ids.push_back(argmax[m]);
        r.done = stops(r);
      }
      progressed = true;
    }
    // Ended runs give their slots back (roots once their branches have started).
    remaining = 0;
    for (int i = 0; i < static_cast<int>(runs.size()); ++i) {
      if (runs[i].done && runs[i].parent >= 0) release(i);
      if (runs[i].done && runs[i].parent < 0) {
        if (auto st = start_children(i); !st.ok()) return st;
      }
      remaining += runs[i].done ? 0 : 1;
    }
    if (!progressed && remaining > 0) {
      return absl::InternalError(absl::StrCat("LabelOnSlots: ", remaining,
                                              " runs could not make progress on ", B, " slots"));
    }
  }

  std::vector<SlotLabelResult> results(requests.size());
  for (int q = 0; q < static_cast<int>(requests.size()); ++q) {
    SlotLabelResult& res = results[q];
    res.reference_ids =
        requests[q].has_reference ? requests[q].reference_ids : runs[reference_run[q]].ids;
    const std::string ref_text = DecodeWithoutEos(tok, res.reference_ids);
    for (int p = 0; p + 1 < P; ++p) {
      PairLabel out;
      const SlotRun& h = runs[high_run[q][p]];
      out.high_ids = h.ids;
      out.k = h.k;
      out.v = h.v;
      for (int b : branch_run[q][p]) out.branch_ids.push_back(runs[b].ids);
      Score(tok, ref_text, &out);
      res.pairs.push_back(std::move(out));
    }
  }
  return results;
}

double TokenNll(absl::Span<const float> logits, int token) {
  PMPD_CHECK(token >= 0 && static_cast<size_t>(token) < logits.size(), "token outside the logits");
  const float m = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (float x : logits) z += std::exp(static_cast<double>(x) - m);
  return std::log(z) - (static_cast<double>(logits[token]) - m);
}

absl::StatusOr<PairLabel> LabelPairTeacherForced(inference::Engine& engine,
                                                 absl::Span<const int> prompt,
                                                 absl::Span<const int> reference,
                                                 const PairLabelOptions& o) {
  if (auto st = CheckOptions(engine.max_context(), prompt, o); !st.ok()) return st;
  const int r = static_cast<int>(reference.size());
  if (r > o.max_new_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("reference of ", r, " tokens is longer than ",
                                                   o.max_new_tokens, " new tokens"));
  }
  const int vocab = static_cast<int>(engine.config().vocab_size);
  for (int id : reference) {
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("reference token id ", id, " is outside the vocabulary of ", vocab));
    }
  }
  PairLabel out;
  const int C = static_cast<int>(o.candidate_steps.size());
  out.excess_nll.assign(C, 0.0);
  std::vector<float> logits;
  // Staying at hi: the prefill (its cache is the stored sample) and R[t] scored for t >= 1.
  engine.Reset();
  if (auto st = engine.SetPrecision(o.high); !st.ok()) return st;
  if (auto st = engine.Prefill(prompt, nullptr, nullptr); !st.ok()) return st;
  engine.CopyLastLayerKv(&out.k, &out.v);
  std::vector<double> nll_high(std::max(r, 1), 0.0);
  double total_high = 0;
  for (int t = 1; t < r; ++t) {
    if (auto st = engine.DecodeStep(reference[t - 1], &logits, nullptr); !st.ok()) return st;
    nll_high[t] = TokenNll(logits, reference[t]);
    total_high += nll_high[t];
  }
  const int scored = r - 1;
  if (scored >= 1) {
    out.nll_high = total_high / scored;
    for (int c = 0; c < C; ++c) {
      const int s = std::max(o.candidate_steps[c], 1);
      if (s >= r) continue;  // the reference ended before this switch: it costs nothing
      engine.Reset();
      if (auto st = engine.SetPrecision(o.high); !st.ok()) return st;
      if (auto st = engine.Prefill(prompt, nullptr, nullptr); !st.ok()) return st;
      for (int t = 1; t < s; ++t) {
        if (auto st = engine.DecodeStep(reference[t - 1], nullptr, nullptr); !st.ok()) return st;
      }
      if (auto st = engine.SetPrecision(o.low); !st.ok()) return st;
      double excess = 0;
      for (int t = s; t < r; ++t) {
        if (auto st = engine.DecodeStep(reference[t - 1], &logits, nullptr); !st.ok()) return st;
        excess += TokenNll(logits, reference[t]) - nll_high[t];
      }
      out.excess_nll[c] = excess / scored;
    }
  }
  // Infinite or NaN logits (a broken checkpoint) would otherwise become labels silently.
  bool finite = std::isfinite(out.nll_high);
  for (double x : out.excess_nll) finite = finite && std::isfinite(x);
  if (!finite) {
    return absl::DataLossError(absl::StrCat("the reference's negative log-likelihood at ", o.high,
                                            " or ", o.low,
                                            " bits is not finite (NaN or infinite logits)"));
  }
  out.label = dataset::CostSwitchLabel(out.excess_nll, 0);
  return out;
}

}  // namespace pmpd::data_gen
