#!/usr/bin/env python3
"""pmpd-serve as users run it, on stories260K quantized to any-precision 2..4 bits:
- flags checked before anything is loaded;
- the official OpenAI Python client (PyPI `openai`), streaming and not: the text equals
  pmpd-generate's for the same greedy request and the per-token precisions follow the schedule;
- malformed JSON, wrong types, an oversized body, an unknown model and 50 concurrent requests each
  get the right status, and the server answers correctly afterwards;
- SIGTERM and SIGINT stop it with exit code 0.

Usage: pmpd_serve_cli_test.py PMPD_SERVE PMPD_GENERATE PMPD_QUANTIZE STORIES260K_DIR
Exit 77 (ctest: skipped) when `openai` is not importable, unless CI is set (then it fails).
"""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

serve, generate, quantize, stories = sys.argv[1:5]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(binary, args, timeout=120, stdin=None):
    return subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout, input=stdin)


# 1. Flags checked before anything is loaded (the model path does not exist).
for args, needle in [(["--port", "70000"], "--port"), (["--scheduler", "magic"], "--scheduler"),
                     (["--precisions", "3,4"], "strictly decreasing"),
                     (["--scheduler", "learned"], "--classifier"),
                     (["--scheduler", "learned", "--classifier", "x", "--switch-steps", "3"],
                      "--switch-steps"),
                     (["--max-tokens", "10", "--max-tokens-limit", "5"], "--max-tokens"),
                     (["--threads", "0"], "--threads"), (["--device", "gpu"], "--device"),
                     (["--force"], "--force")]:
    r = run(serve, ["--model", "/nonexistent/model"] + args)
    check(r.returncode == 2 and "pmpd-serve: error:" in r.stderr and needle in r.stderr,
          f"{args}: rc {r.returncode}, stderr {r.stderr.strip()!r}")
r = run(serve, ["--model", "/nonexistent/model"])
check(r.returncode == 1 and "/nonexistent/model" in r.stderr, f"missing model: {r.stderr.strip()!r}")

try:
    import openai
except ImportError:
    if os.environ.get("CI"):
        print("FAIL: the openai package is missing (scripts/install-deps.sh installs it)")
        sys.exit(1)
    print("skipped: the openai package is missing (scripts/install-deps.sh installs it)")
    sys.exit(77)

work = tempfile.mkdtemp(prefix="pmpd-serve-test-")
model = os.path.join(work, "stories260K-ap")
r = run(quantize, ["--model", stories, "--out", model, "--seed-precision", "2", "--parent-precision", "4"])
if r.returncode != 0:
    print("FAIL: pmpd-quantize:", r.stderr)
    sys.exit(1)
r = run(serve, ["--model", model, "--precisions", "4,3"])
check(r.returncode != 0 and "default schedule" in r.stderr, f"no switch steps: {r.stderr.strip()!r}")

SCHEDULE = ["--precisions", "4,3,2", "--switch-steps", "3,6"]


def start(extra):
    p = subprocess.Popen([serve, "--model", model, "--port", "0", "--chat-template", "chatml",
                          "--max-body-bytes", "65536"] + extra,
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


def post(port, path, body, headers=None):
    data = body if isinstance(body, bytes) else body.encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers=headers or {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


p, port = start(SCHEDULE)
try:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
    check([m.id for m in client.models.list().data] == ["stories260K-ap"], "models list")

    # 2. Text completions equal pmpd-generate's (its stdout is the prompt, then the streamed text).
    prompt = "Once upon a time"
    gen = run(generate, ["--model", model, "--prompt", prompt, "--max-new-tokens", "12", "--color", "never"] +
              SCHEDULE)
    check(gen.returncode == 0, f"pmpd-generate: {gen.stderr}")
    gen_json = json.loads(run(generate, ["--model", model, "--prompt", prompt, "--max-new-tokens", "12",
                                         "--json"] + SCHEDULE).stdout)
    t = client.completions.create(model="stories260K-ap", prompt=prompt, max_tokens=12, temperature=0)
    check(prompt + t.choices[0].text + "\n" == gen.stdout,
          f"completion {t.choices[0].text!r} != pmpd-generate {gen.stdout!r}")
    pm = t.model_extra["pmpd"]
    check(pm["token_precisions"] == gen_json["precisions"], f"precisions {pm['token_precisions']} vs "
          f"pmpd-generate {gen_json['precisions']}")
    check(pm["token_precisions"][:6] == [4, 4, 4, 3, 3, 3] and set(pm["token_precisions"][6:]) <= {2},
          f"precisions do not follow 4,3,2 at 3,6: {pm['token_precisions']}")
    check(t.usage.completion_tokens == len(pm["token_precisions"]), f"usage: {t.usage}")
    pieces, precisions = [], []
    for chunk in client.completions.create(model="stories260K-ap", prompt=prompt, max_tokens=12,
                                           temperature=0, stream=True):
        extra = chunk.model_extra.get("pmpd") or {}
        if "precision" in extra:
            pieces.append(chunk.choices[0].text)
            precisions.append(extra["precision"])
    check("".join(pieces) == t.choices[0].text, f"stream {''.join(pieces)!r} != {t.choices[0].text!r}")
    check(precisions == pm["token_precisions"], f"streamed precisions {precisions}")

    # Chat: pmpd-generate --chat prints the user's message, a newline, the answer, a newline.
    question = "Tell me a story."
    gchat = run(generate, ["--model", model, "--prompt", question, "--chat", "--chat-template", "chatml",
                           "--max-new-tokens", "10", "--color", "never"] + SCHEDULE)
    check(gchat.returncode == 0, f"pmpd-generate --chat: {gchat.stderr}")
    msgs = [{"role": "user", "content": question}]
    c = client.chat.completions.create(model="stories260K-ap", messages=msgs, max_tokens=10, temperature=0)
    check(c.object == "chat.completion" and c.choices[0].message.role == "assistant", f"chat object: {c}")
    check(question + "\n" + c.choices[0].message.content.lstrip(" ") + "\n" == gchat.stdout,
          f"chat {c.choices[0].message.content!r} != pmpd-generate {gchat.stdout!r}")
    pieces, finish = [], None
    for chunk in client.chat.completions.create(model="stories260K-ap", messages=msgs, max_tokens=10,
                                                temperature=0, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    check("".join(pieces) == c.choices[0].message.content, "chat stream differs from the whole answer")
    check(finish == c.choices[0].finish_reason, f"finish {finish} vs {c.choices[0].finish_reason}")
    try:
        client.completions.create(model="stories260K-ap", prompt="x", max_tokens=5, n=2)
        check(False, "n=2 was accepted")
    except openai.BadRequestError as e:
        check("n must be 1" in str(e), f"n=2 error: {e}")
    try:
        client.completions.create(model="gpt-4", prompt="x", max_tokens=5)
        check(False, "an unknown model was accepted")
    except openai.NotFoundError as e:
        body = e.body if isinstance(e.body, dict) else {}
        code = body.get("code", (body.get("error") or {}).get("code"))
        check(e.status_code == 404 and code == "model_not_found", f"unknown model error: {e} {e.body}")

    # 3. Bad requests: the right status, a JSON error.
    for body, status in [(b"{not json", 400), (b'{"prompt": 5}', 400), (b'{"prompt": "x", "max_tokens": "9"}', 400),
                         (b'{"prompt": "x", "temperature": [1]}', 400),
                         (json.dumps({"prompt": "a" * 100000}).encode(), 413),
                         (b'{"prompt": "x", "model": "nope"}', 404)]:
        got, j = post(port, "/v1/completions", body)
        check(got == status and isinstance(j, dict) and "error" in j, f"{body[:40]!r}: {got} {j}")

    # 50 concurrent requests: each answered 200 or 503 (the queue is full), none lost.
    def one(i):
        return post(port, "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": 12, "temperature": 0}))

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    statuses = [s for s, _ in results]
    check(set(statuses) <= {200, 503} and statuses.count(200) >= 1, f"concurrent statuses: {statuses}")
    check(all(j["choices"][0]["text"] == t.choices[0].text for s, j in results if s == 200),
          "a concurrent answer differs from the greedy answer")
    check(all(j["error"]["type"] == "server_busy" for s, j in results if s == 503), "503 without server_busy")
    print(f"50 concurrent requests: {statuses.count(200)} answered, {statuses.count(503)} told to retry")
    after = client.completions.create(model="stories260K-ap", prompt=prompt, max_tokens=12, temperature=0)
    check(after.choices[0].text == t.choices[0].text, "the answer after the burst differs")
finally:
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=20)
        rest = p.stderr.read()
        check(rc == 0 and "SIGTERM, stopped" in rest, f"SIGTERM: rc {rc}, stderr {rest!r}")
    except subprocess.TimeoutExpired:
        p.kill()
        check(False, "pmpd-serve did not stop within 20 s of SIGTERM")

# 4. SIGINT (Ctrl-C) stops it too.
p, port = start([])
p.send_signal(signal.SIGINT)
try:
    rc = p.wait(timeout=20)
    check(rc == 0 and "SIGINT, stopped" in p.stderr.read(), f"SIGINT: rc {rc}")
except subprocess.TimeoutExpired:
    p.kill()
    check(False, "pmpd-serve did not stop within 20 s of SIGINT")
shutil.rmtree(work, ignore_errors=True)

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
