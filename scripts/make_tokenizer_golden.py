#!/usr/bin/env python3
"""Golden token ids for hand-checked strings, for both tokenizers in $PMPD_SHARED_DIR/models.

Reference: the Python sentencepiece package on tokenizer.model; for Llama-2 the ids are also
checked against Hugging Face `tokenizers` reading tokenizer.json (an independent implementation),
and the script stops if the two disagree.

Usage: python3 scripts/make_tokenizer_golden.py [SHARED_DIR] > tests/golden/tokenizer_ids.json
Needs: sentencepiece, tokenizers (PyPI).
"""
import json
import os
import sys

import sentencepiece as spm
from tokenizers import Tokenizer

STRINGS = [
    "Hello world",
    " leading space",
    "  two leading spaces and trailing  ",
    "Numbers 0123456789 and 3.14159, 1,000,000",
    "Ünïcödé café naïve – “quotes” — dash",
    "日本語のテキスト",
    "emoji 🙂🚀 and symbols ∑∫√",
    "tabs\tand\nnewlines\n\nend",
    "Once upon a time, there was a little girl named Lily.",
    "byte fallback: \u0394\u03b1\u03b4 \U0001F984",
]


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PMPD_SHARED_DIR", "../shared")
    out = {"note": "ids from sentencepiece (Python) without BOS; made by scripts/make_tokenizer_golden.py",
           "sentencepiece": spm.__version__, "tokenizers": {}}
    for name in ("stories260K", "llama2-tokenizer"):
        sp = spm.SentencePieceProcessor(model_file=os.path.join(shared, "models", name, "tokenizer.model"))
        cases = []
        for s in STRINGS:
            ids = sp.encode(s)
            cases.append({"text": s, "ids": ids, "pieces": [sp.id_to_piece(i) for i in ids],
                          "decoded": sp.decode(ids)})
        hf_path = os.path.join(shared, "models", name, "tokenizer.json")
        if os.path.exists(hf_path):
            hf = Tokenizer.from_file(hf_path)
            for c in cases:
                hf_ids = [i for i in hf.encode(c["text"]).ids if i != 1]
                if hf_ids != c["ids"]:
                    sys.exit(f"{name}: sentencepiece and tokenizers disagree on {c['text']!r}: "
                             f"{c['ids']} vs {hf_ids}")
            out["checked_with_tokenizers_json"] = out.get("checked_with_tokenizers_json", []) + [name]
        out["tokenizers"][name] = cases
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
