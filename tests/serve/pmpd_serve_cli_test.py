#!/usr/bin/env python3
"""pmpd-serve as users run it: flags checked before loading, the official OpenAI Python client
(PyPI `openai`) against the server (chat and text completions, streamed and not), clean exit on
SIGTERM and SIGINT.

Usage: pmpd_serve_cli_test.py PMPD_SERVE MODEL_DIR
Exit 77 (ctest: skipped) when `openai` is not importable, unless CI is set (then it fails).
"""
import os
import re
import signal
import subprocess
import sys
import time

serve, model = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(args, timeout=60):
    return subprocess.run([serve] + args, capture_output=True, text=True, timeout=timeout)


# 1. Flags checked before anything is loaded (the model path does not exist).
for args, needle in [(["--port", "70000"], "--port"), (["--scheduler", "magic"], "--scheduler"),
                     (["--precisions", "3,4"], "strictly decreasing"),
                     (["--scheduler", "learned"], "--classifier"),
                     (["--scheduler", "learned", "--classifier", "x", "--switch-steps", "3"],
                      "--switch-steps"),
                     (["--max-tokens", "10", "--max-tokens-limit", "5"], "--max-tokens"),
                     (["--threads", "0"], "--threads")]:
    r = run(["--model", "/nonexistent/model"] + args)
    check(r.returncode == 2 and "pmpd-serve: error:" in r.stderr and needle in r.stderr,
          f"{args}: rc {r.returncode}, stderr {r.stderr.strip()!r}")
r = run(["--model", "/nonexistent/model"])
check(r.returncode == 1 and "/nonexistent/model" in r.stderr, f"missing model: {r.stderr.strip()!r}")
r = run(["--model", model, "--precisions", "4,3"])
check(r.returncode != 0 and "default schedule" in r.stderr, f"no switch steps: {r.stderr.strip()!r}")

try:
    import openai
except ImportError:
    if os.environ.get("CI"):
        print("FAIL: the openai package is missing (scripts/install-deps.sh installs it)")
        sys.exit(1)
    print("skipped: the openai package is missing (scripts/install-deps.sh installs it)")
    sys.exit(77)


def start(extra):
    p = subprocess.Popen([serve, "--model", model, "--port", "0", "--chat-template", "chatml"] + extra,
                         stderr=subprocess.PIPE, text=True)
    line = ""
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m:
            return p, int(m.group(1))
        if not line and p.poll() is not None:
            break
    raise SystemExit(f"FAIL: pmpd-serve did not start: {line!r}")


# 2. The OpenAI client against the server.
p, port = start(["--precisions", "4,3,2", "--switch-steps", "2,4"])
try:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
    models = client.models.list()
    check([m.id for m in models.data] == ["anyprec-tiny"], f"models: {models}")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a story."}]
    c = client.chat.completions.create(model="anyprec-tiny", messages=msgs, max_tokens=8, temperature=0)
    check(c.object == "chat.completion" and c.choices[0].message.role == "assistant",
          f"chat object: {c}")
    check(c.usage.completion_tokens == len(c.model_extra["pmpd"]["token_precisions"]), f"usage: {c.usage}")
    check(c.model_extra["pmpd"]["token_precisions"][:2] == [4, 4], f"precisions: {c.model_extra['pmpd']}")
    pieces, finish, precisions = [], None, []
    for chunk in client.chat.completions.create(model="anyprec-tiny", messages=msgs, max_tokens=8,
                                                temperature=0, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
        extra = chunk.model_extra.get("pmpd") or {}
        if "precision" in extra:
            precisions.append(extra["precision"])
    check("".join(pieces) == c.choices[0].message.content,
          f"stream {''.join(pieces)!r} != whole {c.choices[0].message.content!r}")
    check(finish == c.choices[0].finish_reason, f"finish {finish} vs {c.choices[0].finish_reason}")
    t = client.completions.create(model="anyprec-tiny", prompt="Once upon a time", max_tokens=6,
                                  temperature=0)
    check(t.object == "text_completion" and t.usage.completion_tokens == 6, f"completion: {t}")
    try:
        client.completions.create(model="anyprec-tiny", prompt="x", max_tokens=5, n=2)
        check(False, "n=2 was accepted")
    except openai.BadRequestError as e:
        check("n must be 1" in str(e), f"n=2 error: {e}")
finally:
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=20)
        rest = p.stderr.read()
        check(rc == 0 and "SIGTERM, stopped" in rest, f"SIGTERM: rc {rc}, stderr {rest!r}")
    except subprocess.TimeoutExpired:
        p.kill()
        check(False, "pmpd-serve did not stop within 20 s of SIGTERM")

# 3. SIGINT (Ctrl-C) stops it too.
p, port = start([])
p.send_signal(signal.SIGINT)
try:
    rc = p.wait(timeout=20)
    check(rc == 0 and "SIGINT, stopped" in p.stderr.read(), f"SIGINT: rc {rc}")
except subprocess.TimeoutExpired:
    p.kill()
    check(False, "pmpd-serve did not stop within 20 s of SIGINT")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
