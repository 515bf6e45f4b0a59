// BLEU as PyPI sacrebleu 2.6.0 computes it with its defaults: the '13a' tokenizer (mteval-v13a),
// n-grams up to 4, case-sensitive, smoothing 'exp' (mteval's: the k-th order without a match
// counts 1 / 2^k matches). Corpus BLEU sums the statistics over segments first; with several
// references per segment, n-gram counts are clipped by the per-n-gram maximum over references
// and the brevity penalty uses the reference length closest to the hypothesis (ties: the shorter).
// Texts are UTF-8. No LibTorch, no state: every function is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pmpd::metrics {

// sacrebleu's Tokenizer13a()(line): drops "<skipped>", joins "-\n" hyphenations, newlines become
// spaces, unescapes &quot; &amp; &lt; &gt; (in that order, once each), splits off ASCII
// punctuation other than ' , - . (period and comma unless between digits, dash after a digit),
// then collapses whitespace as Python's str.split() (Unicode whitespace included). O(|line|).
std::string Tokenize13a(std::string_view line);

struct BleuScore {
  double score = 0;                // 0..100
  std::vector<double> precisions;  // 4 n-gram precisions in percent, smoothed as sacrebleu does
  double bp = 1;                   // brevity penalty
  int64_t sys_len = 0;             // hypothesis tokens
  int64_t ref_len = 0;             // closest-reference tokens, summed over segments
  std::vector<int64_t> counts;     // matched n-grams per order (sacrebleu's `counts`)
  std::vector<int64_t> totals;     // hypothesis n-grams per order (sacrebleu's `totals`)
};

// sacrebleu.corpus_bleu(hypotheses, references): references[r][i] is the r-th reference of segment
// i. Requires at least one reference stream and references[r].size() == hypotheses.size() for
// every r (CHECK-fails otherwise; sacrebleu would silently truncate to the shortest). An empty
// corpus scores 0 (sacrebleu raises there). Each segment is rstrip()ped and 13a-tokenized.
// O(total characters) time and memory for one segment at a time.
BleuScore CorpusBleu(const std::vector<std::string>& hypotheses,
                     const std::vector<std::vector<std::string>>& references);

// sacrebleu.sentence_bleu(hyp, refs): as CorpusBleu over one segment but with effective order on
// (orders with no hypothesis n-gram are left out of the geometric mean). `refs` must not be empty.
BleuScore SentenceBleu(std::string_view hyp, const std::vector<std::string>& refs);

}  // namespace pmpd::metrics
