#include "trainer/training_plot.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "base/atomic_file.h"
#include "models/file_util.h"

namespace pmpd::trainer {

absl::Status WriteTrainingSvg(const std::string& path, const std::string& title,
                              const TrainResult& r) {
  if (r.epochs.empty())
    return absl::InvalidArgumentError(absl::StrCat(path, ": no epochs to plot"));
  const double W = 640, H = 400, L = 60, R = 60, T = 40, B = 50;
  const int n = static_cast<int>(r.epochs.size());
  double y1 = 0;
  for (const auto& e : r.epochs) y1 = std::max({y1, e.train_loss, e.val_loss});
  y1 = y1 > 0 ? y1 * 1.1 : 1;
  auto px = [&](double epoch) { return L + (n > 1 ? (epoch - 1) / (n - 1) : 0.5) * (W - L - R); };
  auto py = [&](double loss) { return H - B - loss / y1 * (H - T - B); };
  auto pf = [&](double f1) { return H - B - f1 * (H - T - B); };
  std::string s = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "font-family=\"sans-serif\" "
      "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%.0f\" y=\"22\" font-size=\"14\">%s</text>\n",
      W, H, L, title);
  absl::StrAppendFormat(
      &s, "<path d=\"M%.1f %.1f V%.1f H%.1f V%.1f\" fill=\"none\" stroke=\"black\"/>\n", L, T,
      H - B, W - R, T);
  for (int i = 0; i <= 4; ++i) {
    absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n",
                          L - 5, py(y1 * i / 4) + 4, y1 * i / 4);
    absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#2ca02c\">%.2f</text>\n",
                          W - R + 5, pf(i / 4.0) + 4, i / 4.0);
  }
  for (int e = 1; e <= n; e += std::max(1, n / 8)) {
    absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n",
                          px(e), H - B + 16, e);
  }
  absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">epoch</text>\n",
                        (L + W - R) / 2, H - 12);
  auto polyline = [&](auto value, auto map, const char* color, const char* dash) {
    std::string pts;
    for (const auto& e : r.epochs)
      absl::StrAppendFormat(&pts, "%.1f,%.1f ", px(e.epoch), map(value(e)));
    absl::StrAppendFormat(
        &s, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", pts,
        color, dash);
  };
  polyline([](const EpochMetrics& e) { return e.train_loss; }, py, "#1f77b4", "");
  polyline([](const EpochMetrics& e) { return e.val_loss; }, py, "#d62728", "");
  polyline([](const EpochMetrics& e) { return e.val.macro_f1; }, pf, "#2ca02c",
           " stroke-dasharray=\"5,3\"");
  absl::StrAppendFormat(&s,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"gray\"/>\n",
                        px(r.best_epoch), T, px(r.best_epoch), H - B);
  absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" fill=\"gray\">best epoch %d</text>\n",
                        px(r.best_epoch) + 4, T + 12, r.best_epoch);
  absl::StrAppendFormat(&s,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#2ca02c\" "
                        "stroke-dasharray=\"2,4\"/>\n",
                        L, pf(r.majority.macro_f1), W - R, pf(r.majority.macro_f1));
  const char* legend[][2] = {{"#1f77b4", "train loss (left)"},
                             {"#d62728", "validation loss (left)"},
                             {"#2ca02c", "validation macro-F1 (right); dotted: majority-class F1"}};
  for (int i = 0; i < 3; ++i) {
    absl::StrAppendFormat(&s,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"3\" fill=\"%s\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                          L + 10, T + 24 + 16 * i, legend[i][0], L + 28, T + 29 + 16 * i,
                          legend[i][1]);
  }
  s += "</svg>\n";
  return base::WriteFileAtomically(path, s);
}

}  // namespace pmpd::trainer
