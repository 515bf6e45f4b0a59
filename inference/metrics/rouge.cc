#include "inference/metrics/rouge.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>

namespace pmpd::metrics {
namespace {

// ---- NLTK PorterStemmer, NLTK_EXTENSIONS mode (nltk/stem/porter.py) -----------------------------
// Each helper mirrors the PorterStemmer method of the like name (Measure = _measure, ...); words
// are ASCII lowercase.

// (Debian's Abseil has its own string_view type, so no EndsWith on std::string_view.)
bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool IsVowelLetter(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// 'y' is a consonant at the start of a word or after a vowel, a vowel after a consonant: walk back
// over the run of 'y's and flip once per 'y' (as _is_consonant does).
bool IsConsonant(std::string_view w, size_t i) {
  if (IsVowelLetter(w[i])) return false;
  if (w[i] != 'y') return true;
  bool negate = false;
  while (i > 0 && w[i] == 'y') {
    negate = !negate;
    --i;
  }
  return !IsVowelLetter(w[i]) != negate;
}

// Calls visit(i, consonant, prev_consonant) for each letter left to right, one pass (NLTK's
// _consonant_flags): a 'y' is a consonant at the start or after a vowel.
template <typename Visit>
void ForEachConsonantFlag(std::string_view w, Visit visit) {
  bool prev_consonant = true;
  for (size_t i = 0; i < w.size(); ++i) {
    bool consonant = true;
    if (IsVowelLetter(w[i])) {
      consonant = false;
    } else if (w[i] == 'y' && i > 0) {
      consonant = !prev_consonant;
    }
    visit(i, consonant, prev_consonant);
    prev_consonant = consonant;
  }
}

// m in [C](VC){m}[V]: the number of vowel-to-consonant transitions.
int Measure(std::string_view stem) {
  int m = 0;
  ForEachConsonantFlag(stem, [&m](size_t i, bool consonant, bool prev_consonant) {
    if (i > 0 && !prev_consonant && consonant) ++m;
  });
  return m;
}

bool ContainsVowel(std::string_view stem) {
  bool vowel = false;
  ForEachConsonantFlag(stem,
                       [&vowel](size_t, bool consonant, bool) { vowel = vowel || !consonant; });
  return vowel;
}

// Condition *d: ends with a double consonant.
bool EndsDoubleConsonant(std::string_view w) {
  const size_t n = w.size();
  return n >= 2 && w[n - 1] == w[n - 2] && IsConsonant(w, n - 1);
}

// Condition *o: ends consonant-vowel-consonant, the last not w, x or y; NLTK adds two-letter
// vowel-consonant words.
bool EndsCvc(std::string_view w) {
  const size_t n = w.size();
  if (n >= 3 && IsConsonant(w, n - 3) && !IsConsonant(w, n - 2) && IsConsonant(w, n - 1) &&
      w[n - 1] != 'w' && w[n - 1] != 'x' && w[n - 1] != 'y') {
    return true;
  }
  return n == 2 && !IsConsonant(w, 0) && IsConsonant(w, 1);
}

enum class Cond { kMeasureGt0, kMeasureGt1, kIon, kLogi };

struct Rule {
  std::string_view suffix;
  std::string_view replacement;
  Cond cond;
};

bool Holds(Cond cond, std::string_view word, std::string_view stem) {
  switch (cond) {
    case Cond::kMeasureGt0:
      return Measure(stem) > 0;
    case Cond::kMeasureGt1:
      return Measure(stem) > 1;
    case Cond::kIon:
      return Measure(stem) > 1 && (stem.back() == 's' || stem.back() == 't');
    case Cond::kLogi:  // the 'l' stays with the stem: m(word[:-3]) > 0
      return Measure(word.substr(0, word.size() - 3)) > 0;
  }
  return false;
}

// _apply_rule_list: the first rule whose suffix matches decides; if its condition fails the word
// is returned unchanged and later rules are not tried.
template <size_t N>
std::string ApplyRules(const std::string& word, const Rule (&rules)[N]) {
  for (const Rule& r : rules) {
    if (!EndsWith(word, r.suffix)) continue;
    const std::string_view stem = std::string_view(word).substr(0, word.size() - r.suffix.size());
    if (!Holds(r.cond, word, stem)) return word;
    std::string out(stem);
    out.append(r.replacement);
    return out;
  }
  return word;
}

std::string Drop(const std::string& word, size_t n) { return word.substr(0, word.size() - n); }

std::string Step1a(const std::string& word) {
  if (word.size() == 4 && EndsWith(word, "ies")) return Drop(word, 3) + "ie";  // NLTK: dies
  if (EndsWith(word, "sses")) return Drop(word, 2);
  if (EndsWith(word, "ies")) return Drop(word, 2);
  if (EndsWith(word, "ss")) return word;
  if (EndsWith(word, "s")) return Drop(word, 1);
  return word;
}

std::string Step1b(const std::string& word) {
  if (EndsWith(word, "ied")) return Drop(word, 3) + (word.size() == 4 ? "ie" : "i");  // NLTK
  if (EndsWith(word, "eed")) {
    const std::string stem = Drop(word, 3);
    return Measure(stem) > 0 ? stem + "ee" : word;
  }
  std::string stem;
  bool removed = false;
  for (std::string_view suffix : {std::string_view("ed"), std::string_view("ing")}) {
    if (EndsWith(word, suffix)) {
      stem = Drop(word, suffix.size());
      if (ContainsVowel(stem)) {
        removed = true;
        break;
      }
    }
  }
  if (!removed) return word;
  if (EndsWith(stem, "at") || EndsWith(stem, "bl") || EndsWith(stem, "iz")) {
    return stem + "e";
  }
  if (EndsDoubleConsonant(stem)) {
    const char last = stem.back();
    if (last == 'l' || last == 's' || last == 'z') return stem;
    stem.pop_back();
    return stem;
  }
  if (Measure(stem) == 1 && EndsCvc(stem)) return stem + "e";
  return stem;
}

// NLTK: y -> i only after a consonant and not when the stem is that single consonant.
std::string Step1c(const std::string& word) {
  if (!EndsWith(word, "y")) return word;
  const std::string stem = Drop(word, 1);
  if (stem.size() > 1 && IsConsonant(stem, stem.size() - 1)) return stem + "i";
  return word;
}

constexpr Rule kStep2[] = {
    {"ational", "ate", Cond::kMeasureGt0}, {"tional", "tion", Cond::kMeasureGt0},
    {"enci", "ence", Cond::kMeasureGt0},   {"anci", "ance", Cond::kMeasureGt0},
    {"izer", "ize", Cond::kMeasureGt0},    {"bli", "ble", Cond::kMeasureGt0},
    {"alli", "al", Cond::kMeasureGt0},     {"entli", "ent", Cond::kMeasureGt0},
    {"eli", "e", Cond::kMeasureGt0},       {"ousli", "ous", Cond::kMeasureGt0},
    {"ization", "ize", Cond::kMeasureGt0}, {"ation", "ate", Cond::kMeasureGt0},
    {"ator", "ate", Cond::kMeasureGt0},    {"alism", "al", Cond::kMeasureGt0},
    {"iveness", "ive", Cond::kMeasureGt0}, {"fulness", "ful", Cond::kMeasureGt0},
    {"ousness", "ous", Cond::kMeasureGt0}, {"aliti", "al", Cond::kMeasureGt0},
    {"iviti", "ive", Cond::kMeasureGt0},   {"biliti", "ble", Cond::kMeasureGt0},
    {"fulli", "ful", Cond::kMeasureGt0},   {"logi", "log", Cond::kLogi},
};

std::string Step2(const std::string& word) {
  // NLTK applies alli -> al first and, when it fires, runs step 2 again on the result.
  if (EndsWith(word, "alli") && Measure(std::string_view(word).substr(0, word.size() - 4)) > 0) {
    return Step2(Drop(word, 4) + "al");
  }
  return ApplyRules(word, kStep2);
}

constexpr Rule kStep3[] = {
    {"icate", "ic", Cond::kMeasureGt0}, {"ative", "", Cond::kMeasureGt0},
    {"alize", "al", Cond::kMeasureGt0}, {"iciti", "ic", Cond::kMeasureGt0},
    {"ical", "ic", Cond::kMeasureGt0},  {"ful", "", Cond::kMeasureGt0},
    {"ness", "", Cond::kMeasureGt0},
};

constexpr Rule kStep4[] = {
    {"al", "", Cond::kMeasureGt1},    {"ance", "", Cond::kMeasureGt1},
    {"ence", "", Cond::kMeasureGt1},  {"er", "", Cond::kMeasureGt1},
    {"ic", "", Cond::kMeasureGt1},    {"able", "", Cond::kMeasureGt1},
    {"ible", "", Cond::kMeasureGt1},  {"ant", "", Cond::kMeasureGt1},
    {"ement", "", Cond::kMeasureGt1}, {"ment", "", Cond::kMeasureGt1},
    {"ent", "", Cond::kMeasureGt1},   {"ion", "", Cond::kIon},
    {"ou", "", Cond::kMeasureGt1},    {"ism", "", Cond::kMeasureGt1},
    {"ate", "", Cond::kMeasureGt1},   {"iti", "", Cond::kMeasureGt1},
    {"ous", "", Cond::kMeasureGt1},   {"ive", "", Cond::kMeasureGt1},
    {"ize", "", Cond::kMeasureGt1},
};

// Both E rules are tried (not a first-match rule list).
std::string Step5a(const std::string& word) {
  if (!EndsWith(word, "e")) return word;
  const std::string stem = Drop(word, 1);
  const int m = Measure(stem);
  if (m > 1) return stem;
  if (m == 1 && !EndsCvc(stem)) return stem;
  return word;
}

std::string Step5b(const std::string& word) {
  if (EndsWith(word, "ll") && Measure(std::string_view(word).substr(0, word.size() - 1)) > 1) {
    return Drop(word, 1);
  }
  return word;
}

// NLTK's irregular forms, looked up before any rule.
const std::string* IrregularForm(const std::string& word) {
  static const auto* const kPool = new std::unordered_map<std::string, std::string>{
      {"sky", "sky"},         {"skies", "sky"},        {"dying", "die"},
      {"lying", "lie"},       {"tying", "tie"},        {"news", "news"},
      {"innings", "inning"},  {"inning", "inning"},    {"outings", "outing"},
      {"outing", "outing"},   {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},       {"proceed", "proceed"},  {"exceed", "exceed"},
      {"succeed", "succeed"},
  };
  auto it = kPool->find(word);
  return it == kPool->end() ? nullptr : &it->second;
}

// ---- rouge-score tokenizer ----------------------------------------------------------------------

// Decodes one UTF-8 code point at s[*pos] and advances *pos; an invalid or truncated sequence
// yields -1 and advances one byte.
int32_t NextCodePoint(std::string_view s, size_t* pos) {
  const auto b0 = static_cast<unsigned char>(s[*pos]);
  size_t len;
  int32_t cp;
  if (b0 < 0x80) {
    ++*pos;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    ++*pos;
    return -1;
  }
  if (*pos + len > s.size()) {
    ++*pos;
    return -1;
  }
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[*pos + k]);
    if ((b & 0xC0) != 0x80) {
      ++*pos;
      return -1;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  *pos += len;
  return cp;
}

// The longest common subsequence length of two id sequences; two rows over the shorter one.
int32_t LcsLength(const std::vector<int>& a, const std::vector<int>& b) {
  const std::vector<int>& outer = a.size() >= b.size() ? a : b;
  const std::vector<int>& inner = a.size() >= b.size() ? b : a;
  std::vector<int32_t> prev(inner.size() + 1, 0), cur(inner.size() + 1, 0);
  for (int x : outer) {
    for (size_t j = 1; j <= inner.size(); ++j) {
      cur[j] = x == inner[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    }
    std::swap(prev, cur);
  }
  return prev[inner.size()];
}

}  // namespace

std::string PorterStem(std::string_view word) {
  std::string stem(word);
  for (char& c : stem) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (const std::string* irregular = IrregularForm(stem)) return *irregular;
  if (word.size() <= 2) return stem;
  stem = Step1a(stem);
  stem = Step1b(stem);
  stem = Step1c(stem);
  stem = Step2(stem);
  stem = ApplyRules(stem, kStep3);
  stem = ApplyRules(stem, kStep4);
  stem = Step5a(stem);
  return Step5b(stem);
}

std::vector<std::string> RougeTokenize(std::string_view text, bool stem) {
  std::vector<std::string> tokens;
  std::string cur;
  auto flush = [&]() {
    if (cur.empty()) return;
    std::string token = stem && cur.size() > 3 ? PorterStem(cur) : cur;
    // rouge-score drops tokens that are not [a-z0-9]+ after stemming (no stem comes out empty).
    if (!token.empty()) tokens.push_back(std::move(token));
    cur.clear();
  };
  size_t pos = 0;
  while (pos < text.size()) {
    const int32_t cp = NextCodePoint(text, &pos);
    if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
      cur.push_back(static_cast<char>(cp));
    } else if (cp >= 'A' && cp <= 'Z') {
      cur.push_back(static_cast<char>(cp - 'A' + 'a'));
    } else if (cp == 0x212A) {  // KELVIN SIGN: str.lower() gives ASCII 'k'
      cur.push_back('k');
    } else if (cp == 0x130) {
      // LATIN CAPITAL LETTER I WITH DOT ABOVE: lower() gives "i\u0307"; the dot separates.
      cur.push_back('i');
      flush();
    } else {
      flush();
    }
  }
  flush();
  return tokens;
}

RougeScore RougeL(std::string_view target, std::string_view prediction) {
  const std::vector<std::string> t = RougeTokenize(target, /*stem=*/true);
  const std::vector<std::string> p = RougeTokenize(prediction, /*stem=*/true);
  if (t.empty() || p.empty()) return {};
  // Intern tokens so the O(n*m) loop compares ints.
  std::unordered_map<std::string_view, int> ids;
  auto to_ids = [&ids](const std::vector<std::string>& tokens) {
    std::vector<int> out;
    out.reserve(tokens.size());
    for (const std::string& tok : tokens) {
      out.push_back(ids.emplace(tok, static_cast<int>(ids.size())).first->second);
    }
    return out;
  };
  const std::vector<int> t_ids = to_ids(t);
  const std::vector<int> p_ids = to_ids(p);
  const auto lcs = static_cast<double>(LcsLength(t_ids, p_ids));
  RougeScore s;
  s.precision = lcs / static_cast<double>(p.size());
  s.recall = lcs / static_cast<double>(t.size());
  s.fmeasure =
      s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
  return s;
}

RougeScore RougeLMax(const std::vector<std::string>& targets, std::string_view prediction) {
  RougeScore best;
  bool first = true;
  for (const std::string& target : targets) {
    const RougeScore s = RougeL(target, prediction);
    if (first || s.fmeasure > best.fmeasure) best = s;
    first = false;
  }
  return best;
}

}  // namespace pmpd::metrics
