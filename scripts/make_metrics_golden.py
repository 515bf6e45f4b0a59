#!/usr/bin/env python3
"""Golden values for the C++ text-quality metrics (inference/metrics/rouge.cc, bleu.cc).

References: PyPI rouge-score 0.1.2 (RougeScorer(['rougeL'], use_stemmer=True), its default
tokenizer and NLTK's PorterStemmer in the default NLTK_EXTENSIONS mode) and PyPI sacrebleu 2.6.0
(corpus_bleu / sentence_bleu with their defaults, Tokenizer13a). Texts: hand-written tricky cases,
seeded synthetic words, and real pairs from the first lines of the shared DialogSum test set and
the IWSLT 2017 en-fr sample. Deterministic: running it again gives the same file.

Usage: python3 scripts/make_metrics_golden.py [SHARED_DIR] > tests/golden/metrics.json
Needs: rouge-score==0.1.2, nltk, sacrebleu==2.6.0 (PyPI).
"""
import importlib.metadata
import json
import os
import random
import sys

import sacrebleu
from nltk.stem import porter
from rouge_score import rouge_scorer
from rouge_score import tokenize as rouge_tokenize
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PORTER_WORDS = [
    # Porter's paper and NLTK's docstrings.
    "caresses", "ponies", "ties", "caress", "cats", "feed", "agreed", "plastered", "bled", "motoring",
    "sing", "conflated", "troubled", "sized", "hopping", "tanned", "falling", "hissing", "fizzed",
    "failing", "filing", "happy", "sky", "relational", "conditional", "rational", "valenci",
    "hesitanci", "digitizer", "conformabli", "radicalli", "differentli", "vileli", "analogousli",
    "vietnamization", "predication", "operator", "feudalism", "decisiveness", "hopefulness",
    "callousness", "formaliti", "sensitiviti", "sensibiliti", "triplicate", "formative", "formalize",
    "electriciti", "electrical", "hopeful", "goodness", "revival", "allowance", "inference",
    "airliner", "gyroscopic", "adjustable", "defensible", "irritant", "replacement", "adjustment",
    "dependent", "adoption", "homologou", "communism", "activate", "angulariti", "homologous",
    "effective", "bowdlerize", "probate", "rate", "cease", "controll", "roll",
    # The brief's list and NLTK extensions: irregular forms, ies/ied, y -> i, alli, fulli, logi.
    "generously", "happiness", "dying", "lying", "tying", "news", "skies", "innings", "inning",
    "outings", "outing", "cannings", "canning", "howe", "proceed", "exceed", "succeed", "dies",
    "flies", "died", "spied", "tied", "cries", "enjoy", "enjoyment", "spy", "fly", "try", "toy",
    "syzygy", "yyyy", "yyy", "yy", "y", "ly", "ies", "ied", "sses", "ss", "s", "is", "as", "ed",
    "ing", "eed", "eeds", "ying", "generalization", "oscillators", "abbreviations", "rationalli",
    "generalli", "hopefulli", "archaeology", "geology", "theology", "biology", "apology", "logi",
    "analogi", "crying", "eyed", "ageing", "agreeing", "seeing", "sharing", "hoped", "hoping",
    "maximization", "organizational", "conditionally", "beautifully", "quickly", "easily",
    "running", "cycling", "tying", "yelling", "played", "playing", "buyer", "relativity",
    "university", "universities", "sensibility", "possibility", "national", "nationality",
    "abilities", "activities", "abbreviated", "oscillating", "connection", "connections",
    "connective", "connected", "connecting", "emotional", "ability", "capability", "ion", "lion",
    "million", "decision", "vision", "position", "question", "suggestion", "meetings", "fishing",
    "tanning", "tinning", "hummed", "fussed", "buzzed", "pulled", "trolled", "wrapped", "knitted",
    "bowling", "plowed", "fixing", "taxes", "saying", "obeyed", "keyed", "monkeys", "journeys",
    "daily", "dryly", "slyly", "shyly", "bye", "aye", "eye", "yes", "yet", "you", "your", "yours",
    "a", "an", "the", "at", "by", "be", "oe", "ae", "ab", "ax", "ox", "ow", "ay", "1990s", "abc123",
    "3rd", "covid19ing", "mp3s", "h2o", "12345", "b2b", "24hours",
    "Generously", "HAPPINESS", "NeWs", "SKIES", "Dying", "CONDITIONAL", "IeS", "AS", "Y",
]

# Every rule's suffix, for the seeded synthetic words.
SUFFIXES = [
    "sses", "ies", "ss", "s", "ied", "eed", "ed", "ing", "at", "bl", "iz", "y", "ational", "tional",
    "enci", "anci", "izer", "bli", "abli", "alli", "entli", "eli", "ousli", "ization", "ation",
    "ator", "alism", "iveness", "fulness", "ousness", "aliti", "iviti", "biliti", "fulli", "logi",
    "icate", "ative", "alize", "iciti", "ical", "ful", "ness", "al", "ance", "ence", "er", "ic",
    "able", "ible", "ant", "ement", "ment", "ent", "sion", "tion", "ion", "ou", "ism", "ate", "iti",
    "ous", "ive", "ize", "e", "ll", "lled", "lling", "ying", "yed", "yes", "ys", "ly", "",
]

ROUGE_TOKENIZE_TEXTS = [
    "", "   ", "\t\n", "The quick brown fox", "THE QUICK, brown-fox!", "don't can't won't I'm",
    "state-of-the-art e.g. U.S.A. 3.14 1,000,000 $5.00 50% #1 @user a_b", "café naïve résumé Ünïcödé",
    "İstanbul İİ xİy", "5\u212a run 10\u212a", "ＡＢＣ fullwidth ｄｅｆ", "\ufb01ne ligature \ufb02ow",
    "١٢٣ arabic digits ٤٥", "日本語のテキスト mixed with English words", "emoji 🙂 in 🚀 text",
    "&quot;quoted&quot; &amp; escaped &lt;tag&gt;", "tabs\tand\nnewlines\r\nand\x0bvt",
    "ΑΒΓ greek ΣΊΣΥΦΟΣ", "straße STRASSE", "generously happiness relational conditional hopeful",
    "running runners ran runs easily fairly", "a an the it is on of to", "yyyy y ly ies sky skies",
    "CamelCaseWords and snake_case_words and kebab-case-words", "x" * 40, "null\x00byte",
    "non\u00a0breaking\u2003em\u3000ideographic spaces", "123abc abc123 1a2b3c4d",
]

ROUGE_PAIRS = [
    ("The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log."),
    ("police killed the gunman", "police kill the gunman"),
    ("police killed the gunman", "the gunman kill police"),
    ("the cat was found under the bed", "the cat was under the bed"),
    ("identical text here", "identical text here"),
    ("Identical TEXT, here!", "identical text here"),
    ("completely different words", "nothing matches at all"),
    ("", "some prediction"),
    ("some target", ""),
    ("", ""),
    ("!!! ... ???", "words"),
    ("words", "--- ,,,"),
    ("a b c d e f g", "g f e d c b a"),
    ("a b a b a b", "b a b a"),
    ("he was running quickly to the stations", "he runs quick to a station"),
    ("generalization of oscillators", "general oscillating oscillations"),
    ("The café is naïve", "the caf is na ve"),
    ("İstanbul is big", "i stanbul is big"),
    ("5\u212a run", "5k run"),
    ("It's a state-of-the-art model (v2.0) &amp; more", "its a state of the art model v2 0 amp more"),
    ("skies were lying dying", "sky was lie die"),
    ("1,000 people in 2020", "1000 people in 2020"),
    ("the the the the", "the"),
    ("the", "the the the the"),
    ("x", "x"),
    ("Le marshmallow doit être placé au sommet.", "Le marshmallow doit etre place au sommet."),
    ("日本語 text", "text 日本語"),
]

TOKENIZE_13A_LINES = [
    "", " ", "Hello, world!", "Hello world .", "It's 3.14, not 3,14.", "1,000,000 people; 2.5% rise",
    "e.g. U.S.A. and i.e.", "Mr. Smith's dog-house cost $5-$10.", "1990-2000 and 5-6 and a-b",
    "&quot;Quoted&quot; &amp; &lt;tagged&gt; &apos;apos&apos; &#39;", "&amp;lt; &amp;quot; &amp;amp;",
    "AT&T", "AT&amp;T", "<skipped> text <skipped>", "<skip-\nped>", "hyphen-\nated line\nbreak",
    "tabs\tand  multiple   spaces", "trailing spaces   ", "  leading", "non\u00a0breaking\u2003em",
    "\u3000ideographic\u3000space\u3000", "zero\u200bwidth", "line\u2028sep and\x85nel",
    "\x1cfile\x1dgroup\x1erecord\x1funit", "café, naïve. résumé!", "日本語。テキスト、です",
    "emoji 🙂. 🚀,",
    "(parens) [brackets] {braces} <angles> |pipe| \\backslash/ ~tilde ^caret _under `back",
    "a.b,c;d:e?f!g", "...", ",,,", "..3", "3..", ".5 5. 5.5 5,5 ,5 5,", "a..b", "x.,y", "-5 5- -x x-",
    "*star* +plus+ =eq= @at #hash $dollar %pct", "'single' \"double\"", "It's", "don't", "rock 'n' roll",
    "www.example.com/path?q=1&r=2", "email@example.com", "3-4-5", "a-\nb", "end.\n", "é.", "é.é", "1.é",
]


def porter_cases(shared_texts):
    stemmer = porter.PorterStemmer()
    words = list(PORTER_WORDS)
    seen = set(words)
    # Real vocabulary from the shared texts, in order of first appearance.
    for text in shared_texts:
        for w in rouge_tokenize.tokenize(text, None):
            if w not in seen:
                seen.add(w)
                words.append(w)
    # Seeded synthetic words: random stems (y-heavy, double letters) plus rule suffixes.
    rng = random.Random(20261124)
    letters = "aeiouybcdfglmnprstvwxzyyll"
    for _ in range(900):
        stem = "".join(rng.choice(letters) for _ in range(rng.randint(1, 7)))
        w = stem + rng.choice(SUFFIXES)
        if w not in seen:
            seen.add(w)
            words.append(w)
    return [[w, stemmer.stem(w)] for w in words]


def rouge_cases(pairs, scorer):
    out = []
    for target, prediction in pairs:
        s = scorer.score(target, prediction)["rougeL"]
        out.append({"target": target, "prediction": prediction,
                    "precision": s.precision, "recall": s.recall, "fmeasure": s.fmeasure})
    return out


def perturb(text, rng):
    """A deterministic 'system output': drops, repeats and swaps some words of `text`."""
    words = text.split()
    out = []
    for w in words:
        r = rng.random()
        if r < 0.12:
            continue
        out.append(w)
        if r > 0.93:
            out.append(w)
    for i in range(0, len(out) - 1, 7):
        out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out)


def bleu_entry(name, hyps, refs):
    b = sacrebleu.corpus_bleu(hyps, refs)
    return {"name": name, "hypotheses": hyps, "references": refs, "score": b.score,
            "precisions": b.precisions, "bp": b.bp, "sys_len": b.sys_len, "ref_len": b.ref_len,
            "counts": list(b.counts), "totals": list(b.totals)}


def sentence_entry(hyp, refs):
    b = sacrebleu.sentence_bleu(hyp, refs)
    return {"hypothesis": hyp, "references": refs, "score": b.score, "precisions": b.precisions,
            "bp": b.bp, "sys_len": b.sys_len, "ref_len": b.ref_len, "counts": list(b.counts),
            "totals": list(b.totals)}


def read_jsonl(path, n):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "PMPD_SHARED_DIR", os.path.join(REPO, "..", "shared"))
    dialog = read_jsonl(os.path.join(shared, "data/eval/dialogsum.test.jsonl"), 10)
    iwslt = read_jsonl(os.path.join(shared, "data/eval/iwslt2017-en-fr.test-sample30.jsonl"), 30)
    rng = random.Random(7)

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    stemmer = porter.PorterStemmer()
    out = {
        "note": "made by scripts/make_metrics_golden.py; rougeL with use_stemmer=True, sacrebleu defaults",
        "versions": {p: importlib.metadata.version(p) for p in ("rouge-score", "nltk", "sacrebleu")},
    }
    out["porter"] = porter_cases([d["dialogue"] for d in dialog[:6]] + [d["summary1"] for d in dialog]
                                 + [r["source"] for r in iwslt])
    out["rouge_tokenize"] = [{"text": t, "tokens": rouge_tokenize.tokenize(t, None),
                              "stemmed": rouge_tokenize.tokenize(t, stemmer)} for t in ROUGE_TOKENIZE_TEXTS]

    pairs = list(ROUGE_PAIRS)
    pairs += [(d["summary1"], d["summary2"]) for d in dialog]
    pairs += [(d["summary1"], d["dialogue"]) for d in dialog[:4]]
    pairs += [(r["reference"], perturb(r["reference"], rng)) for r in iwslt[:10]]
    pairs += [(r["reference"], r["source"]) for r in iwslt[10:15]]
    out["rouge"] = rouge_cases(pairs, scorer)

    multi = [
        (["the cat sat on the mat", "a cat was sitting on a mat"], "the cat was sitting on the mat"),
        (["same", "same"], "same"),
        (["zero overlap", "also none"], "nothing here"),
        (["", "words words"], "words"),
        (["a b c", "c b a"], "a b c"),  # tie in F: the first wins
    ]
    multi += [([d["summary1"], d["summary2"]], d["summary3"]) for d in dialog]
    out["rouge_multi"] = []
    for targets, prediction in multi:
        s = scorer.score_multi(targets, prediction)["rougeL"]
        out["rouge_multi"].append({"targets": targets, "prediction": prediction,
                                   "precision": s.precision, "recall": s.recall, "fmeasure": s.fmeasure})

    tok = Tokenizer13a()
    lines = TOKENIZE_13A_LINES + [r["source"] for r in iwslt] + [r["reference"] for r in iwslt]
    out["tokenize_13a"] = [[line, tok(line)] for line in lines]

    refs = [r["reference"] for r in iwslt]
    hyps = [perturb(r, rng) for r in refs]
    refs2 = [perturb(r, rng) for r in refs]
    d1 = [d["summary1"] for d in dialog]
    d2 = [d["summary2"] for d in dialog]
    d3 = [d["summary3"] for d in dialog]
    out["corpus_bleu"] = [
        bleu_entry("simple", ["The cat sat on the mat.", "It is raining today!", "Hello there, world."],
                   [["The cat sat on the mat.", "It rains today!", "Hello, world."]]),
        bleu_entry("two_refs",
                   ["The cat is on the mat.", "There is a dog in the garden.", "He read the book quickly."],
                   [["The cat sat on the mat.", "A dog is in the garden.", "He quickly read the book."],
                    ["There is a cat on the mat.", "There's a dog in the garden.", "He read a book fast."]]),
        bleu_entry("zero_match", ["alpha beta gamma delta", "epsilon zeta"], [["one two three four", "five six"]]),
        bleu_entry("no_4grams", ["a b", "c d e"], [["a b", "c d e"]]),
        bleu_entry("short_hyps_bp", ["the cat", "a dog"], [["the cat sat on the mat", "a dog in the garden"]]),
        bleu_entry("empty_lines", ["", "some words here .", ""], [["", "some words here.", "not empty"]]),
        bleu_entry("entities", ["&quot;Hi&quot; &amp; bye", "x &lt; y", "a-\nb"],
                   [["\"Hi\" & bye", "x < y", "ab"]]),
        bleu_entry("closest_ref_tie", ["one two three four five", "a b c d e f g"],
                   [["one two three four", "a b c d e f g h"], ["one two three four five six", "a b c d e f"]]),
        bleu_entry("unicode", ["Café naïve, résumé.", "日本語 の テキスト"],
                   [["Café naïf, résumé.", "日本語 の テキスト です"]]),
        bleu_entry("iwslt_perturbed", hyps, [refs]),
        bleu_entry("iwslt_two_refs", hyps, [refs, refs2]),
        bleu_entry("iwslt_source_vs_ref", [r["source"] for r in iwslt], [refs]),
        bleu_entry("dialogsum_two_refs", d2, [d1, d3]),
    ]
    sentence = [
        ("The cat sat on the mat.", ["The cat sat on the mat."]),
        ("The cat sat on the mat.", ["The cat is on the mat."]),
        ("cat", ["cat"]),
        ("the cat", ["the cat sat"]),
        ("the cat sat", ["the cat sat on the mat"]),
        ("", ["something"]),
        ("something", [""]),
        ("no match at all", ["completely different words"]),
        ("the cat is on the mat", ["the cat sat on the mat", "there is a cat on the mat"]),
        ("Hello, world!", ["Hello world", "Hello, world !"]),
        ("3.14 is pi, 1,000 is big.", ["3.14 is pi , 1,000 is big ."]),
    ]
    sentence += [(h, [r]) for h, r in zip(hyps[:8], refs[:8])]
    sentence += [(a, [b, c]) for a, b, c in zip(d2[:5], d1[:5], d3[:5])]
    out["sentence_bleu"] = [sentence_entry(h, r) for h, r in sentence]

    json.dump(out, sys.stdout, ensure_ascii=False, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
