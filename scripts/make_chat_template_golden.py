#!/usr/bin/env python3
"""Golden chat-template renders and token ids for models/chat_template.h, from Hugging Face
transformers' apply_chat_template on the official Jinja templates.

Templates:
  chatml  SmolLM2-135M-Instruct's, read from its GGUF (tokenizer.chat_template), ids from the GGUF's
          tokenizer as transformers loads it;
  llama2  the chat_template of meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json, verbatim;
  vicuna  FastChat's vicuna_v1.1 conversation template (fastchat/conversation.py: system message,
          roles USER/ASSISTANT, SeparatorStyle.ADD_COLON_TWO, sep " ", sep2 "</s>") written as Jinja, the
          prompt format of lmsys/vicuna-7b-v1.5 (the PMPD reference's model);
ids for llama2 and vicuna with the Llama-2 tokenizer in $PMPD_SHARED_DIR/models/llama2-tokenizer.

Ids are the tokenizer run on the rendered text with special tokens parsed ("<s>", "</s>",
"<|im_start|>" become their ids) and BOS added by the tokenizer only when the template did not
write it (llama2's template writes bos_token; vicuna's and SmolLM2's do not: BOS per the tokenizer,
so Vicuna starts with <s> and SmolLM2, whose GGUF says add_bos_token false, with none).

Usage: python3 scripts/make_chat_template_golden.py [SHARED_DIR [SMOLLM2_GGUF]] > tests/golden/chat_templates.json
Needs: transformers (5.x), gguf, sentencepiece (PyPI; the pmpd venv has them).
"""
import json
import os
import shutil
import sys
import tempfile

import transformers
from transformers import AutoTokenizer

# meta-llama/Llama-2-7b-chat-hf, tokenizer_config.json "chat_template" (JSON-decoded).
LLAMA2_CHAT = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

# FastChat vicuna_v1.1 (ADD_COLON_TWO): system + " ", then "USER: {u} " and "ASSISTANT: {a}</s>",
# and "ASSISTANT:" to open the answer.
VICUNA_V11 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = 'A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user\\'s questions.' %}{% endif %}"
    "{{ system_message + ' ' }}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

SYSTEM = "You are a terse assistant.\nAnswer in one line."
CONVERSATIONS = [
    # (messages, add_generation_prompt)
    ([{"role": "user", "content": "What is the capital of France?"}], True),
    ([{"role": "system", "content": SYSTEM},
      {"role": "user", "content": "Summarise: the cat sat on the mat."}], True),
    ([{"role": "system", "content": SYSTEM},
      {"role": "user", "content": "  Hi there!\n"},
      {"role": "assistant", "content": " Hello! How can I help? "},
      {"role": "user", "content": "Tell me a joke about caf\u00e9s \U0001F642."}], True),
    ([{"role": "user", "content": "Count to three."},
      {"role": "assistant", "content": "1, 2, 3."},
      {"role": "user", "content": "And back?"},
      {"role": "assistant", "content": "3, 2, 1."}], False),
    ([{"role": "user", "content": "Translate to English: Bonjour le monde."}], False),
]


def llama_tokenizer(shared, template):
    d = tempfile.mkdtemp()
    src = os.path.join(shared, "models", "llama2-tokenizer")
    for f in ("tokenizer.model", "tokenizer.json"):
        shutil.copy(os.path.join(src, f), d)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "legacy": True,
                   "chat_template": template}, f)
    tok = AutoTokenizer.from_pretrained(d)
    shutil.rmtree(d)
    return tok


def cases(tok, template_writes_bos):
    out = []
    for messages, gen in CONVERSATIONS:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        ids = tok(text, add_special_tokens=not template_writes_bos).input_ids
        out.append({"messages": messages, "add_generation_prompt": gen, "text": text, "ids": ids})
    return out


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PMPD_SHARED_DIR", "../shared")
    cache = os.environ.get("PMPD_CACHE", os.path.expanduser("~/.cache/pmpd"))
    gguf = sys.argv[2] if len(sys.argv) > 2 else os.path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    smol = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
    formats = {}
    formats["chatml"] = {"source": os.path.basename(gguf) + " tokenizer.chat_template",
                         "template": smol.chat_template, "tokenizer": "smollm2",
                         "default_system": "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
                         "cases": cases(smol, False)}
    formats["llama2"] = {"source": "meta-llama/Llama-2-7b-chat-hf tokenizer_config.json",
                         "template": LLAMA2_CHAT, "tokenizer": "llama2-tokenizer", "default_system": "",
                         "cases": cases(llama_tokenizer(shared, LLAMA2_CHAT), True)}
    vicuna = llama_tokenizer(shared, VICUNA_V11)
    formats["vicuna"] = {"source": "FastChat vicuna_v1.1 (lmsys/vicuna-7b-v1.5)", "template": VICUNA_V11,
                         "tokenizer": "llama2-tokenizer",
                         "default_system": "A chat between a curious user and an artificial intelligence assistant. "
                                           "The assistant gives helpful, detailed, and polite answers to the user's "
                                           "questions.",
                         "cases": cases(vicuna, False)}
    out = {"note": "made by scripts/make_chat_template_golden.py", "transformers": transformers.__version__,
           "formats": formats}
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
