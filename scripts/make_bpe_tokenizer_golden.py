#!/usr/bin/env python3
"""Golden ids for the byte-level BPE tokenizer (tests/models/bpe_tokenizer_test.cc).

Loads SmolLM2-135M-Instruct's tokenizer from its GGUF file with transformers
(AutoTokenizer.from_pretrained(dir, gguf_file=name)), encodes >= 200 deterministic texts (snippets of
the shared C4, wikitext-2, CNN/DM, DialogSum and IWSLT data, plus hand-written Unicode, whitespace,
number, code and special-token cases, plus a few invalid UTF-8 byte strings) and writes, per text,
HF's encode(text, add_special_tokens=True) ids and decode(ids) text.

transformers' GGUF converter has no pre-tokenizer entry for llama.cpp's pre type "smollm" and falls
back to plain GPT-2 ByteLevel splitting, while SmolLM2's own tokenizer.json splits digits one by
one first: Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False,
use_regex=True)]. The golden uses the model's real pre-tokenizer, set on the backend tokenizer before
encoding; how many texts the uncorrected converter tokenizes differently is printed and stored in
the header, with their indices.

The same vocabulary is also run with the pre-tokenizers of two other families, to check our PCRE2
regexes against HF's Oniguruma on the same texts: "ids_llama3" (Split(Llama 3 regex, Isolated) +
ByteLevel(use_regex=False), model.ignore_merges=True as in Llama 3's tokenizer.json) and
"ids_qwen2" (the Qwen2 regex, ignore_merges=False), and "ids_nfc": the SmolLM pre-tokenizer after
an NFC normalizer (what Qwen2's tokenizer.json has). Since different cuts often merge to the same ids,
each case also stores the pre-tokenizer's pieces themselves: "piece_bytes" maps smollm, llama3 and
qwen2 to the byte lengths of the pieces pre_tokenize_str(text) gives (added tokens not matched).

Invalid UTF-8 cases carry "text_hex" (the raw bytes); their ids are HF's ids of
bytes.decode("utf-8", "replace"), the text our tokenizer is specified to see.

Usage (the venv of scripts/install-deps.sh --dev; no network):
  python scripts/make_bpe_tokenizer_golden.py                      # writes tests/golden/smollm2_tokenizer.json
  python scripts/make_bpe_tokenizer_golden.py --save-tokenizer DIR # also DIR/tokenizer.json (corrected; never commit)
  python scripts/make_bpe_tokenizer_golden.py --verify DIR         # AutoTokenizer.from_pretrained(DIR) gives the golden ids
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_GGUF = os.path.join(os.environ.get("PMPD_CACHE", os.path.expanduser("~/.cache/pmpd")), "models",
                            "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_SHARED = os.environ.get("PMPD_SHARED_DIR", os.path.join(os.path.dirname(ROOT), "shared"))
DEFAULT_OUT = os.path.join(ROOT, "tests", "golden", "smollm2_tokenizer.json")

# Lengths (in characters) snippets are cut to, cycled through deterministically.
CUT_LENGTHS = [120, 200, 280, 350, 420, 500, 640]

HAND_WRITTEN = [
    "",
    " ",
    "Hello world",
    "Hello, world! How are you today?",
    " leading space",
    "trailing space ",
    "trailing spaces   ",
    "   three leading spaces",
    "many     spaces    between      words",
    "tab\tseparated\tvalues\t",
    "\t\tleading tabs",
    "line one\nline two\nline three",
    "windows\r\nline\r\nendings\r\n",
    "\n\n\nthree newlines first",
    "ends with newlines\n\n",
    "mixed \n \t \r\n whitespace \u00a0 nbsp \u2003 em-space \u3000 ideographic",
    "spaces before newline   \nand after\n   x",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 fa\u00e7ade \u00fcber Stra\u00dfe \u00c5ngstr\u00f6m",
    "cafe\u0301 (e + combining acute) vs caf\u00e9",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034da\u0300lgo",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u30ab\u30bf\u30ab\u30ca\u3002",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4.",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645! \u0647\u0630\u0627 \u0646\u0635 \u0639\u0631\u0628\u064a.",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u042d\u0442\u043e \u0442\u0435\u0441\u0442.",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03ba\u03b5\u03af\u03bc\u03b5\u03bd\u03bf",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "emoji \U0001f600\U0001f603\U0001f604 and \U0001f984 unicorn",
    "family \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 zwj",
    "flags \U0001f1eb\U0001f1f7 \U0001f1ef\U0001f1f5 \U0001f1fa\U0001f1f8",
    "skin tone \U0001f44d\U0001f3fd thumbs, heart \u2764\ufe0f",
    "\U0001f984",
    "math \u2200x\u2208\u211d: x\u00b2 \u2265 0, \u221e, \u2211, \u03c0 \u2248 3.14159",
    "full-width \uff21\uff22\uff23\uff11\uff12\uff13",
    "Roman numeral \u2167 and circled \u2460\u2461\u2462 and fractions \u00bd \u00be",
    "Arabic-Indic digits \u0661\u0662\u0663 and Devanagari \u0967\u0968\u0969",
    "1234567890",
    "3.14159265358979323846264338327950288419716939937510",
    "Phone: +1 (555) 123-4567, ZIP 90210, year 2024.",
    "12 34 567 8901 23456 1,000,000 1.000.000,00",
    "version 1.2.3-beta+build.45",
    "x1 y22 z333 a4444b",
    "It's, you're, we've, I'm, they'll, he'd",
    "IT'S YOU'RE WE'VE I'M THEY'LL HE'D",
    "It'S wE'Ve THEY'LL don't can't won't",
    "'s 't 're 've 'm 'll 'd",
    "case folding in (?i:'s): it'\u017f (long s), THE\u212a (Kelvin sign), it\u2019s (curly)",
    "quotes \u2018single\u2019 \u201cdouble\u201d \u00abguillemets\u00bb",
    "def foo(x):\n    return x ** 2  # square\n\nprint(foo(3))\n",
    "int main() {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}",
    "for (let i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#section",
    "email: someone@example.com, path: /usr/local/bin/python3, C:\\Windows\\System32",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "text<|endoftext|>more text",
    "<|endoftext|><|endoftext|>",
    "<|im_start",
    "partial <|im_start and <|im_end| and <|endoftext",
    "<|im_start|><|im_end|><|im_start|>",
    "< |im_start| > spaced out",
    "<repo_name>pmpd<file_sep>main.cc<filename>x.py",
    "!!!??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( )))",
    "a.b,c;d:e!f?g",
    "HTML <div class=\"x\">&amp; &lt;tag&gt;</div>",
    "Markdown **bold** _italic_ `code` [link](http://x.y)",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "abababababababababababababababababab",
    "                                                  ",
    "\n" * 20,
    "mongolian vowel separator \u180e here, zero width space \u200b here, word joiner \u2060 here",
    "soft\u00adhyphen, bom \ufeff, replacement \ufffd",
    "private use \ue000 and noncharacter \ufdd0 and plane 15 \U000f0000",
    "line separator \u2028 paragraph separator \u2029 next line \u0085 end",
    "vertical tab \x0b form feed \x0c bell \x07 nul \x00 end",
    # Not in NFC (for "ids_nfc"): composed by NFC, reordered by combining class, singletons.
    "e\u0301 e\u0300 o\u0308 u\u0308 n\u0303 c\u0327 decomposed Latin",
    "\u212b ngstr\u00f6m sign vs \u00c5, \u2126 ohm sign vs \u03a9",
    "\u1100\u1161\u11a8 conjoining jamo vs \uac01",
    "a\u0301\u0316 reordered marks, \u1e9b\u0323 long s, \ufb01 ligature kept",
]

# Raw byte strings that are not valid UTF-8 (the golden stores HF's ids of their "replace" decoding).
INVALID_UTF8 = [
    b"abc\xff def",
    b"\xe2\x82 truncated euro",
    b"ends mid character \xf0\x9f\xa6",
    b"\xc0\x80 overlong nul",
    b"surrogate \xed\xa0\x80 here",
    b"\xf4\x90\x80\x80 beyond U+10FFFF",
    b"\x80\x81\x82 stray continuation bytes",
    b"mixed \xe4\xbd\xa0\xe5\xa5 \xe4\xb8\x96\xe7\x95\x8c",
]


def cut(text, i):
    n = CUT_LENGTHS[i % len(CUT_LENGTHS)]
    return text[:n]


def corpus_texts(shared):
    out = []  # (source, text)
    with gzip.open(os.path.join(shared, "data/c4/c4-validation.00000-of-00008.first800.json.gz"), "rt",
                   encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 45:
                break
            t = json.loads(line)["text"]
            out.append((f"c4/{i}", t if i % 15 == 7 else cut(t, i)))
    wiki = []
    with open(os.path.join(shared, "data/text/wikitext2-raw-test.jsonl"), encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"]
            if t.strip():
                wiki.append(t)
    for k, i in enumerate(range(0, 35 * 7, 7)):
        t = wiki[i]
        out.append((f"wikitext/{i}", t if k in (3, 20) else cut(t, k)))
    with open(os.path.join(shared, "data/eval/cnn_dm.specbench80.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 22:
                break
            t = json.loads(line)["turns"][0]
            out.append((f"cnn_dm/{i}", t if i in (4, 17) else cut(t, i + 3)))
    with open(os.path.join(shared, "data/eval/dialogsum.test.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 22:
                break
            t = json.loads(line)["dialogue"]
            out.append((f"dialogsum/{i}", t if i in (2, 13) else cut(t, i + 5)))
    with open(os.path.join(shared, "data/eval/iwslt2017-en-fr.test-sample30.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 15:
                break
            j = json.loads(line)
            out.append((f"iwslt/{i}/en", j["source"]))
            out.append((f"iwslt/{i}/fr", j["reference"]))
    return out


LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")


def regex_pre_tokenizer(regex):
    from tokenizers import Regex, pre_tokenizers
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def smollm_pre_tokenizer():
    from tokenizers import pre_tokenizers
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])


def load_tokenizer(gguf):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_golden(path, header, cases):
    # One case per line: small diffs when the golden is regenerated.
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("{\"header\": " + json.dumps(header, ensure_ascii=False) + ",\n\"cases\": [\n")
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")
    os.replace(tmp, path)


def verify(directory, golden_path):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(directory)
    golden = json.load(open(golden_path, encoding="utf-8"))
    bad = 0
    for i, c in enumerate(golden["cases"]):
        text = bytes.fromhex(c["text_hex"]).decode("utf-8", "replace") if "text_hex" in c else c["text"]
        ids = tok.encode(text, add_special_tokens=True)
        if ids != c["ids"] or tok.decode(ids) != c["decoded"]:
            bad += 1
            if bad <= 3:
                print(f"case {i} ({c['source']}): {ids[:20]} vs golden {c['ids'][:20]}")
    print(f"verify {directory}: {len(golden['cases']) - bad}/{len(golden['cases'])} cases identical")
    return bad == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--shared", default=DEFAULT_SHARED)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--save-tokenizer", metavar="DIR", help="also save the corrected tokenizer.json into DIR")
    ap.add_argument("--verify", metavar="DIR", help="only check AutoTokenizer.from_pretrained(DIR) against --out")
    args = ap.parse_args()
    if args.verify:
        sys.exit(0 if verify(args.verify, args.out) else 1)

    import tokenizers
    import transformers

    texts = [(f"hand/{i}", t) for i, t in enumerate(HAND_WRITTEN)] + corpus_texts(args.shared)
    cases = [{"source": s, "text": t} for s, t in texts]
    cases += [{"source": f"invalid_utf8/{i}", "text_hex": b.hex()} for i, b in enumerate(INVALID_UTF8)]

    def text_of(c):
        return bytes.fromhex(c["text_hex"]).decode("utf-8", "replace") if "text_hex" in c else c["text"]

    tok = load_tokenizer(args.gguf)
    raw_ids = [tok.encode(text_of(c), add_special_tokens=True) for c in cases]
    converter_pre = str(tok.backend_tokenizer.pre_tokenizer)
    tok.backend_tokenizer.pre_tokenizer = smollm_pre_tokenizer()
    start = time.time()
    for c in cases:
        c["ids"] = tok.encode(text_of(c), add_special_tokens=True)
        c["decoded"] = tok.decode(c["ids"])
    seconds = time.time() - start
    differing = [i for i, c in enumerate(cases) if c["ids"] != raw_ids[i]]
    backend = tok.backend_tokenizer
    for name, regex, ignore_merges in (("llama3", LLAMA3_REGEX, True), ("qwen2", QWEN2_REGEX, False)):
        backend.pre_tokenizer = regex_pre_tokenizer(regex)
        backend.model.ignore_merges = ignore_merges
        for c in cases:
            c["ids_" + name] = backend.encode(text_of(c), add_special_tokens=True).ids
    backend.pre_tokenizer = smollm_pre_tokenizer()
    backend.model.ignore_merges = False
    pre = {"smollm": smollm_pre_tokenizer(), "llama3": regex_pre_tokenizer(LLAMA3_REGEX),
           "qwen2": regex_pre_tokenizer(QWEN2_REGEX)}
    for c in cases:
        # ByteLevel spells each byte as one character, so a piece's length is its length in bytes.
        c["piece_bytes"] = {name: [len(p) for p, _ in pt.pre_tokenize_str(text_of(c))] for name, pt in pre.items()}
    from tokenizers import normalizers
    backend.normalizer = normalizers.NFC()
    for c in cases:
        c["ids_nfc"] = backend.encode(text_of(c), add_special_tokens=True).ids
    print(f"{len(cases)} texts; transformers' GGUF tokenizer (pre_tokenizer {converter_pre}) and the corrected "
          f"one (Digits(individual) + ByteLevel) differ on {len(differing)}: {differing}")
    print(f"HF encode+decode of all texts: {seconds * 1000:.1f} ms")

    header = {
        "model": os.path.basename(args.gguf),
        "model_sha256": sha256(args.gguf),
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "loaded_with": "AutoTokenizer.from_pretrained(dir, gguf_file=name)",
        "pre_tokenizer": "Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)] "
                         "(set by this script: SmolLM2's own; the GGUF converter's is " + converter_pre + ")",
        "converter_vs_corrected_differing_texts": len(differing),
        "converter_vs_corrected_differing_indices": differing,
        "ids": "encode(text, add_special_tokens=True)",
        "decoded": "decode(ids)",
        "ids_llama3": "ids with pre_tokenizer Sequence[Split(Regex(llama3), Isolated), ByteLevel(use_regex=False)], "
                      "model.ignore_merges=True",
        "ids_qwen2": "ids with pre_tokenizer Sequence[Split(Regex(qwen2), Isolated), ByteLevel(use_regex=False)]",
        "ids_nfc": "ids with normalizer NFC (and the SmolLM pre-tokenizer)",
        "piece_bytes": "byte lengths of pre_tokenizer.pre_tokenize_str(text) per pre-tokenizer (no added tokens)",
        "invalid_utf8": "cases with text_hex: ids of bytes.decode('utf-8', 'replace')",
        "num_texts": len(cases),
        "generated_by": "scripts/make_bpe_tokenizer_golden.py",
    }
    write_golden(args.out, header, cases)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")
    if args.save_tokenizer:
        os.makedirs(args.save_tokenizer, exist_ok=True)
        tok.backend_tokenizer.save(os.path.join(args.save_tokenizer, "tokenizer.json"))
        print(f"wrote {args.save_tokenizer}/tokenizer.json (do not commit it)")


if __name__ == "__main__":
    main()
