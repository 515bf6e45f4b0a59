#include "inference/metrics/bleu.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_replace.h"
#include "kernels/check.h"

namespace pmpd::metrics {
namespace {

constexpr size_t kMaxOrder = 4;

// ---- Python str semantics on UTF-8 --------------------------------------------------------------

// Python's str.isspace() / str.split() whitespace (Unicode 14, CPython 3.11).
bool IsPySpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Length in bytes of the whitespace code point starting at s[i], 0 when s[i] starts none.
// Only the encodings of IsPySpace() code points are recognised; anything else (including invalid
// UTF-8) is not whitespace.
size_t SpaceLength(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return IsPySpace(b0) ? 1 : 0;
  size_t len;
  uint32_t cp;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
  } else {
    return 0;  // 4-byte sequences hold no whitespace; stray bytes are not whitespace
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  return IsPySpace(cp) ? len : 0;
}

// Byte ranges of the words of Python's s.split().
std::vector<std::pair<size_t, size_t>> PySplit(std::string_view s) {
  std::vector<std::pair<size_t, size_t>> words;
  size_t i = 0, start = std::string_view::npos;
  while (i < s.size()) {
    const size_t space = SpaceLength(s, i);
    if (space > 0) {
      if (start != std::string_view::npos) words.emplace_back(start, i);
      start = std::string_view::npos;
      i += space;
    } else {
      if (start == std::string_view::npos) start = i;
      ++i;
    }
  }
  if (start != std::string_view::npos) words.emplace_back(start, s.size());
  return words;
}

// Python's s.rstrip().
std::string_view PyRStrip(std::string_view s) {
  size_t end = 0, i = 0;
  while (i < s.size()) {
    const size_t space = SpaceLength(s, i);
    if (space > 0) {
      i += space;
    } else {
      end = ++i;
    }
  }
  return s.substr(0, end);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The 13a character class [\{-\~\[-\` -\&\(-\+\:-\@\/]: ASCII punctuation except ' , - .
bool IsSplitPunct(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
         (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

// One re.sub pass of a two-character pattern: scans left to right, on a match at i emits
// replace(s[i], s[i+1]) and resumes at i + 2. Working on bytes equals Python's code points here:
// each pattern has one ASCII side, and a multi-byte character is never a digit.
template <typename Match, typename Emit>
std::string SubPairs(const std::string& s, Match match, Emit emit) {
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && match(s[i], s[i + 1])) {
      emit(s[i], s[i + 1], &out);
      i += 2;
    } else {
      out.push_back(s[i]);
      ++i;
    }
  }
  return out;
}

// ---- n-gram statistics ----------------------------------------------------------------------

// A tokenized segment and its n-grams (1..4) as views into `text`: tokens are separated by single
// spaces there, so an n-gram is a contiguous substring.
struct Segment {
  std::string text;
  int64_t length = 0;
  std::unordered_map<std::string_view, int64_t> ngrams;
};

// Fills `seg` from a raw segment (rstrip + 13a). Views in seg->ngrams point into seg->text, so the
// Segment must not be moved or copied afterwards.
void Analyze(std::string_view raw, Segment* seg) {
  seg->text = Tokenize13a(PyRStrip(raw));
  const std::string_view text = seg->text;
  std::vector<std::pair<size_t, size_t>> tokens;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    tokens.emplace_back(start, end);
    start = end + 1;
  }
  seg->length = static_cast<int64_t>(tokens.size());
  for (size_t n = 1; n <= kMaxOrder; ++n) {
    for (size_t i = 0; i + n <= tokens.size(); ++i) {
      const size_t b = tokens[i].first, e = tokens[i + n - 1].second;
      ++seg->ngrams[text.substr(b, e - b)];
    }
  }
}

// 1 for a unigram: tokens hold no spaces.
size_t Order(std::string_view ngram) {
  return 1 + static_cast<size_t>(std::count(ngram.begin(), ngram.end(), ' '));
}

// sys_len, ref_len, correct[4], total[4] (sacrebleu's segment statistics).
struct Stats {
  int64_t sys_len = 0;
  int64_t ref_len = 0;
  int64_t correct[kMaxOrder] = {};
  int64_t total[kMaxOrder] = {};
};

// sacrebleu's _get_closest_ref_len: the closest length, ties to the shorter.
int64_t ClosestRefLength(int64_t hyp_len, const std::vector<int64_t>& ref_lens) {
  int64_t best_diff = -1, best_len = -1;
  for (int64_t len : ref_lens) {
    const int64_t diff = std::llabs(hyp_len - len);
    if (best_diff == -1 || diff < best_diff) {
      best_diff = diff;
      best_len = len;
    } else if (diff == best_diff && len < best_len) {
      best_len = len;
    }
  }
  return best_len;
}

void AddSegment(std::string_view hyp, const std::vector<std::string_view>& refs, Stats* stats) {
  std::vector<Segment> ref_segs(refs.size());
  std::vector<int64_t> ref_lens;
  std::unordered_map<std::string_view, int64_t> max_ref_counts;
  for (size_t r = 0; r < refs.size(); ++r) {
    Analyze(refs[r], &ref_segs[r]);
    ref_lens.push_back(ref_segs[r].length);
    for (const auto& [ngram, count] : ref_segs[r].ngrams) {
      int64_t& m = max_ref_counts[ngram];
      m = std::max(m, count);
    }
  }
  Segment h;
  Analyze(hyp, &h);
  stats->sys_len += h.length;
  stats->ref_len += ClosestRefLength(h.length, ref_lens);
  for (const auto& [ngram, count] : h.ngrams) {
    const size_t n = Order(ngram) - 1;
    stats->total[n] += count;
    auto it = max_ref_counts.find(ngram);
    if (it != max_ref_counts.end()) stats->correct[n] += std::min(count, it->second);
  }
}

// sacrebleu's my_log: log, with log(0) floored to -9999999999.
double MyLog(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

// BLEU.compute_bleu with smooth_method 'exp', in sacrebleu's order of floating-point operations.
BleuScore ComputeBleu(const Stats& s, bool effective_order) {
  BleuScore out;
  out.sys_len = s.sys_len;
  out.ref_len = s.ref_len;
  out.counts.assign(s.correct, s.correct + kMaxOrder);
  out.totals.assign(s.total, s.total + kMaxOrder);
  out.precisions.assign(kMaxOrder, 0.0);
  out.bp = 1.0;
  if (s.sys_len < s.ref_len) {
    out.bp = s.sys_len > 0
                 ? std::exp(1.0 - static_cast<double>(s.ref_len) / static_cast<double>(s.sys_len))
                 : 0.0;
  }
  if (std::all_of(s.correct, s.correct + kMaxOrder, [](int64_t c) { return c == 0; })) return out;
  double smooth_mteval = 1.0;
  size_t eff_order = kMaxOrder;
  for (size_t n = 1; n <= kMaxOrder; ++n) {
    const auto total = static_cast<double>(s.total[n - 1]);
    if (s.total[n - 1] == 0) break;
    if (effective_order) eff_order = n;
    if (s.correct[n - 1] == 0) {
      smooth_mteval *= 2;
      out.precisions[n - 1] = 100.0 / (smooth_mteval * total);
    } else {
      out.precisions[n - 1] = 100.0 * static_cast<double>(s.correct[n - 1]) / total;
    }
  }
  double log_sum = 0.0;
  for (size_t n = 0; n < eff_order; ++n) log_sum += MyLog(out.precisions[n]);
  out.score = out.bp * std::exp(log_sum / static_cast<double>(eff_order));
  return out;
}

}  // namespace

std::string Tokenize13a(std::string_view line) {
  std::string s(line);
  s = absl::StrReplaceAll(s, {{"<skipped>", ""}});
  s = absl::StrReplaceAll(s, {{"-\n", ""}});
  s = absl::StrReplaceAll(s, {{"\n", " "}});
  if (s.find('&') != std::string::npos) {
    // One pass per entity, in sacrebleu's order, so "&amp;lt;" ends as "<".
    s = absl::StrReplaceAll(s, {{"&quot;", "\""}});
    s = absl::StrReplaceAll(s, {{"&amp;", "&"}});
    s = absl::StrReplaceAll(s, {{"&lt;", "<"}});
    s = absl::StrReplaceAll(s, {{"&gt;", ">"}});
  }
  std::string padded;
  padded.reserve(s.size() * 2 + 2);
  padded.push_back(' ');
  for (char c : s) {  // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 '
    if (IsSplitPunct(c)) {
      padded.push_back(' ');
      padded.push_back(c);
      padded.push_back(' ');
    } else {
      padded.push_back(c);
    }
  }
  padded.push_back(' ');
  auto period_or_comma = [](char c) { return c == '.' || c == ','; };
  // ([^0-9])([\.,]) -> '\1 \2 '
  s = SubPairs(
      padded, [&](char a, char b) { return !IsDigit(a) && period_or_comma(b); },
      [](char a, char b, std::string* out) {
        out->append({a, ' ', b, ' '});
      });
  // ([\.,])([^0-9]) -> ' \1 \2'
  s = SubPairs(
      s, [&](char a, char b) { return period_or_comma(a) && !IsDigit(b); },
      [](char a, char b, std::string* out) {
        out->append({' ', a, ' ', b});
      });
  // ([0-9])(-) -> '\1 \2 '
  s = SubPairs(
      s, [](char a, char b) { return IsDigit(a) && b == '-'; },
      [](char a, char b, std::string* out) {
        out->append({a, ' ', b, ' '});
      });
  std::string out;
  out.reserve(s.size());
  for (const auto& [b, e] : PySplit(s)) {
    if (!out.empty()) out.push_back(' ');
    out.append(s, b, e - b);
  }
  return out;
}

BleuScore CorpusBleu(const std::vector<std::string>& hypotheses,
                     const std::vector<std::vector<std::string>>& references) {
  PMPD_CHECK(!references.empty(), "CorpusBleu needs at least one reference stream");
  for (const auto& stream : references) {
    PMPD_CHECK(stream.size() == hypotheses.size(),
               "every reference stream needs one line per hypothesis");
  }
  Stats stats;
  std::vector<std::string_view> refs(references.size());
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    for (size_t r = 0; r < references.size(); ++r) refs[r] = references[r][i];
    AddSegment(hypotheses[i], refs, &stats);
  }
  return ComputeBleu(stats, /*effective_order=*/false);
}

BleuScore SentenceBleu(std::string_view hyp, const std::vector<std::string>& refs) {
  PMPD_CHECK(!refs.empty(), "SentenceBleu needs at least one reference");
  Stats stats;
  AddSegment(hyp, std::vector<std::string_view>(refs.begin(), refs.end()), &stats);
  return ComputeBleu(stats, /*effective_order=*/true);
}

}  // namespace pmpd::metrics
