#!/usr/bin/env python3
"""Golden outputs of SmolLM2-135M-Instruct (the Q4_1 GGUF that scripts/install-deps.sh unpacks),
from Hugging Face transformers loading the same file with `gguf_file=` (dequantized, float32):

  - last-position logits of 3 plain prompts (stored: the top 64 logits with their ids, a sample of
    64 fixed ids, and the float64 mean / L2 norm of the whole row), with the prompt ids;
  - 48 greedy new tokens for 3 chat prompts, rendered with the model's own chat template
    (apply_chat_template, add_generation_prompt=True) and tokenized by the same tokenizer.

The C++ test (tests/inference/smollm2_golden_test.cc) loads the GGUF with our reader, tokenizer and
chat template, and compares. The tolerance it uses is derived in that test from this file's
`max_abs_logit` and float32 rounding over the model's depth.

Tokenizer note: transformers' GGUF converter has no split rule for the pre-tokenizer "smollm" and
falls back to GPT-2 splitting; SmolLM2's own tokenizer isolates every digit first. The script sets
the model's real pre-tokenizer (Digits(individual_digits=True), ByteLevel) before encoding; for
the prompts here both give the same ids (checked below and recorded as `pretokenizer_differences`).

Usage: $(scripts/pmpd-env.sh | head -1) scripts/make_smollm2_golden.py > tests/golden/smollm2_golden.json
Needs: torch, transformers, gguf, accelerate (scripts/install-deps.sh --dev).
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import transformers
from tokenizers import pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer

PLAIN_PROMPTS = [
    "The capital of France is",
    "In 1969, Neil Armstrong became the first person to",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
]
CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Summarize in one sentence: The city council met on Tuesday to discuss the new park. "
    "After a long debate, members voted 7 to 2 to fund it, and construction starts in May.",
]
NEW_TOKENS = 48
SAMPLE_IDS = list(range(0, 49152, 768))  # 64 fixed ids across the vocabulary


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    gguf = subprocess.check_output([os.path.join(here, "pmpd-env.sh"), "smollm2"], text=True).strip()
    d, name = os.path.dirname(gguf), os.path.basename(gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    raw = AutoTokenizer.from_pretrained(d, gguf_file=name)
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    model.eval()
    torch.manual_seed(0)
    out = {
        "note": "scripts/make_smollm2_golden.py: transformers with gguf_file=, float32, greedy",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "gguf": name,
        "plain": [],
        "chat": [],
        "pretokenizer_differences": 0,
    }
    with torch.no_grad():
        for p in PLAIN_PROMPTS:
            ids = tok(p)["input_ids"]
            out["pretokenizer_differences"] += int(ids != raw(p)["input_ids"])
            logits = model(torch.tensor([ids])).logits[0, -1].double().numpy()
            top = np.argsort(-logits)[:64]
            out["plain"].append({
                "prompt": p,
                "ids": ids,
                "top_ids": [int(i) for i in top],
                "top_logits": [float(logits[i]) for i in top],
                "sample_ids": SAMPLE_IDS,
                "sample_logits": [float(logits[i]) for i in SAMPLE_IDS],
                "mean": float(logits.mean()),
                "l2": float(np.sqrt((logits ** 2).sum())),
                "max_abs_logit": float(np.abs(logits).max()),
            })
        for p in CHAT_PROMPTS:
            text = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True)
            ids = tok(text)["input_ids"]
            out["pretokenizer_differences"] += int(ids != raw(text)["input_ids"])
            # An explicit all-ones mask: without one, generate() masks every prompt token equal to
            # pad_token_id, and ChatML prompts contain <|im_end|> (the eos/pad id).
            x = torch.tensor([ids])
            gen = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=NEW_TOKENS,
                                 do_sample=False, eos_token_id=None, pad_token_id=tok.eos_token_id)
            new = gen[0, len(ids):].tolist()
            # Stop rule of our generator: the end-of-turn token ends the answer (kept if produced).
            out["chat"].append({"user": p, "rendered": text, "ids": ids, "new_ids": new,
                                "new_text": tok.decode(new)})
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
