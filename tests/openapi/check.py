"""The OpenAPI document, validated, and every documented example's reply validated by it.

1. web/openapi.json against the OpenAPI 3.1 schema (oas-3.1/schema.json, the OpenAPI
   Initiative's, vendored from npm's @seriousme/openapi-schema-validator), and every Schema
   Object in it against JSON Schema 2020-12's meta-schema (Debian's python3-jsonschema).
2. The document's own examples against their schemas (request bodies not meant as bad
   requests, and response examples).
3. relud serves that very document at /openapi.json, byte for byte.
4. Every curl example of README.md and docs/*.md, run as tests/http/test_docs.c runs them (in
   document order, on a copy of config/models, with the same daemon directives): each HTTP
   exchange curl makes (read back from curl's own --trace) must be an operation of the
   document answering a status it lists, with a Content-Type it lists and a body its schema
   accepts. A request the document has no operation for must get the 404 or 405 (or, for
   OPTIONS, the 204) the document's description promises.

Run with Debian's /usr/bin/python3. Ends with "N passed, N failed".
"""
import gzip
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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clients"))
from common import ROOT, RELUD, check, finish  # noqa: E402

import jsonschema  # noqa: E402
from jsonschema import Draft202012Validator, RefResolver  # noqa: E402

DOC_PATH = os.path.join(ROOT, "web", "openapi.json")
with open(DOC_PATH, encoding="utf-8") as f:
    DOC_TEXT = f.read()
DOC = json.loads(DOC_TEXT)
with open(os.path.join(os.path.dirname(__file__), "oas-3.1", "schema.json"), encoding="utf-8") as f:
    OAS = json.load(f)
RESOLVER = RefResolver("", DOC)
VERBS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def errors(schema, value):
    """Validation errors of value against schema (its $refs into the document)."""
    v = Draft202012Validator(schema, resolver=RESOLVER)
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message[:300]}"
            for e in v.iter_errors(value)]


# ---- 1. the document -----------------------------------------------------------------
errs = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in Draft202012Validator(OAS).iter_errors(DOC)]
check("openapi.json is a valid OpenAPI 3.1 document (the OAS 3.1 schema)", not errs,
      "; ".join(errs[:5]))


def schema_objects(node, where):
    """Every Schema Object in the document: components, parameters, media types, headers."""
    for name, s in DOC["components"]["schemas"].items():
        yield f"components/schemas/{name}", s
    for path, item in DOC["paths"].items():
        for verb, op in item.items():
            if verb not in VERBS:
                continue
            for p in op.get("parameters", []):
                if "schema" in p:
                    yield f"{verb} {path} parameter {p['name']}", p["schema"]
            for ct, c in op.get("requestBody", {}).get("content", {}).items():
                yield f"{verb} {path} request {ct}", c.get("schema", {})
            for code, r in op["responses"].items():
                for ct, c in r.get("content", {}).items():
                    yield f"{verb} {path} {code} {ct}", c.get("schema", {})


bad = []
n = 0
for where, s in schema_objects(DOC, ""):
    n += 1
    try:
        Draft202012Validator.check_schema(s)
    except jsonschema.exceptions.SchemaError as e:
        bad.append(f"{where}: {e.message[:200]}")
check(f"every Schema Object ({n}) is valid JSON Schema 2020-12", not bad, "; ".join(bad[:5]))


def response(op, code):
    r = op["responses"].get(str(code))
    if r and "$ref" in r:
        r = DOC["components"]["responses"][r["$ref"].split("/")[-1]]
    return r


# ---- 2. the document's examples -------------------------------------------------------
nex = 0
bad = []
for path, item in DOC["paths"].items():
    for verb, op in item.items():
        if verb not in VERBS:
            continue
        c = op.get("requestBody", {}).get("content", {}).get("application/json")
        for name, ex in (c or {}).get("examples", {}).items():
            if ex["summary"].endswith("(400)"):
                continue  # meant as a bad request
            nex += 1
            bad += [f"{verb} {path} example {name}: {e}" for e in errors(c["schema"], ex["value"])]
        for code in op["responses"]:
            rc = (response(op, code).get("content") or {}).get("application/json")
            for name, ex in (rc or {}).get("examples", {}).items():
                nex += 1
                bad += [f"{verb} {path} {code} example {name}: {e}"
                        for e in errors(rc["schema"], ex["value"])]
check(f"the document's {nex} examples match their schemas", not bad, "; ".join(bad[:5]))


# ---- daemons -----------------------------------------------------------------------------
class Daemon:
    def __init__(self, model_dir, flags, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="relud-openapi-", suffix=".log", delete=False)
        e = dict(os.environ)
        e.pop("RELUD_ADMIN_TOKEN", None)
        e.update(env or {})
        self.proc = subprocess.Popen([RELUD, "--host", "127.0.0.1", "--port", "0", "--model-dir",
                                      model_dir, *flags], stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=e, cwd=ROOT)
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

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return r.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.unlink(self.log.name)


model_dir = tempfile.mkdtemp(prefix="relud-openapi-models-")
for fn in os.listdir(os.path.join(ROOT, "config", "models")):
    if not fn.startswith("."):
        shutil.copy(os.path.join(ROOT, "config", "models", fn), model_dir)
main = Daemon(model_dir, [], {"RELUD_ADMIN_TOKEN": "s3cret"})
extra = {}

# ---- 3. the document relud serves ------------------------------------------------------
served = main.get("/openapi.json")
check("GET /openapi.json serves web/openapi.json byte for byte", served == DOC_TEXT.encode(),
      f"{len(served)} bytes served, {len(DOC_TEXT.encode())} in the file (rebuild relud?)")


# ---- 4. every docs example's exchanges -----------------------------------------------------
def collect(rel):
    """The ```sh curl examples of one file: (name, cmd, daemon flags or None, during or None)."""
    path = os.path.join(ROOT, rel)
    if not os.path.exists(path):
        return []
    lines = open(path, encoding="utf-8").read().split("\n")
    out, daemon, during, i = [], None, None, 0
    while i < len(lines):
        m = re.match(r"<!-- docs-test (daemon|during):(.*)-->", lines[i])
        if m:
            if m.group(1) == "daemon":
                daemon = m.group(2).strip()
            else:
                during = m.group(2).strip()
        elif lines[i].startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body = "\n".join(lines[i + 1:j]).strip()
            if lines[i] == "```sh" and body.startswith("curl"):
                out.append((f"{rel}:{i + 1}", body, daemon, during))
            daemon = during = None
            i = j
        i += 1
    return out


examples = collect("README.md")
for fn in sorted(os.listdir(os.path.join(ROOT, "docs"))):
    if fn.endswith(".md"):
        examples += collect("docs/" + fn)


def daemon_for(flags):
    if flags is None:
        return main
    if flags not in extra:
        try:
            extra[flags] = Daemon(model_dir, flags.split())
        except RuntimeError as e:
            extra[flags] = None
            print(f"could not start relud with {flags}: {e}")
    return extra[flags]


def rewrite(cmd, port):
    return re.sub(r"(localhost|127\.0\.0\.1):8080", f"127.0.0.1:{port}", cmd)


def parse_trace(text):
    """The exchanges in curl's --trace output: [(request head, response head, body bytes)]."""
    out, blocks, cur = [], [], None
    for line in text.split("\n"):
        m = re.match(r"^(=>|<=) (Send|Recv) (header|data|SSL data)", line)
        if m:
            cur = [m.group(1) + m.group(3), bytearray()]
            blocks.append(cur)
        elif cur is not None and re.match(r"^[0-9a-f]{4,}: ", line):
            m = re.match(r"^[0-9a-f]{4,}: ((?:[0-9a-f]{2} ){1,16})", line)
            cur[1] += bytes.fromhex(m.group(1).replace(" ", ""))
        elif line.startswith("=="):
            cur = None
    req = resp = None
    body = bytearray()
    for kind, data in blocks:
        if kind == "=>header":
            if req is not None and resp is not None:
                out.append((req, resp, bytes(body)))
                resp, body = None, bytearray()
            req = bytes(data)
        elif kind == "<=header":
            if resp is not None and re.match(rb"HTTP/\S+ 1\d\d", resp):
                resp = None  # a 100 Continue before the real reply
            resp = (resp or b"") + bytes(data)
        elif kind == "<=data":
            body += data
    if req is not None and resp is not None:
        out.append((req, resp, bytes(body)))
    return out


def template_match(path):
    """The document's path template for a request path: the one with fewest parameters."""
    best = None
    for t in DOC["paths"]:
        rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)) + "/?$"
        if re.match(rx, path) and (best is None or t.count("{") < best.count("{")):
            best = t
    return best


def check_exchange(name, req, resp, body):
    line = req.split(b"\r\n", 1)[0].decode()
    method, target = line.split(" ")[:2]
    path = target.split("?")[0]
    heads = resp.decode("latin-1").split("\r\n")
    status = int(heads[0].split()[1])
    hdr = {}
    for h_ in heads[1:]:
        k, _, v = h_.partition(":")
        hdr.setdefault(k.strip().lower(), v.strip())
    ctype = hdr.get("content-type", "").split(";")[0].strip()
    if hdr.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    what = f"{name}: {method} {path} -> {status}"
    t = template_match(path)
    op = DOC["paths"][t].get("get" if method == "HEAD" else method.lower()) if t else None
    if op is None:
        if method == "OPTIONS":
            return check(f"{what}: OPTIONS answers 204 without a body (as info.description says)",
                         status == 204 and not body, f"{status} {body[:80]!r}")
        want = 405 if t else 404
        ok = status == want and ctype == "application/json" and \
            not errors({"$ref": "#/components/schemas/Error"}, json.loads(body or b"null"))
        return check(f"{what}: no operation, so a {want} Error (as info.description says)", ok,
                     body[:200])
    r = response(op, status)
    if r is None:
        return check(f"{what}: status documented for the operation", False,
                     f"responses: {sorted(op['responses'])}; body {body[:200]!r}")
    content = r.get("content") or {}
    if method == "HEAD" or not content:
        return check(f"{what}: no body " + ("for HEAD" if content else "documented") + ", none sent",
                     not body, f"{len(body)} bytes")
    media = content.get(ctype)
    if media is None:
        return check(f"{what}: Content-Type {ctype} documented", False, f"documented: {list(content)}")
    if ctype != "application/json":
        return check(f"{what}: {ctype} as documented", True)
    try:
        value = json.loads(body)
    except ValueError as e:
        return check(f"{what}: the JSON body parses", False, str(e))
    errs = errors(media["schema"], value)
    return check(f"{what}: the reply matches its schema", not errs, "; ".join(errs[:3]))


trace_dir = tempfile.mkdtemp(prefix="relud-openapi-trace-")
# curl as a shell function: the real curl, with a trace of what went over the wire
WRAP = ('curl() { command curl --trace "$(mktemp -p "$TRACE_DIR" t.XXXXXXXX)" "$@"; }\n')
nexchanges = 0
for name, cmd, flags, during in examples:
    d = daemon_for(flags)
    if d is None:
        check(f"{name}: a daemon with {flags}", False)
        continue
    for fn in os.listdir(trace_dir):
        os.unlink(os.path.join(trace_dir, fn))
    bg = None
    if during:
        bg = subprocess.Popen(["sh", "-c", rewrite(during, d.port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            m = d.get("/metrics").decode()
            inflight = re.search(r"\nrelud_inflight_requests (\d+)", m)
            buffered = re.search(r"\nrelud_buffered_body_bytes (\d+)", m)
            if inflight and int(inflight.group(1)) >= 2 and buffered and int(buffered.group(1)) > 0:
                break
            time.sleep(0.01)
    env = dict(os.environ, TRACE_DIR=trace_dir)
    try:
        subprocess.run(["bash", "-c", WRAP + rewrite(cmd, d.port)], cwd=ROOT, env=env, timeout=20,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        check(f"{name}: ran", False, "timed out")
    if bg:
        try:
            bg.wait(20)
        except subprocess.TimeoutExpired:
            bg.kill()
    traces = sorted(os.listdir(trace_dir), key=lambda fn: os.stat(os.path.join(trace_dir, fn)).st_mtime_ns)
    got = 0
    for fn in traces:
        for req, resp, body in parse_trace(open(os.path.join(trace_dir, fn), errors="replace").read()):
            check_exchange(name, req, resp, body)
            got += 1
    if not got:
        check(f"{name}: made an HTTP exchange to check", False, cmd[:120])
    nexchanges += got
check(f"{len(examples)} docs examples, {nexchanges} exchanges checked", len(examples) > 50)

for d in [main] + [x for x in extra.values() if x]:
    d.stop()
shutil.rmtree(model_dir, ignore_errors=True)
shutil.rmtree(trace_dir, ignore_errors=True)
finish()
