"""The console in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by Selenium (python3-selenium), against the real daemon.

Every page loads without a console error; the Models page lists the bundled models (and one
built with a dead layer, tests/browser/models/dying_relu.json) with their layer stacks, and
loads and unloads one with the admin token, which is never stored; Try it runs every example
and shows relud's reply, whose curl command prints the same; Activations plots every layer
kind with numbers equal to relud's own and follows a slider moved by the keyboard; Diagnose
shows the dead layer; Training starts a job from its form and plots its loss, learning rate,
gradient norms (clipped steps, the clip bound) and dead units live, point for point with the
job's history, until it is done, shows a failed job's error and cancels a running one; Live
reads /metrics; /docs renders the OpenAPI document; a page at
phone width does not scroll sideways; and the console served from another origin (a second
local port) calls relud through CORS, and says why when relud does not allow that origin.

Screenshots of each page go to <build>/screenshots/ (next to $RELUD). Waits are for
conditions in the page, never for a guessed time. Ends with "N passed, N failed".
"""
import functools
import http.server
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clients"))
from common import ROOT, RELUD, check, finish  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

SHOTS = os.path.join(os.path.dirname(os.path.abspath(RELUD)), "screenshots")
TOKEN = "s3cret"
WAIT = 30  # seconds a condition may take on a busy 2-core machine


class Daemon:
    def __init__(self, model_dir, *flags):
        self.log = tempfile.NamedTemporaryFile(prefix="relud-browser-", suffix=".log", delete=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELUD_")}
        self.proc = subprocess.Popen([RELUD, "--host", "127.0.0.1", "--port", "0", "--model-dir",
                                      model_dir, *flags], stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=env, cwd=ROOT)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.proc.poll() is None:
            text = open(self.log.name, errors="replace").read()
            m = re.search(r"listening on http://[^ ]*:(\d+) ", text)
            if m and re.search(r"\bready\b", text):
                self.port = int(m.group(1))
                break
            time.sleep(0.02)
        if not self.port:
            raise RuntimeError("relud did not start: " + open(self.log.name).read())
        self.url = f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, token=None):
        """(status, parsed JSON or text) of one request."""
        data = body.encode() if isinstance(body, str) else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.unlink(self.log.name)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def static_server(directory):
    """web/ served as files from another origin (a second local port), in a thread."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=directory))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def close(a, b, rtol=1e-6, atol=1e-7):
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= atol + rtol * abs(b)
    return a == b


# ---- set-up ----------------------------------------------------------------------------------
os.makedirs(SHOTS, exist_ok=True)
model_dir = tempfile.mkdtemp(prefix="relud-browser-models-")
for src in (os.path.join(ROOT, "config", "models"), os.path.join(ROOT, "tests", "browser", "models")):
    for fn in os.listdir(src):
        shutil.copy(os.path.join(src, fn), model_dir)
other = static_server(os.path.join(ROOT, "web"))
other_origin = f"http://127.0.0.1:{other.server_address[1]}"
d = Daemon(model_dir, "--admin-token", TOKEN, "--cors-origins", other_origin)
no_cors = Daemon(model_dir)

opts = webdriver.ChromeOptions()
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1280,1000", "--hide-scrollbars", "--lang=en-US"):
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
driver.set_script_timeout(WAIT)
js = driver.execute_script


def wait(what, cond, timeout=WAIT):
    """Polls cond() until it is truthy; returns its value (None after the timeout)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = cond()
        except Exception:  # an element not there yet
            last = None
        if last:
            return last
        time.sleep(0.05)
    print(f"  (waited {timeout} s for {what})")
    return None


def console_errors(allow=()):
    """The page's SEVERE console entries since the last call, less network errors whose
    message matches a pattern in allow (an API error the step asked for)."""
    out = []
    for e in driver.get_log("browser"):
        if e["level"] != "SEVERE":
            continue
        if any(re.search(p, e["message"]) for p in allow):
            continue
        out.append(e["message"][:300])
    return out


def no_errors(page, allow=()):
    errs = console_errors(allow)
    check(f"{page}: no console errors", not errs, "; ".join(errs))


def shot(name):
    """The whole page (the window made as tall as the page, up to 4000 px, then put back)."""
    w, h = js("return [window.outerWidth, window.outerHeight]")
    tall = js("return Math.min(4000, document.documentElement.scrollHeight)")
    driver.set_window_size(w, max(h, tall + (h - js("return window.innerHeight"))))
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))
    driver.set_window_size(w, h)


def open_page(base, page):
    driver.get(base + "#" + page)
    return wait(f"#page-{page} shown", lambda: js(f"return !document.getElementById('page-{page}').hidden"))


def click(css):
    el = driver.find_element(By.CSS_SELECTOR, css)
    js("arguments[0].scrollIntoView({block: 'center'})", el)
    el.click()
    return el


# ---- Models ------------------------------------------------------------------------------------
def models():
    open_page(d.url + "/", "models")
    names = wait("model cards with details", lambda: js(
        "const c = [...document.querySelectorAll('.model')];"
        "return c.length >= 3 && c.every(x => x.querySelector('table.layers')) && c.map(x => x.dataset.model)"))
    listed = [m["name"] for m in d.request("GET", "/v1/models")[1]["models"]]
    check("Models: lists every model of model_dir (with the one built with a dead layer)",
          names and sorted(names) == sorted(listed) and "dying_relu" in names, (names, listed))
    card = js("const c = document.querySelector('[data-model=simple_nn]'); return c && {state: c.dataset.state,"
              "params: c.querySelector('.params-total').textContent, rows: c.querySelectorAll('table.layers tbody tr').length,"
              "text: c.textContent}")
    check("Models: simple_nn READY, its 2 layers and 55 parameters", card and card["state"] == "READY"
          and card["rows"] == 2 and card["params"].replace("\u202f", "") == "55", card and {k: card[k] for k in ("state", "rows", "params")})
    check("Models: shows the model's description and statistics", card and "SimpleNN" in card["text"]
          and "inferences" in card["text"])
    check("Models: load and unload are disabled without the admin token",
          js("return [...document.querySelectorAll('.model button')].every(b => b.disabled)"))
    no_errors("Models")
    shot("models")

    driver.find_element(By.ID, "token").send_keys("wrong-token")
    click("#token-form button[type=submit]")
    wait("buttons enabled", lambda: js("return !document.querySelector('[data-model=simple_nn] button').disabled"))
    click("[data-model=simple_nn] button:nth-of-type(2)")  # Unload
    msg = wait("the API's error", lambda: js("const e = document.querySelector('[data-model=simple_nn] .error .msg'); return e && e.textContent"))
    check("Models: a wrong token shows the API's own message", msg == "Authorization: wrong bearer token", msg)
    no_errors("Models, wrong token", allow=[r"status of 401"])
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    click("#token-form button[type=submit]")
    wait("list reloaded", lambda: js("return document.querySelector('#token-state').textContent.startsWith('admin token set')"))
    wait("buttons enabled", lambda: js("const b = document.querySelector('[data-model=simple_nn] button'); return b && !b.disabled"))
    click("[data-model=simple_nn] button:nth-of-type(2)")
    state = wait("simple_nn unloaded", lambda: js("const c = document.querySelector('[data-model=simple_nn]'); return c && c.dataset.state === 'UNAVAILABLE' && c.dataset.state"))
    check("Models: Unload with the token unloads (as relud says)", state == "UNAVAILABLE" and
          [m["state"] for m in d.request("GET", "/v1/models")[1]["models"] if m["name"] == "simple_nn"] == ["UNAVAILABLE"])
    click("[data-model=simple_nn] button:nth-of-type(1)")
    state = wait("simple_nn loaded", lambda: js("const c = document.querySelector('[data-model=simple_nn]'); return c && c.dataset.state === 'READY' && c.querySelector('table.layers') && c.dataset.state"))
    check("Models: Load brings it back", state == "READY")
    stored = js("return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
    check("Models: the token is in no storage nor cookie", TOKEN not in stored and stored == "{}{}", stored)
    no_errors("Models, with the token")


# ---- Try it ------------------------------------------------------------------------------------
def try_it():
    open_page(d.url + "/", "try")
    examples = wait("the examples", lambda: js("return window.relud.examples"))
    check("Try it: the README's examples are there (ReLU, SimpleNN, a loss with gradients, a bad request, OIP infer)",
          examples and all(any(k in e["summary"] for e in examples) for k in
                           ("through ReLU", "SimpleNN", "loss with its gradients", "bad request", "Inference")),
          [e["summary"] for e in examples or []])
    for i, ex in enumerate(examples or []):
        js("document.getElementById('try-reply').dataset.status = ''")
        click(f"[data-example='{i}']")
        status = wait("the reply", lambda: js("return document.getElementById('try-reply').dataset.status"))
        shown = driver.find_element(By.ID, "try-out").text
        want_status, want = d.request(ex["method"], ex["path"], ex.get("body"))
        try:
            got = json.loads(shown)
        except ValueError:
            got = shown
        check(f"Try it: \"{ex['summary']}\" shows relud's reply ({want_status})",
              status == str(want_status) and close(got, want), f"{status} {shown[:200]} vs {want_status} {str(want)[:200]}")
        cmd = driver.find_element(By.ID, "try-curl").text
        out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=20).stdout
        try:
            cur = json.loads(out)
        except ValueError:
            cur = out
        check(f"Try it: \"{ex['summary']}\": its curl command prints the same", close(cur, want), f"{cmd[:160]} -> {out[:160]}")
        if "loss with its gradients" in ex["summary"]:
            shot("try")
    bad = [e for e in examples or [] if "bad request" in e["summary"]]
    if bad:
        click(f"[data-example='{examples.index(bad[0])}']")
        wait("the reply", lambda: js("return document.getElementById('try-reply').dataset.status === '400'"))
        check("Try it: a bad request shows its error message", 'unknown field \\"negative_slop\\"' in driver.find_element(By.ID, "try-out").text
              and "is-error" in driver.find_element(By.ID, "try-out").get_attribute("class"))
    body = driver.find_element(By.ID, "try-body")
    body.clear()
    body.send_keys('{"input": [3, -3], "layers": [{"type": "relu6"}]}')
    js("document.getElementById('try-reply').dataset.status = ''")
    body.send_keys(Keys.CONTROL, Keys.ENTER)
    wait("the reply", lambda: js("return document.getElementById('try-reply').dataset.status"))
    check("Try it: Ctrl+Enter in the editor sends it", json.loads(driver.find_element(By.ID, "try-out").text) == {"output": [3, 0]})
    no_errors("Try it", allow=[r"status of 40\d"])


# ---- Activations -------------------------------------------------------------------------------
def activations():
    open_page(d.url + "/", "activations")
    kinds = [s["$ref"].split(".")[-1] for s in
             json.load(open(os.path.join(ROOT, "web", "openapi.json")))["components"]["schemas"]["Layer"]["oneOf"]]
    n = wait("every plot", lambda: js("const c = [...document.querySelectorAll('.act')];"
                                      "return c.length && c.every(x => x.dataset.state === 'ok') && c.length"))
    check(f"Activations: a plot for every layer kind ({len(kinds)})", n == len(kinds), n)
    plots = js("const o = {}; for (const [k, c] of Object.entries(window.relud.activations))"
               " o[k] = {request: c.request, x: c.data && c.data.x, y: c.plotBox.plot && c.plotBox.plot.series[0].y,"
               " dy: c.plotBox.plot && c.plotBox.plot.series[1].y,"
               " points: (c.plotBox.querySelector('path.series') || {getAttribute: () => ''}).getAttribute('d').split(/[ML]/).length - 1};"
               " return o")
    for k in kinds:
        p = plots.get(k) or {}
        st, rep = d.request("POST", "/v1/forward", p.get("request"))
        ok = st == 200 and p.get("y") is not None
        if ok:
            out, g = rep["output"], rep["gradients"]["input"]
            if isinstance(out[0], list):
                out, g = [r[0] for r in out], [r[0] for r in g]
            ok = out == p["y"] and g == p["dy"] and p["points"] == len(p["x"])
        check(f"Activations: {k} plots relud's own f(x) and f'(x), every point drawn", ok,
              f"{st} {str(rep)[:150]}")
    relu = plots.get("relu", {})
    check("Activations: relu is max(0, x), its derivative 1 for x > 0 and 0 at and below 0 (torch's relu'(0) = 0)",
          relu.get("x") and all(y == max(0.0, x) or abs(y - max(0.0, x)) < 1e-6 for x, y in zip(relu["x"], relu["y"]))
          and all(dy == (1 if x > 0 else 0) for x, dy in zip(relu["x"], relu["dy"])))
    sig = plots.get("sigmoid", {})
    check("Activations: sigmoid and its derivative s(1 - s), as math says",
          sig.get("x") and all(abs(y - 1 / (1 + math.exp(-x))) < 1e-6 and abs(dy - y * (1 - y)) < 1e-6
                               for x, y, dy in zip(sig["x"], sig["y"], sig["dy"])))
    shot("activations")
    # a slider moved with the keyboard: LeakyReLU's negative_slope from 0.01 to 0.2 (19 steps of 0.01)
    slider = driver.find_element(By.ID, "act-leaky_relu-negative_slope")
    js("arguments[0].scrollIntoView({block: 'center'})", slider)
    slider.send_keys(*([Keys.ARROW_RIGHT] * 19))
    y0 = wait("the new leaky_relu plot", lambda: js(
        "const c = window.relud.activations.leaky_relu; return c.card.dataset.state === 'ok' && c.request.layers[0].negative_slope > 0.19"
        " && [c.data.x[0], c.data.y[0], c.data.dy[0]]"))
    check("Activations: a slider moved by keyboard replots with relud's numbers (slope 0.2: f(-4) = -0.8, f' = 0.2)",
          y0 and abs(y0[1] - 0.2 * y0[0]) < 1e-6 and abs(y0[2] - 0.2) < 1e-6, y0)
    # the API's error in the card: hardtanh with min_val above max_val
    js("const s = document.getElementById('act-hardtanh-min_val'); s.value = s.max;"
       "s.dispatchEvent(new Event('input'));"
       "const t = document.getElementById('act-hardtanh-max_val'); t.value = t.min; t.dispatchEvent(new Event('input'))")
    msg = wait("the hardtanh error", lambda: js("const c = window.relud.activations.hardtanh;"
                                                "return c.card.dataset.state === 'error' && c.err.querySelector('.msg').textContent"))
    st, rep = d.request("POST", "/v1/forward", js("return window.relud.activations.hardtanh.request"))
    check("Activations: a parameter relud refuses shows relud's own message", msg and st == 400 and msg == rep["error"], msg)
    js("document.getElementById('act-deriv').click()")
    check("Activations: the comparison plot shows derivatives on request",
          wait("overlay", lambda: js("const p = document.getElementById('act-overlay').plot; return p && p.title.includes('derivatives')")))
    no_errors("Activations", allow=[r"status of 400"])


# ---- Diagnose ----------------------------------------------------------------------------------
def diagnose():
    open_page(d.url + "/", "diagnose")


    def diagnosis():
        return wait("the diagnosis", lambda: js(
            "const r = [...document.querySelectorAll('#diag-out tr[data-layer]')]; return r.length && {"
            "rows: r.map(x => ({i: +x.dataset.layer, type: x.dataset.type, dead: +x.dataset.dead, width: +x.dataset.width,"
            " cls: x.className, zf: +x.dataset.zeroFraction})), verdict: document.querySelector('#diag-out .verdict').className,"
            " text: document.querySelector('#diag-out').textContent, last: window.relud.lastDiagnosis}"))


    g = diagnosis()
    dead = [r for r in g["rows"] if "dead" in r["cls"].split()] if g else []
    check("Diagnose: opens on the dying-ReLU demo and shows its dead layers at a glance (verdict, red rows)",
          g and "bad" in g["verdict"] and dead and dead[0]["i"] == 3 and dead[0]["dead"] == dead[0]["width"] == 48,
          g and (g["verdict"], dead))
    st, rep = d.request("POST", "/v1/forward", g["last"]["request"]) if g else (0, None)
    check("Diagnose: the table is relud's stats for that batch",
          g and st == 200 and all(r["dead"] == len(s["dead_units"]) and abs(r["zf"] - s["zero_fraction"]) < 1e-12
                                  for r, s in zip(g["rows"], rep["stats"]["layers"])))
    check("Diagnose: a dead layer passes no gradient back (zero weight gradients before it)",
          g and "0 (no gradient)" in g["text"])
    shot("diagnose")
    js("document.getElementById('diag-out').textContent = ''")
    driver.find_element(By.CSS_SELECTOR, "#diag-net option[value='model:dying_relu']").click()
    wait("the width of dying_relu", lambda: js("return document.getElementById('diag-width').value === '4'"))
    click("#diag-run")
    g = diagnosis()
    dead = [r["i"] for r in g["rows"] if "dead" in r["cls"].split()] if g else []
    check("Diagnose: the served model built with a dead layer shows it (layer 3, and what follows gets zeros)",
          g and 3 in dead and g["last"]["request"].get("model") == "dying_relu", g and (dead, g["verdict"]))
    # pasted data (CSV) instead of a random batch
    js("document.getElementById('diag-out').textContent = ''")
    driver.find_element(By.CSS_SELECTOR, "#diag-src option[value='paste']").click()
    driver.find_element(By.ID, "diag-data").send_keys("x1,x2,x3,x4\n1,2,3,4\n-1,0.5,0,2\n0,0,0,0\n")
    click("#diag-run")
    g = diagnosis()
    check("Diagnose: pasted CSV rows are the batch (a header line skipped)",
          g and g["last"]["request"]["input"] == [[1, 2, 3, 4], [-1, 0.5, 0, 2], [0, 0, 0, 0]]
          and "3 samples" in g["text"], g and g["last"]["request"]["input"])
    driver.find_element(By.CSS_SELECTOR, "#diag-src option[value='normal']").click()
    js("document.getElementById('diag-out').textContent = ''")
    driver.find_element(By.CSS_SELECTOR, "#diag-net option[value='demo:healthy']").click()
    click("#diag-run")
    g = diagnosis()
    check("Diagnose: the healthy demo has no dead layer", g and not any("dead" in r["cls"].split() for r in g["rows"]),
          g and g["verdict"])
    js("document.getElementById('diag-out').textContent = ''")
    driver.find_element(By.CSS_SELECTOR, "#diag-net option[value='demo:exploding']").click()
    click("#diag-run")
    g = diagnosis()
    norm = g and g["last"]["reply"]["gradients"].get("total_norm")
    shown = js("const e = document.querySelector('#diag-out .total-norm'); return e && e.textContent")
    check("Diagnose: exploding gradients: clip_grad_norm's total_norm, shown, far over the clip of 1",
          norm and norm > 10 and "clipped to 1" in g["text"] and shown and abs(float(shown) - norm) <= 1e-3 * norm, (norm, shown))
    no_errors("Diagnose")


# ---- Live --------------------------------------------------------------------------------------
def live():
    open_page(d.url + "/", "live")
    driver.find_element(By.CSS_SELECTOR, "#live-every option[value='1000']").click()
    click("#live-load")
    row = wait("rates and the /v1/forward row with its errors", lambda: js(
        "const r = document.querySelector('#live-routes tr[data-route=\"/v1/forward\"]');"
        "const p = document.getElementById('live-rate').plot;"
        "return r && p && p.x.length >= 2 && +r.querySelector('.total').textContent >= 20 && r.textContent"), timeout=60)
    check("Live: request rates, latencies and errors by route from /metrics", row and
          js("return document.getElementById('live-lat').plot.series.length === 3"), row)
    info = js("return document.getElementById('live-info').textContent")
    check("Live: the BLAS library and kernel in use", "OpenBLAS" in info and "kernel" in info, info)
    errs = wait("errors charted", lambda: js("const p = document.getElementById('live-err').plot;"
                                             "return p && p.series.some(s => s.label === 'invalid_request') && p.series.map(s => s.label)"))
    check("Live: the bad requests show as invalid_request errors", errs, errs)
    wait("a few points more, for the picture", lambda: js("return document.getElementById('live-rate').plot.x.length >= 5"))
    shot("live")
    no_errors("Live", allow=[r"status of 400"])


# ---- API (/docs) -------------------------------------------------------------------------------
def api_docs():
    driver.get(d.url + "/docs")
    nops = wait("the operations", lambda: js("return !document.getElementById('page-api').hidden && document.querySelectorAll('details.op').length"))
    doc = json.load(open(os.path.join(ROOT, "web", "openapi.json")))
    want_ops = sum(1 for item in doc["paths"].values() for v in item if v in ("get", "post", "put", "delete"))
    check(f"/docs: renders every operation of /openapi.json ({want_ops})", nops == want_ops, nops)
    js("document.querySelector('#op-forward').open = true")
    shot("api")
    click("#op-forward .example a.button")
    wait("Try it with the example", lambda: js("return !document.getElementById('page-try').hidden && document.getElementById('try-body').value.includes('\"relu\"')"))
    js("document.getElementById('try-reply').dataset.status = ''")
    click("#try-send")
    st = wait("the reply", lambda: js("return document.getElementById('try-reply').dataset.status"))
    check("/docs: an example opens in Try it and runs", st == "200" and json.loads(driver.find_element(By.ID, "try-out").text) == {"output": [0, 0, 0, 1, 2]})
    no_errors("/docs")


# ---- Training ----------------------------------------------------------------------------------
def training():
    plot = ("const b = document.getElementById(arguments[0]); const p = b && b.plot; return p && {x: p.x,"
            " series: p.series.map(s => ({label: s.label, y: s.y, marks: s.marks || null})),"
            " paths: [...b.querySelectorAll('path.series')].map(e => e.getAttribute('d').split(/[ML]/).length - 1),"
            " dots: b.querySelectorAll('.marks circle').length, log: !!p.log}")

    def card(job=None, state=None, more=-1):
        """The job shown: {job, state, n (history entries), cancel (its Cancel button is there)}
        when it is that job in that state with more than `more` entries drawn."""
        c = js("const c = document.getElementById('train-card'); return c && {job: c.dataset.job, state: c.dataset.state,"
               " n: +c.dataset.history, cancel: !!document.getElementById('train-cancel')}")
        ok = c and (job is None or c["job"] == job) and (state is None or c["state"] == state) and c["n"] > more
        return c if ok else None

    open_page(d.url + "/", "train")
    wait("the example bodies", lambda: js("return document.querySelectorAll('#train-examples button').length === 2"))
    check("Training: without the admin token Start is disabled and the page says where to enter it",
          js("return document.getElementById('train-start').disabled") and
          "enter it on Models" in driver.find_element(By.ID, "train-token").text)
    try:
        ex = json.loads(driver.find_element(By.ID, "train-body").get_attribute("value"))
    except ValueError:
        ex = {}
    check("Training: the form starts with an example body shaped for the model", all(k in ex for k in ("input", "target", "loss", "optimizer")), list(ex))
    # the token, entered on Models, stays in the page's memory when the page changes
    click("[data-nav=models]")
    wait("Models", lambda: js("return !document.getElementById('page-models').hidden"))
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    click("#token-form button[type=submit]")
    wait("token set", lambda: js("return document.querySelector('#token-state').textContent.startsWith('admin token set')"))
    click("[data-nav=train]")
    wait("Start enabled", lambda: js("return !document.getElementById('page-train').hidden && !document.getElementById('train-start').disabled"))

    # a real job from the form: mnist_mlp, 4000 steps of 64 rows (2 or 3 seconds here), clipped
    js("const s = document.getElementById('train-model'); s.value = 'mnist_mlp'; s.dispatchEvent(new Event('change'))")
    rows = [[((i * 7 + k * 13) % 17) / 17 for k in range(784)] for i in range(64)]
    body = {"input": rows, "target": [i % 10 for i in range(64)], "loss": {"type": "cross_entropy"},
            "optimizer": {"type": "sgd", "lr": 0.05}, "batch_size": 64, "steps": 4000, "clip_grad_norm": 0.5,
            "save_as": "mnist_browser"}
    js("document.getElementById('train-body').value = arguments[0]", json.dumps(body))
    click("#train-start")
    c = wait("the new job, running, with steps drawn", lambda: card(state="running", more=0))
    jid = c and c["job"]
    row = jid and js("const r = document.querySelector(`#train-jobs tr[data-job='${arguments[0]}']`); return r && r.textContent", jid)
    check("Training: a job started from the form is listed (model, state, step of total) and plotted while it runs",
          c and row and "mnist_mlp" in row and "mnist_browser" in row and "running" in row and "/ 4\u202f000" in row, (c, row))
    more = jid and wait("more steps drawn", lambda: card(jid, more=c["n"]), timeout=60)
    check("Training: the plots follow the job live (more steps a second later)", more, (c, more))
    done = wait("the job done", lambda: card(jid, "done"), timeout=120)
    seq = js("return window.relud.training.seq")
    st, job = d.request("GET", f"/v1/train/{jid}")
    hist = job["history"] if st == 200 else []
    check("Training: the state reaches done, as relud says", done and job.get("state") == "done" and done["n"] == len(hist),
          (done and done["state"], job.get("state") if st == 200 else st))
    loss, lr, grad, dead = (js(plot, k) for k in ("train-loss", "train-lr", "train-grad", "train-dead"))
    steps = [e["step"] for e in hist]
    check(f"Training: the loss plot has a point per history entry ({len(hist)}), relud's losses",
          loss and loss["x"] == steps and loss["series"][0]["y"] == [e["loss"] for e in hist] and loss["paths"][0] == len(hist),
          loss and (len(loss["x"]), loss["paths"]))
    check("Training: the learning rate plotted per step", lr and lr["series"][0]["y"] == [e["lr"] for e in hist] and lr["paths"][0] == len(hist))
    nclip = sum(1 for e in hist if e["clipped"])
    check(f"Training: gradient norms with the clipped steps dotted ({nclip}) and the clip bound (0.5)",
          grad and grad["series"][0]["y"] == [e["grad_norm"] for e in hist] and grad["dots"] == nclip
          and any(s["label"] == "clip_grad_norm = 0.5" and set(s["y"]) == {0.5} for s in grad["series"])
          and sum(1 for s in grad["series"] if s["label"].endswith("linear")) == 3, grad and (grad["dots"], [s["label"] for s in grad["series"]]))
    widths = {1: 128, 3: 64}
    check("Training: the share of dead units per ReLU layer (dead_units / width)",
          dead and [s["label"] for s in dead["series"]] == ["#1 relu", "#3 relu"]
          and all(s["y"] == [e["layers"][k]["dead_units"] / widths[k] for e in hist] for s, k in zip(dead["series"], (1, 3))),
          dead and [s["label"] for s in dead["series"]])
    check("Training: polling stops when the job has finished (no request since)",
          js("return window.relud.training.timer === 0 && window.relud.training.seq === arguments[0]", seq))
    shot("training")

    # a failed job: the guide's exploding gradients, no clipping
    st, _ = d.request("PUT", "/v1/models/guide_deep", open(os.path.join(ROOT, "docs", "examples", "train", "exploding.json")).read(), token=TOKEN)
    st2, r = d.request("POST", "/v1/models/guide_deep/train", open(os.path.join(ROOT, "docs", "examples", "train", "exploding_plain.json")).read(), token=TOKEN)
    fid = r.get("id") if st2 == 202 else None
    click("#train-refresh")
    wait("the failed job listed", lambda: js("return document.querySelector(`#train-jobs tr[data-job='${arguments[0]}'] button`)", fid))
    click(f"#train-jobs tr[data-job='{fid}'] button")
    f = wait("the failed job shown", lambda: card(fid, "failed"), timeout=60)
    shown = js("const e = document.querySelector('#train-card .train-error .msg'); return e && e.textContent")
    err = d.request("GET", f"/v1/train/{fid}")[1].get("error")
    check("Training: a failed job (exploding gradients, no clipping) shows its error", st in (200, 201) and f and err and shown == err
          and "non-finite" in shown, (st, st2, shown, err))
    g = js(plot, "train-grad")
    check("Training: its exploding gradient norms on a log axis", g and g["log"] and len(g["x"]) == f["n"] > 0, g and (g["log"], g["x"]))
    shot("training-failed")

    # cancel: the API's long job, cancelled from the page
    st, r = d.request("POST", "/v1/models/mnist_mlp/train", open(os.path.join(ROOT, "docs", "examples", "train", "long_job.json")).read(), token=TOKEN)
    lid = r.get("id") if st == 202 else None
    click("#train-refresh")
    wait("the long job listed", lambda: js("return document.querySelector(`#train-jobs tr[data-job='${arguments[0]}'] button`)", lid))
    click(f"#train-jobs tr[data-job='{lid}'] button")
    wait("the long job running", lambda: (card(lid, "running") or {}).get("cancel"))
    click("#train-cancel")
    c = wait("the job cancelled", lambda: card(lid, "cancelled"), timeout=60)
    st, job = d.request("GET", f"/v1/train/{lid}")
    check("Training: Cancel (with the admin token) cancels a running job", c and job.get("state") == "cancelled"
          and "cancelled by a DELETE" in (job.get("error") or "") and not c["cancel"], (c and c["state"], job.get("state")))
    no_errors("Training")


# ---- keyboard and phone width ------------------------------------------------------------------
def keyboard_and_phone():
    open_page(d.url + "/", "models")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # the skip link
    seen = []
    for _ in range(9):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        seen.append(js("return document.activeElement.textContent.trim()"))
    check("Keyboard: Tab reaches every page of the navigation", all(p in seen for p in ("Models", "Try it", "Activations", "Diagnose", "Training", "Live", "API")), seen)
    js("[...document.querySelectorAll('[data-nav]')].find(a => a.textContent === 'Diagnose').focus()")
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    check("Keyboard: Enter on a navigation link opens its page",
          wait("diagnose", lambda: js("return !document.getElementById('page-diagnose').hidden")))
    driver.set_window_size(390, 844)
    for page in ("models", "try", "activations", "diagnose", "train", "live", "api"):
        open_page(d.url + "/", page)
        time.sleep(0)  # the page's own waits below
        wait(f"{page} content", lambda: js("return document.querySelector('#page-%s .card')" % page))
        over = js("return document.documentElement.scrollWidth - window.innerWidth")
        check(f"Phone width (390 px): {page} does not scroll sideways", over <= 1, f"{over} px too wide")
        if page in ("models", "diagnose", "train"):
            if page == "diagnose":
                wait("the diagnosis", lambda: js("return document.querySelector('#diag-out tr[data-layer]')"))
            shot(page + "-phone")
    no_errors("Phone width", allow=[r"status of 40\d"])
    driver.set_window_size(1280, 1000)


# ---- CORS: the console from another origin -----------------------------------------------------
def cors():
    driver.get(f"{other_origin}/?api={d.url}#try")
    examples = wait("the examples, from relud's /openapi.json across origins", lambda: js("return window.relud.examples"))
    check(f"CORS: the console at {other_origin} reads relud's /openapi.json", examples)
    js("document.getElementById('try-reply').dataset.status = ''")
    click("[data-example='0']")
    st = wait("the reply", lambda: js("return document.getElementById('try-reply').dataset.status"))
    check("CORS: a POST /v1/forward from the other origin gets relud's reply (preflight and all)",
          st == "200" and json.loads(driver.find_element(By.ID, "try-out").text) == {"output": [0, 0, 0, 1, 2]})
    shot("cors")
    driver.get(f"{other_origin}/?api={d.url}#models")
    wait("cards", lambda: js("return document.querySelectorAll('.model table.layers').length >= 3"))
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    click("#token-form button[type=submit]")
    wait("buttons enabled", lambda: js("const b = document.querySelector('[data-model=mnist_mlp] button'); return b && !b.disabled"))
    click("[data-model=mnist_mlp] button:nth-of-type(2)")
    state = wait("mnist_mlp unloaded", lambda: js("const c = document.querySelector('[data-model=mnist_mlp]'); return c && c.dataset.state === 'UNAVAILABLE'"))
    click("[data-model=mnist_mlp] button:nth-of-type(1)")
    state2 = wait("mnist_mlp loaded", lambda: js("const c = document.querySelector('[data-model=mnist_mlp]'); return c && c.dataset.state === 'READY'"))
    check("CORS: the admin routes work from an origin cors_origins names (Authorization preflight)", state and state2)
    no_errors("CORS")
    driver.get(f"{other_origin}/?api={no_cors.url}#try")
    wait("the examples (or their error)", lambda: js("return document.querySelector('#try-examples button, #try-examples .error')"))
    click("#try-send")
    msg = wait("the error", lambda: js("const e = document.querySelector('#try-out .error .msg'); return e && e.textContent"))
    check("CORS: a relud without this origin in cors_origins is refused by the browser, and the console says why",
          msg and "cors_origins" in msg, msg)
    console_errors()  # the refusals are the browser's CORS errors, expected here


SECTIONS = [(models, 'Models'), (try_it, 'Try it'), (activations, 'Activations'), (diagnose, 'Diagnose'), (live, 'Live'), (api_docs, 'API (/docs)'), (training, 'Training'), (keyboard_and_phone, 'keyboard and phone width'), (cors, 'CORS: the console from another origin')]
try:
    for fn, title in SECTIONS:
        try:
            fn()
        except Exception as e:  # a page that broke: the section fails, the others still run
            check(f"{title}: ran to the end", False, f"{type(e).__name__}: {str(e)[:300]}")
finally:
    driver.quit()
    other.shutdown()
    d.stop()
    no_cors.stop()
    shutil.rmtree(model_dir, ignore_errors=True)
print(f"screenshots: {SHOTS}")
finish()
