// Rouge-L as PyPI rouge-score 0.1.2 computes it with RougeScorer(['rougeL'], use_stemmer=True):
// its default tokenizer (Python str.lower(), every character outside [a-z0-9] becomes a separator,
// tokens longer than 3 characters go through NLTK's PorterStemmer in its default NLTK_EXTENSIONS
// mode), then precision = LCS / |prediction|, recall = LCS / |target|, F = 2PR / (P + R).
// Texts are UTF-8. No LibTorch, no state: every function is thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pmpd::metrics {

struct RougeScore {
  double precision = 0;
  double recall = 0;
  double fmeasure = 0;
};

// NLTK PorterStemmer().stem(word) in NLTK_EXTENSIONS mode (irregular-forms pool, the 'ies'/'ied'
// rules, y -> i only after a consonant, 'alli', 'fulli', 'logi'). Lowercases ASCII first; exact for
// ASCII input (rouge-score only feeds it [a-z0-9]+). O(|word|) time.
std::string PorterStem(std::string_view word);

// rouge-score's tokenize.tokenize(text, stemmer): lowercase as Python does (which also maps
// U+0130 to "i" + a combining dot and the Kelvin sign U+212A to "k"), any character other than
// ASCII [a-z0-9] separates tokens (so accented letters split words), and with `stem` tokens of
// more than 3 characters are Porter-stemmed. Invalid UTF-8 bytes are separators. O(|text|).
std::vector<std::string> RougeTokenize(std::string_view text, bool stem);

// Rouge-L of `prediction` against `target` with the stemmer on. All zero when either side has no
// token. O(n*m) time for the LCS of n and m tokens, O(min(n, m)) extra memory.
RougeScore RougeL(std::string_view target, std::string_view prediction);

// rouge-score's score_multi: Rouge-L against each target, returning the score with the highest
// F-measure (the first one on ties, as numpy.argmax). All zero when `targets` is empty (rouge-score
// raises there). Cost: one RougeL per target.
RougeScore RougeLMax(const std::vector<std::string>& targets, std::string_view prediction);

}  // namespace pmpd::metrics
