#!/usr/bin/python3
"""Offline validation of deploy/k8s (and the drain settings of docker-compose.yml).

Run by tests/containers/validate-k8s.sh. Three layers of checks, each counted:
1. YAML: every file parses; every document has apiVersion, kind, metadata.name.
2. Schema: every field name and scalar type is checked, recursively, against the Kubernetes
   API models of Debian's python3-kubernetes (22.6, generated from the Kubernetes 1.22
   OpenAPI spec), and the object is deserialized with client-side validation (required
   fields). autoscaling/v2 is checked against the 1.22 autoscaling/v2beta2 schema, which it
   is field-for-field identical to. This is not the API server's full validation (formats,
   enums, cross-field rules): the checks below cover what matters here.
3. Semantics: probe paths/ports, env names are real relud options, drain timeline
   (terminationGracePeriodSeconds > preStop + drain_timeout), selectors, HPA/PDB targets,
   ConfigMap size (1 MiB) and in sync with config/models, kustomization resources, image user.
Prints one line per check and "N passed, N failed"; exit 1 on any failure.
"""
import base64
import os
import re
import sys

try:
    import kubernetes  # noqa: F401  (Debian's python3-kubernetes: the schema checks)
except ImportError:
    # Another python3 first on PATH (pyenv, venv): use Debian's, where the package lives.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)

import yaml

from k8s_schema import get, walk

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "deploy", "k8s")
PASS = FAIL = SKIP = 0


def check(desc, cond, detail=""):
    global PASS, FAIL
    if cond:
        PASS += 1
        print(f"ok   - {desc}")
    else:
        FAIL += 1
        print(f"FAIL - {desc}" + (f": {detail}" if detail else ""))
    return cond


def skip(desc, why):
    global SKIP
    SKIP += 1
    print(f"skip - {desc} ({why})")


# ---- 1. YAML ---------------------------------------------------------------------------------
docs = []  # (file, doc)
for fn in sorted(os.listdir(K8S)):
    if not fn.endswith((".yaml", ".yml")):
        continue
    path = os.path.join(K8S, fn)
    try:
        loaded = [d for d in yaml.safe_load_all(open(path)) if d is not None]
        check(f"{fn}: parses as YAML ({len(loaded)} document(s))", len(loaded) > 0)
    except yaml.YAMLError as e:
        check(f"{fn}: parses as YAML", False, str(e).replace("\n", " "))
        continue
    for d in loaded:
        ok = isinstance(d, dict) and all(k in d for k in ("apiVersion", "kind"))
        if d.get("kind") != "Kustomization":
            ok = ok and isinstance(d.get("metadata"), dict) and bool(d["metadata"].get("name"))
        check(f"{fn}: {d.get('kind')} has apiVersion, kind, metadata.name", ok)
        docs.append((fn, d))

objs = {}  # kind -> (file, doc)
for fn, d in docs:
    objs.setdefault(d["kind"], (fn, d))

# ---- 2. Schema -------------------------------------------------------------------------------
try:
    import kubernetes.client as kc
    from kubernetes.client import ApiClient
except ImportError:
    kc = None

MODELS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}


if kc is None:
    skip("schema checks", "python3-kubernetes not installed")
else:
    api = ApiClient()
    for fn, d in docs:
        if d["kind"] == "Kustomization":
            continue
        model = MODELS.get((d.get("apiVersion"), d.get("kind")))
        if not check(f"{fn}: {d.get('apiVersion')} {d.get('kind')} is a known API type", model is not None):
            continue
        errs = []
        walk(d, model, d["kind"], errs)
        check(f"{fn}: every field and type matches the {model} schema", not errs, "; ".join(errs[:5]))
        try:
            api._ApiClient__deserialize(d, model)  # required fields, via client-side validation
            check(f"{fn}: required fields present ({model})", True)
        except (ValueError, TypeError) as e:
            check(f"{fn}: required fields present ({model})", False, str(e))


# ---- 3. Semantics ----------------------------------------------------------------------------
def parse_seconds(s):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", str(s))
    if not m:
        return None
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "ms" else v * 60 if m.group(2) == "m" else v


# relud's option names: from config/relud.conf (every option, documented) or `relud --help`.
options = set()
conf = os.path.join(ROOT, "config", "relud.conf")
if os.path.exists(conf):
    for line in open(conf):
        m = re.match(r"^\s*#?\s*([a-z][a-z0-9_]*)\s*=", line)
        if m:
            options.add(m.group(1))

dep_fn, dep = objs.get("Deployment", (None, None))
if not check("deploy/k8s has a Deployment", dep is not None):
    dep = {}
pod = get(dep, "spec", "template", "spec", default={})
tmpl_labels = get(dep, "spec", "template", "metadata", "labels", default={}) or {}
cont = next((c for c in pod.get("containers", []) if c.get("name") == "relud"), None) or {}
check("Deployment has a container named relud with an image", bool(cont.get("image")))
env = {e.get("name"): e.get("value") for e in cont.get("env", [])}
ports = {p.get("name"): p.get("containerPort") for p in cont.get("ports", [])}
http_port = ports.get("http")
check("container port 'http' is 8080 (the image's EXPOSE)", http_port == 8080, str(ports))
check("RELUD_PORT equals the container port", str(env.get("RELUD_PORT", "8080")) == str(http_port))
check("RELUD_HOST is 0.0.0.0 (relud's default 127.0.0.1 is unreachable for probes and Service)",
      env.get("RELUD_HOST") == "0.0.0.0", str(env.get("RELUD_HOST")))
if options:
    unknown = [n for n in env if n.startswith("RELUD_") and n[6:].lower() not in options]
    check(f"every RELUD_* env is a relud option (config/relud.conf, {len(options)} options)", not unknown,
          f"unknown: {unknown}")
else:
    skip("RELUD_* env names are relud options", "config/relud.conf not there yet")


def probe_ok(name, path):
    pr = cont.get(name) or {}
    hg = pr.get("httpGet") or {}
    port = hg.get("port")
    port_ok = port in ports or port in ports.values()
    return check(f"{name}: GET {path} on a declared container port", hg.get("path") == path and port_ok,
                 f"got {hg}")


probe_ok("readinessProbe", "/v2/health/ready")
probe_ok("livenessProbe", "/v2/health/live")
if cont.get("startupProbe"):
    probe_ok("startupProbe", "/v2/health/ready")

drain = parse_seconds(env.get("RELUD_DRAIN_TIMEOUT", "30"))
grace = pod.get("terminationGracePeriodSeconds", 30)
pre = get(cont, "lifecycle", "preStop", "exec", "command", default=[])
pre_s = float(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0.0
check(f"terminationGracePeriodSeconds {grace} > preStop sleep {pre_s:g} s + drain_timeout {drain:g} s",
      isinstance(grace, int) and drain is not None and grace > pre_s + drain)
res = cont.get("resources", {})
check("resources: cpu and memory requests, memory limit",
      all(k in res.get("requests", {}) for k in ("cpu", "memory")) and "memory" in res.get("limits", {}))
UNITS = {"": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
         "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}


def relud_bytes(v, default):  # relud's sizes: integer + optional unit in powers of 1024
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(v if v is not None else default))
    return int(m.group(1)) * UNITS[m.group(2).upper()] if m and m.group(2).upper() in UNITS else None


def k8s_bytes(q):  # Kubernetes memory quantity
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(q or ""))
    if not m:
        return None
    mult = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3, "M": 10**6,
            "G": 10**9, "T": 10**12, None: 1}[m.group(2)]
    return float(m.group(1)) * mult


threads = int(env.get("RELUD_THREADS", "0") or 0)
ws = relud_bytes(env.get("RELUD_MAX_WORKSPACE_BYTES"), "1GiB")
buf = relud_bytes(env.get("RELUD_MAX_BUFFERED_BYTES"), "1GiB")
lim = k8s_bytes(res.get("limits", {}).get("memory"))
models_size = sum(os.path.getsize(os.path.join(ROOT, "config", "models", f))
                  for f in os.listdir(os.path.join(ROOT, "config", "models")))
worst = (threads * ws + buf + models_size) if threads and ws and buf else None
check("memory limit above threads x max_workspace_bytes + max_buffered_bytes + models "
      f"({worst / 2**20 if worst else float('nan'):.0f} MiB vs limit {lim / 2**20 if lim else float('nan'):.0f} MiB)",
      worst is not None and lim is not None and worst < lim,
      "set RELUD_THREADS explicitly (0 = host cores, not the pod's CPU limit) and the caps")
check("selector.matchLabels match the pod template labels",
      all(tmpl_labels.get(k) == v for k, v in get(dep, "spec", "selector", "matchLabels", default={}).items())
      and bool(get(dep, "spec", "selector", "matchLabels")))

sc = pod.get("securityContext", {})
dockerfile = open(os.path.join(ROOT, "Dockerfile")).read()
m = re.search(r"^USER\s+(\d+)", dockerfile, re.M)
check("runs as non-root: runAsNonRoot with the image's numeric USER",
      sc.get("runAsNonRoot") is True and m is not None and sc.get("runAsUser") == int(m.group(1)),
      f"Dockerfile USER {m.group(1) if m else None}, runAsUser {sc.get('runAsUser')}")

mounts = {vm.get("name"): vm.get("mountPath") for vm in cont.get("volumeMounts", [])}
vols = {v.get("name"): v for v in pod.get("volumes", [])}
model_dir = env.get("RELUD_MODEL_DIR")
mvol = next((n for n, p in mounts.items() if p == model_dir), None)
cm_name = get(vols.get(mvol, {}), "configMap", "name")
check(f"RELUD_MODEL_DIR {model_dir} is a mounted configMap volume", cm_name is not None, str(mounts))

svc_fn, svc = objs.get("Service", (None, {}))
sel = get(svc, "spec", "selector", default={}) or {}
check("Service selector matches the pod labels", bool(sel) and all(tmpl_labels.get(k) == v for k, v in sel.items()))
tps = [p.get("targetPort") for p in get(svc, "spec", "ports", default=[])]
check("Service targetPort is a container port", bool(tps) and all(t in ports or t in ports.values() for t in tps),
      str(tps))

hpa_fn, hpa = objs.get("HorizontalPodAutoscaler", (None, {}))
ref = get(hpa, "spec", "scaleTargetRef", default={})
check("HPA targets the Deployment", ref.get("kind") == "Deployment" and ref.get("name") == get(dep, "metadata", "name"))
mn, mx = get(hpa, "spec", "minReplicas", default=1), get(hpa, "spec", "maxReplicas", default=0)
check(f"HPA 2 <= minReplicas ({mn}) <= maxReplicas ({mx})", 2 <= mn <= mx)
cpu_metric = any(get(m_, "resource", "name") == "cpu" for m_ in get(hpa, "spec", "metrics", default=[]))
check("HPA on cpu utilisation has a cpu request to be relative to", not cpu_metric or "cpu" in res.get("requests", {}))

pdb_fn, pdb = objs.get("PodDisruptionBudget", (None, None))
if pdb is not None:
    psel = get(pdb, "spec", "selector", "matchLabels", default={})
    check("PDB selects the pods and minAvailable < HPA minReplicas (drains can proceed)",
          bool(psel) and all(tmpl_labels.get(k) == v for k, v in psel.items())
          and get(pdb, "spec", "minAvailable", default=0) < mn)

cm_fn, cm = objs.get("ConfigMap", (None, {}))
check(f"ConfigMap {cm_name} referenced by the volume exists", get(cm, "metadata", "name") == cm_name)
data, binary = cm.get("data", {}) or {}, cm.get("binaryData", {}) or {}
size = sum(len(v.encode()) for v in data.values()) + sum(len(v) for v in binary.values())
check(f"ConfigMap under Kubernetes' 1 MiB object limit ({size} bytes)", size < 1024 * 1024 - 16 * 1024)
check("ConfigMap keys are valid file names", all(re.fullmatch(r"[-._a-zA-Z0-9]+", k) for k in list(data) + list(binary)))
mdir = os.path.join(ROOT, "config", "models")
files = sorted(f for f in os.listdir(mdir) if not f.startswith(".") and os.path.isfile(os.path.join(mdir, f)))
stale = []
for f in files:
    raw = open(os.path.join(mdir, f), "rb").read()
    if f in data:
        same = data[f].encode() == raw
    elif f in binary:
        same = base64.b64decode(binary[f]) == raw
    else:
        same = False
    if not same:
        stale.append(f)
extra = sorted((set(data) | set(binary)) - set(files))
check("ConfigMap is in sync with config/models", not stale and not extra,
      f"differs: {stale}, extra: {extra}; run: /usr/bin/python3 deploy/k8s/gen-configmap-models.py")

kfn, kus = objs.get("Kustomization", (None, None))
if kus is not None:
    listed = kus.get("resources", [])
    present = sorted(fn for fn, d in docs if d["kind"] != "Kustomization")
    check("kustomization lists every manifest, and only existing ones",
          sorted(set(listed)) == sorted(set(present)), f"listed {listed}, files {present}")
    names = [i.get("name") for i in kus.get("images", [])]
    check("kustomization images: entry names the container image", cont.get("image", "").split(":")[0] in names)

# docker-compose.yml: the same drain arithmetic.
comp = yaml.safe_load(open(os.path.join(ROOT, "docker-compose.yml")))
rs = get(comp, "services", "relud", default={})
cenv = rs.get("environment", {})
cdrain = parse_seconds(cenv.get("RELUD_DRAIN_TIMEOUT", "30"))
cgrace = parse_seconds(rs.get("stop_grace_period", "10s"))
check(f"docker-compose.yml: stop_grace_period {cgrace:g} s > drain_timeout {cdrain:g} s", cgrace > cdrain)
check("docker-compose.yml: relud replicas >= 2, health-gated balancer, published on 127.0.0.1 only",
      get(rs, "deploy", "replicas", default=1) >= 2
      and get(comp, "services", "lb", "depends_on", "relud", "condition") == "service_healthy"
      and all(str(p).startswith("127.0.0.1:") for s in comp["services"].values() for p in s.get("ports", [])))

# ---- the HTTPS overlay (deploy/k8s/tls): its patch merged as kustomize's strategic merge
# would (maps recursively, lists of named objects by name), then the same schema check.
def smerge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = smerge(base[k], v) if k in base else v
        return out
    if (isinstance(base, list) and isinstance(patch, list) and
            all(isinstance(x, dict) and "name" in x for x in base + patch)):
        out = [dict(x) for x in base]
        for x in patch:
            i = next((j for j, y in enumerate(out) if y["name"] == x["name"]), None)
            if i is None:
                out.append(x)
            else:
                out[i] = smerge(out[i], x)
        return out
    return patch


TLS = os.path.join(K8S, "tls")
tkus = yaml.safe_load(open(os.path.join(TLS, "kustomization.yaml")))
check("tls/kustomization.yaml: builds on ../ with one patch",
      tkus.get("resources") == ["../"] and len(tkus.get("patches", [])) == 1)
patch = yaml.safe_load(open(os.path.join(TLS, tkus["patches"][0]["path"])))
tdep = smerge(dep, patch)
if kc is not None:
    errs = []
    walk(tdep, "V1Deployment", "Deployment", errs)
    check("tls: the patched Deployment matches the V1Deployment schema", not errs, "; ".join(errs[:5]))
tc = next(c for c in tdep["spec"]["template"]["spec"]["containers"] if c["name"] == "relud")
tenv = {e["name"]: e.get("value") for e in tc.get("env", [])}
helptext = open(os.path.join(ROOT, "config", "relud.conf")).read()
check("tls: RELUD_TLS_CERT_FILE and RELUD_TLS_KEY_FILE are relud options, under the mount",
      all(n in helptext for n in ("RELUD_TLS_CERT_FILE", "RELUD_TLS_KEY_FILE"))
      and any(tenv.get("RELUD_TLS_CERT_FILE", "").startswith(m["mountPath"] + "/")
              for m in tc.get("volumeMounts", [])), str(tenv))
check("tls: every probe is HTTPS",
      all(get(tc, p, "httpGet", "scheme") == "HTTPS"
          for p in ("startupProbe", "readinessProbe", "livenessProbe")))
check("tls: the certificate comes from a Secret volume",
      any(v.get("secret", {}).get("secretName") for v in tdep["spec"]["template"]["spec"]["volumes"]))

# docker-compose.tls.yml: relud's own HTTPS, same drain arithmetic, an HTTPS health check.
ctls = yaml.safe_load(open(os.path.join(ROOT, "docker-compose.tls.yml")))
trs = get(ctls, "services", "relud", default={})
tenv2 = trs.get("environment", {})
check("docker-compose.tls.yml: RELUD_TLS_* are relud options and the healthcheck is HTTPS",
      all(k in helptext for k in tenv2 if k.startswith("RELUD_"))
      and "https://" in str(get(trs, "healthcheck", "test", default=""))
      and parse_seconds(trs.get("stop_grace_period", "10s"))
      > parse_seconds(tenv2.get("RELUD_DRAIN_TIMEOUT", "30")), str(tenv2))

print(f"({SKIP} skipped)")
print(f"{PASS} passed, {FAIL} failed")
sys.exit(1 if FAIL else 0)
