#!/usr/bin/env python3
"""The chat page in a real browser (Debian's headless chromium, driven over the DevTools protocol):
it loads the model info, runs a comparison of two schedules from a link, streams both answers
with every token coloured by its precision, shows the switch points, and its text equals the
API's answer to the same request. No JavaScript error may occur.

Runs on stories260K quantized to any-precision 2..4 bits (pmpd-quantize), with ChatML spelled as
text (the model has no template of its own); the screenshot is kept as the test's artifact.

Usage: chat_page_browser_test.py PMPD_SERVE PMPD_QUANTIZE STORIES260K_DIR [SCREENSHOT.png]
Exit 77 (ctest: skipped) without chromium or python3-websocket, unless CI is set (then it fails).
"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

serve, quantize, stories = sys.argv[1], sys.argv[2], sys.argv[3]
shot = sys.argv[4] if len(sys.argv) > 4 else None


def skip(why):
    if os.environ.get("CI"):
        print("FAIL:", why, "(scripts/install-deps.sh installs it)")
        sys.exit(1)
    print("skipped:", why)
    sys.exit(77)


browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if not browser:
    skip("no chromium")
try:
    import websocket
except ImportError:
    skip("no python3-websocket")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


work = tempfile.mkdtemp(prefix="pmpd-browser-test-")
model = os.path.join(work, "stories260K-ap")
q = subprocess.run([quantize, "--model", stories, "--out", model, "--seed-precision", "2",
                    "--parent-precision", "4"], capture_output=True, text=True, timeout=120)
if q.returncode != 0:
    print("FAIL: pmpd-quantize:", q.stderr)
    sys.exit(1)
server = subprocess.Popen([serve, "--model", model, "--port", "0", "--chat-template", "chatml",
                           "--precisions", "4,3,2", "--switch-steps", "2,4"],
                          stderr=subprocess.PIPE, text=True)


def first_match(proc, pattern, seconds=60):
    """The first group of `pattern` in `proc`'s stderr lines, or None (exited, or `seconds` gone)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        line = proc.stderr.readline()
        m = re.search(pattern, line)
        if m:
            return m.group(1)
        if not line and proc.poll() is not None:
            return None
    return None


port = first_match(server, r"http://127\.0\.0\.1:(\d+)/")
if port is None:
    print("FAIL: pmpd-serve did not start")
    sys.exit(1)

profile = tempfile.mkdtemp(prefix="pmpd-chromium-")
chrome = subprocess.Popen([browser, "--headless=new", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                           "--no-first-run", f"--user-data-dir={profile}", "--remote-debugging-port=0",
                           "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
try:
    # Chromium prints "DevTools listening on ws://..." once its debugging port is open.
    ws_url = first_match(chrome, r"DevTools listening on (ws://\S+)")
    if ws_url is None:
        print("FAIL: chromium did not start")
        sys.exit(1)
    devtools = "http://" + ws_url.split("/")[2]
    page = [t for t in json.load(urllib.request.urlopen(devtools + "/json")) if t["type"] == "page"][0]
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True, timeout=30)
    next_id = [0]
    events = []

    def call(method, **params):
        next_id[0] += 1
        ws.send(json.dumps({"id": next_id[0], "method": method, "params": params}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == next_id[0]:
                return msg.get("result", {})
            events.append(msg)

    def js(expression):
        r = call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r.get("result", {}).get("value")

    call("Runtime.enable")
    call("Emulation.setDeviceMetricsOverride", width=1400, height=820, deviceScaleFactor=1, mobile=False)
    call("Page.navigate", url=f"http://127.0.0.1:{port}/?compare=1&b=4&max_tokens=8&q=Tell%20me%20a%20story.")
    # Done when both answers carry the server's summary ("(server)" replaces the live counter).
    done = False
    deadline = time.time() + 60
    while time.time() < deadline and not done:
        time.sleep(0.2)
        done = js("document.querySelectorAll('.msg.assistant .stats').length == 2 && "
                  "[...document.querySelectorAll('.msg.assistant .stats')]"
                  ".every(s => s.textContent.includes('(server)'))") is True
    check(done, "the two answers did not finish within 60 s")
    cols = js("""[...document.querySelectorAll('.column')].map(c => ({
        heading: c.querySelector('h2').textContent,
        classes: [...c.querySelectorAll('.msg.assistant .tok')].map(t => t.className),
        text: c.querySelector('.msg.assistant .text').textContent,
        stats: c.querySelector('.msg.assistant .stats').textContent}))""") or []
    check(len(cols) == 2, f"two columns expected: {cols}")
    if len(cols) == 2:
        a, b = cols
        check(a["heading"] == "A: 4→3→2, static at 2, 4", f"heading A: {a['heading']!r}")
        check(b["heading"] == "B: uniform 4 bits", f"heading B: {b['heading']!r}")
        precisions_a = [int(c.split("p")[-1]) for c in a["classes"]]
        check(precisions_a == sorted(precisions_a, reverse=True) and precisions_a[:1] == [4],
              f"A's token colours are not 4 then 3 then 2: {precisions_a}")
        check(set(int(c.split("p")[-1]) for c in b["classes"]) <= {4}, f"B's colours: {b['classes']}")
        check("switched 4→3 at token 2" in a["stats"], f"A's stats: {a['stats']!r}")
        check("average 4.00 bits" in b["stats"], f"B's stats: {b['stats']!r}")
        # The page's text is the API's answer to the same request.
        req = {"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 8, "temperature": 0,
               "precisions": [4, 3, 2], "scheduler": "static", "switch_steps": [2, 4]}
        api = json.load(urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(req).encode(),
            headers={"Content-Type": "application/json"})))
        check(a["text"] == api["choices"][0]["message"]["content"],
              f"page text {a['text']!r} != API {api['choices'][0]['message']['content']!r}")
        n = len(api["pmpd"]["token_precisions"])
        check(f"{n} tokens" in a["stats"], f"A's stats do not count {n} tokens: {a['stats']!r}")
    # An error is shown, not thrown: a request the server refuses.
    js("document.querySelector('#cfgA [name=precisions]').value = '9';"
       "document.querySelector('#input').value = 'again';"
       "document.querySelector('#form').dispatchEvent(new Event('submit', {cancelable: true}))")
    deadline = time.time() + 30
    err = None
    while time.time() < deadline and not err:
        time.sleep(0.2)
        err = js("(document.querySelector('.error') || {}).textContent")
    check(err and "precisions" in err, f"the refused request shows no error: {err!r}")
    if shot:
        os.makedirs(os.path.dirname(os.path.abspath(shot)), exist_ok=True)
        data = call("Page.captureScreenshot", format="png")["data"]
        with open(shot, "wb") as f:
            f.write(base64.b64decode(data))
    call("Runtime.evaluate", expression="0")  # drain pending events
    thrown = [e for e in events if e.get("method") == "Runtime.exceptionThrown"]
    errors = [e for e in events if e.get("method") == "Runtime.consoleAPICalled"
              and e["params"].get("type") == "error"]
    check(not thrown, f"JavaScript exceptions: {thrown}")
    check(not errors, f"console errors: {errors}")
finally:
    chrome.kill()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=20)
    shutil.rmtree(profile, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
