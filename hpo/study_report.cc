#include "hpo/study_report.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/atomic_file.h"
#include "hpo/json_util.h"
#include "hpo/param_importance.h"

namespace pmpd::hpo {
namespace {

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

std::string Exact(double v) { return DumpJson(nlohmann::json(v)); }

// A parameter value for people: strings bare, numbers short.
std::string Pretty(const SearchSpace& space, size_t i, double v, bool exact) {
  const nlohmann::json j = space.ValueToJson(i, v);
  if (j.is_string()) return j.get<std::string>();
  if (j.is_number_float())
    return exact ? Exact(j.get<double>()) : absl::StrFormat("%.6g", j.get<double>());
  return DumpJson(j);
}

std::string XmlEscape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::vector<const FrozenTrial*> Ranked(const std::vector<FrozenTrial>& trials,
                                       Direction direction) {
  std::vector<const FrozenTrial*> complete;
  for (const FrozenTrial& t : trials) {
    if (t.state == TrialState::kComplete) complete.push_back(&t);
  }
  std::stable_sort(complete.begin(), complete.end(),
                   [&](const FrozenTrial* a, const FrozenTrial* b) {
                     return Better(direction, *a->value, *b->value);
                   });
  return complete;
}

}  // namespace

std::string TrialsCsv(const SearchSpace& space, const std::vector<FrozenTrial>& trials) {
  std::vector<std::string> header = {"number", "state", "value"};
  for (const ParamSpec& p : space.params()) header.push_back(CsvField(p.name));
  header.push_back("duration_s");
  header.push_back("attempts");
  std::string csv = absl::StrJoin(header, ",") + "\n";
  for (const FrozenTrial& t : trials) {
    std::vector<std::string> row = {absl::StrCat(t.number), TrialStateName(t.state),
                                    t.value.has_value() ? Exact(*t.value) : ""};
    for (size_t i = 0; i < space.size(); ++i)
      row.push_back(CsvField(Pretty(space, i, t.params[i], true)));
    row.push_back(t.end_time > 0.0 ? absl::StrFormat("%.3f", t.duration_s()) : "");
    row.push_back(absl::StrCat(t.attempts));
    csv += absl::StrJoin(row, ",") + "\n";
  }
  return csv;
}

std::string Leaderboard(const SearchSpace& space, const std::vector<FrozenTrial>& trials,
                        Direction direction, int top_k) {
  const std::vector<const FrozenTrial*> ranked = Ranked(trials, direction);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"rank", "trial", "value"};
  for (const ParamSpec& p : space.params()) header.push_back(p.name);
  rows.push_back(header);
  for (size_t r = 0; r < ranked.size() && static_cast<int>(r) < top_k; ++r) {
    const FrozenTrial& t = *ranked[r];
    std::vector<std::string> row = {absl::StrCat(r + 1), absl::StrCat(t.number),
                                    absl::StrFormat("%.6g", *t.value)};
    for (size_t i = 0; i < space.size(); ++i) row.push_back(Pretty(space, i, t.params[i], false));
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string text =
      absl::StrFormat("top %d of %d complete trials (%s)\n", std::min<int>(top_k, ranked.size()),
                      ranked.size(), DirectionName(direction));
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) line += "  ";
      // Numbers right-aligned in the first three columns, params left-aligned.
      line += c < 3 ? absl::StrFormat("%*s", width[c], row[c])
                    : absl::StrFormat("%-*s", width[c], row[c]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    text += line + "\n";
  }
  return text;
}

std::string HistorySvg(const std::vector<FrozenTrial>& trials, Direction direction,
                       absl::string_view title) {
  constexpr double kW = 800, kH = 450, kLeft = 80, kRight = 20, kTop = 40, kBottom = 50;
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
      "fill=\"white\"/>\n"
      "<text x=\"%g\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
      kW, kH, kW, kH, kW / 2, XmlEscape(title));
  std::vector<const FrozenTrial*> complete;
  int64_t max_number = 1;
  for (const FrozenTrial& t : trials) {
    max_number = std::max(max_number, t.number);
    if (t.state == TrialState::kComplete) complete.push_back(&t);
  }
  if (complete.empty()) {
    return svg + absl::StrFormat(
                     "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">no complete trials "
                     "yet</text>\n</svg>\n",
                     kW / 2, kH / 2);
  }
  double lo = *complete[0]->value, hi = lo;
  for (const FrozenTrial* t : complete) {
    lo = std::min(lo, *t->value);
    hi = std::max(hi, *t->value);
  }
  if (hi == lo) {
    lo -= 1.0;
    hi += 1.0;
  }
  const double pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  auto px = [&](double number) { return kLeft + pw * number / static_cast<double>(max_number); };
  auto py = [&](double v) { return kTop + ph * (hi - v) / (hi - lo); };

  absl::StrAppendFormat(
      &svg, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#444\"/>\n",
      kLeft, kTop, pw, ph);
  for (int k = 0; k <= 4; ++k) {
    const double v = lo + (hi - lo) * k / 4.0;
    const double n = static_cast<double>(max_number) * k / 4.0;
    absl::StrAppendFormat(
        &svg,
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n"
        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n",
        kLeft, py(v), kLeft + pw, py(v), kLeft - 6, py(v) + 4, v, px(n), kTop + ph + 18, n);
  }
  absl::StrAppendFormat(&svg,
                        "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">trial</text>\n"
                        "<text x=\"16\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
                        "%g)\">objective (%s)</text>\n",
                        kLeft + pw / 2, kH - 12, kTop + ph / 2, kTop + ph / 2,
                        DirectionName(direction));
  for (const FrozenTrial* t : complete) {
    absl::StrAppendFormat(&svg,
                          "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#1f77b4\" "
                          "fill-opacity=\"0.7\"><title>trial %d: %g</title></circle>\n",
                          px(t->number), py(*t->value), t->number, *t->value);
  }
  std::string points;
  double best = *complete[0]->value;
  for (size_t i = 0; i < complete.size(); ++i) {
    const double v = *complete[i]->value;
    if (i > 0) absl::StrAppendFormat(&points, "%.1f,%.1f ", px(complete[i]->number), py(best));
    if (Better(direction, v, best)) best = v;
    absl::StrAppendFormat(&points, "%.1f,%.1f ", px(complete[i]->number), py(best));
  }
  absl::StrAppendFormat(
      &svg, "<polyline points=\"%s\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n",
      points);
  absl::StrAppendFormat(&svg,
                        "<circle cx=\"%g\" cy=\"%g\" r=\"3\" fill=\"#1f77b4\"/><text x=\"%g\" "
                        "y=\"%g\">trial value</text>\n"
                        "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#d62728\" "
                        "stroke-width=\"2\"/><text x=\"%g\" y=\"%g\">best so far</text>\n",
                        kW - 190, kTop + 14, kW - 180, kTop + 18, kW - 100, kTop + 14, kW - 84,
                        kTop + 14, kW - 78, kTop + 18);
  return svg + "</svg>\n";
}

absl::Status WriteStudyReport(const std::string& out_dir, const SearchSpace& space,
                              const std::vector<FrozenTrial>& trials, Direction direction,
                              int top_k) {
  if (::mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat(out_dir, ": cannot create: ", std::strerror(errno)));
  }
  absl::StatusOr<std::vector<ParamImportance>> importance = ComputeImportance(space, trials);
  const std::string importance_text =
      importance.ok() ? ImportanceText(*importance)
                      : absl::StrCat("not computed: ", importance.status().message(), "\n");
  const std::pair<std::string, std::string> files[] = {
      {"trials.csv", TrialsCsv(space, trials)},
      {"leaderboard.txt", Leaderboard(space, trials, direction, top_k)},
      {"history.svg", HistorySvg(trials, direction, "optimisation history")},
      {"importance.txt", importance_text}};
  // Each file is replaced on its own (base::WriteFileAtomically), not the four as one directory:
  // out_dir is shared with a study that other processes may still be running.
  for (const auto& [name, contents] : files) {
    if (absl::Status s = base::WriteFileAtomically(absl::StrCat(out_dir, "/", name), contents);
        !s.ok())
      return s;
  }
  return absl::OkStatus();
}

}  // namespace pmpd::hpo
