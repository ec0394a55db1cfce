#!/usr/bin/python3
"""Offline validation of deploy/kserve: relud's ServingRuntime and the InferenceService example.

Run by tests/containers/validate-k8s.sh. KServe's custom resources are not in Debian's
python3-kubernetes, so their schema is written out here: the fields of ServingRuntime /
ClusterServingRuntime (serving.kserve.io/v1alpha1) and InferenceService
(serving.kserve.io/v1beta1) that KServe's published CRDs (config/crd in kserve/kserve) have in
every release from 0.12 to 0.20, with the types of pkg/apis/serving (SupportedModelFormat,
ServingRuntimePodSpec, PredictorSpec, ModelSpec, ...). Kubernetes objects inside them
(Container, Volume, Probe, ...) are checked field by field against python3-kubernetes' models,
as validate_k8s.py does. Then KServe's own rules as its controller applies them (a runtime is
chosen by the model format's labels and the protocol version) and relud's: the options in env
are real (config/relud.conf), the port is KServe's 8080, the models are read from
/mnt/models, probes on /v2/health/ready and /v2/health/live, only container fields Knative
accepts. With a built relud, the runtime's environment is started on a folder laid out as the
storage initializer leaves /mnt/models for each InferenceService, and the URL KServe's users
call answers. Finally the checker checks itself: broken copies of the manifests (a misspelt
field, protocol v1, a missing format, a wrong option, ...) must each fail.
Prints one line per check and "N passed, N failed"; exit 1 on any failure.
"""
import copy
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

try:
    import kubernetes  # noqa: F401  (Debian's python3-kubernetes: the schema checks)
except ImportError:
    if (os.path.exists("/usr/bin/python3")
            and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3")):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)

import yaml

from k8s_schema import get, walk

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KSERVE = os.path.join(ROOT, "deploy", "kserve")
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


try:
    import kubernetes.client as kc
    from kubernetes.client import ApiClient
except ImportError:
    kc = None

# ---- KServe's schema (fields in every release 0.12 .. 0.20) ---------------------------------
# A type is a dict {json field: type}; a type string is python-kubernetes' notation
# ("V1Container", "list[V1Volume]", "dict(str, str)", "str", "int", "bool", "object" = free).
STR_MAP = "dict(str, str)"
POD_FIELDS = ["activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers",
              "dnsConfig", "dnsPolicy", "enableServiceLinks", "hostAliases", "hostIPC",
              "hostNetwork", "hostPID", "hostname", "imagePullSecrets", "initContainers",
              "nodeName", "nodeSelector", "overhead", "preemptionPolicy", "priority",
              "priorityClassName", "readinessGates", "restartPolicy", "runtimeClassName",
              "schedulerName", "securityContext", "serviceAccount", "serviceAccountName",
              "setHostnameAsFQDN", "shareProcessNamespace", "subdomain",
              "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints",
              "volumes"]
FRAMEWORKS = ["sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "pmml",
              "lightgbm", "paddle", "huggingface"]
KTYPES = {
    "ServingRuntime": {"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
                       "spec": "ServingRuntimeSpec"},
    "ServingRuntimeSpec": {
        "supportedModelFormats": "list[SupportedModelFormat]", "multiModel": "bool",
        "disabled": "bool", "protocolVersions": "list[str]", "containers": "list[V1Container]",
        "volumes": "list[V1Volume]", "nodeSelector": STR_MAP, "affinity": "V1Affinity",
        "tolerations": "list[V1Toleration]", "labels": STR_MAP, "annotations": STR_MAP,
        "imagePullSecrets": "list[V1LocalObjectReference]", "grpcEndpoint": "str",
        "grpcDataEndpoint": "str", "httpDataEndpoint": "str", "replicas": "int",
        "storageHelper": "StorageHelper", "builtInAdapter": "object"},
    "SupportedModelFormat": {"name": "str", "version": "str", "autoSelect": "bool",
                             "priority": "int"},
    "StorageHelper": {"disabled": "bool"},
    "InferenceService": {"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
                         "spec": "InferenceServiceSpec"},
    "InferenceServiceSpec": {"predictor": "PredictorSpec", "explainer": "object",
                             "transformer": "object"},
    "PredictorSpec": {"model": "ModelSpec", "minReplicas": "int", "maxReplicas": "int",
                      "scaleTarget": "int", "scaleMetric": "str", "containerConcurrency": "int",
                      "timeout": "int", "canaryTrafficPercent": "int", "logger": "object",
                      "batcher": "object", "labels": STR_MAP, "annotations": STR_MAP,
                      **{f: "object" for f in FRAMEWORKS}},
    "ModelSpec": {"modelFormat": "ModelFormat", "runtime": "str", "runtimeVersion": "str",
                  "protocolVersion": "str", "storageUri": "str", "storage": "object"},
    "ModelFormat": {"name": "str", "version": "str"},
}
REQUIRED = {"ServingRuntimeSpec": ["containers"], "SupportedModelFormat": ["name"],
            "InferenceServiceSpec": ["predictor"], "ModelSpec": ["modelFormat"],
            "ModelFormat": ["name"]}
PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}  # KServe's InferenceServiceProtocol values
ISVC_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # KServe's IsvcNameFmt
STORAGE = re.compile(r"(gs|s3|pvc|hdfs|webhdfs|oci|hf)://.+|https?://.+|/.+")
# Container fields Knative Serving accepts (its ContainerMask): a runtime that works in
# Serverless mode as well as RawDeployment uses only these.
KNATIVE_CONTAINER = {"name", "image", "imagePullPolicy", "args", "command", "env", "envFrom",
                     "workingDir", "ports", "readinessProbe", "livenessProbe", "resources",
                     "securityContext", "volumeMounts", "terminationMessagePath",
                     "terminationMessagePolicy"}


def k8s_fields(cls_name, keep=None):
    """{json field: type} of a python-kubernetes model, optionally only the fields in keep."""
    cls = getattr(kc, cls_name)
    return {j: cls.openapi_types[a] for a, j in cls.attribute_map.items() if keep is None or j in keep}


if kc is not None:
    KTYPES["PredictorSpec"].update(k8s_fields("V1PodSpec", POD_FIELDS))
    KTYPES["ModelSpec"].update(k8s_fields("V1Container"))


def relud_options():
    """relud's option names, from config/relud.conf (every option, documented)."""
    opts = set()
    for line in open(os.path.join(ROOT, "config", "relud.conf")):
        m = re.match(r"^\s*#?\s*([a-z][a-z0-9_]*)\s*=", line)
        if m:
            opts.add(m.group(1))
    return opts


OPTIONS = relud_options()
UNITS = {"": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
         "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}


def relud_bytes(v):
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(v))
    return int(m.group(1)) * UNITS[m.group(2).upper()] if m and m.group(2).upper() in UNITS else None


def k8s_bytes(q):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(q or ""))
    if not m:
        return None
    return float(m.group(1)) * {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
                                "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, None: 1}[m.group(2)]


def env_of(c):
    return {e.get("name"): e.get("value") for e in c.get("env", []) or []}


# ---- the rules ---------------------------------------------------------------------------------
def runtime_checks(rt):
    """[(description, ok, detail)] for a ServingRuntime / ClusterServingRuntime document."""
    out = []
    add = lambda d, ok, det="": out.append((d, bool(ok), det))  # noqa: E731
    add("apiVersion serving.kserve.io/v1alpha1, kind ServingRuntime or ClusterServingRuntime",
        rt.get("apiVersion") == "serving.kserve.io/v1alpha1"
        and rt.get("kind") in ("ServingRuntime", "ClusterServingRuntime"),
        f"{rt.get('apiVersion')} {rt.get('kind')}")
    name = get(rt, "metadata", "name", default="")
    add(f"metadata.name {name!r} is a DNS-1123 label", re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name or "")
        and len(name) <= 63)
    if kc is None:
        add("schema (needs python3-kubernetes)", False, "python3-kubernetes not installed")
    else:
        errs = []
        walk(rt, "ServingRuntime", rt.get("kind", "ServingRuntime"), errs, KTYPES, REQUIRED)
        add("every field and type matches KServe's ServingRuntime schema (Kubernetes objects: "
            "python3-kubernetes' models)", not errs, "; ".join(errs[:5]))
        api = ApiClient()
        try:
            for c in get(rt, "spec", "containers", default=[]) or []:
                api._ApiClient__deserialize(c, "V1Container")
            add("containers: required fields present (V1Container)", True)
        except (ValueError, TypeError) as e:
            add("containers: required fields present (V1Container)", False, str(e))
    spec = rt.get("spec") or {}
    pv = spec.get("protocolVersions")
    add("protocolVersions is [v2] (relud speaks the Open Inference Protocol over REST: no KServe "
        "v1, no gRPC)", pv == ["v2"] and all(p in PROTOCOLS for p in pv or []), str(pv))
    fmts = spec.get("supportedModelFormats") or []
    names = [f.get("name") for f in fmts]
    add("supportedModelFormats name relud's own format and onnx",
        "relud" in names and "onnx" in names, str(names))
    relud_fmt = [f for f in fmts if f.get("name") == "relud"]
    add("the relud format is autoSelect (an InferenceService needs only modelFormat: relud)",
        relud_fmt and all(f.get("autoSelect") is True for f in relud_fmt), str(relud_fmt))
    keys = [(f.get("name"), f.get("version")) for f in fmts]
    add("supportedModelFormats: no (name, version) twice", len(keys) == len(set(keys)), str(keys))
    add("priority only with autoSelect, and >= 1 (KServe ignores it otherwise; its CRD's minimum)",
        all("priority" not in f or (f.get("autoSelect") is True and isinstance(f["priority"], int)
                                    and f["priority"] >= 1) for f in fmts), str(fmts))
    add("single-model runtime (multiModel false: relud is not a ModelMesh runtime)",
        spec.get("multiModel") in (None, False))
    conts = spec.get("containers") or []
    add("one container, named kserve-container (KServe merges the InferenceService's model "
        "container into it)", len(conts) == 1 and conts[0].get("name") == "kserve-container",
        str([c.get("name") for c in conts]))
    c = conts[0] if conts else {}
    add("the container has an image", bool(c.get("image")))
    env = env_of(c)
    add("RELUD_HOST is 0.0.0.0 (relud's default 127.0.0.1 is unreachable for probes and the "
        "Service)", env.get("RELUD_HOST") == "0.0.0.0", str(env.get("RELUD_HOST")))
    add("RELUD_PORT is 8080, KServe's model server port", env.get("RELUD_PORT") == "8080",
        str(env.get("RELUD_PORT")))
    add("RELUD_MODEL_DIR is /mnt/models, where KServe's storage initializer puts the storageUri",
        env.get("RELUD_MODEL_DIR") == "/mnt/models", str(env.get("RELUD_MODEL_DIR")))
    unknown = [n for n in env if not n.startswith("RELUD_") or n[6:].lower() not in OPTIONS]
    add(f"every env name is a relud option (config/relud.conf, {len(OPTIONS)} options)",
        OPTIONS and not unknown, f"unknown: {unknown}")
    add("no command or args: the image's entrypoint is relud, configured by RELUD_*",
        "command" not in c and all(re.fullmatch(r"--([a-z-]+)(=.*)?", a or "")
                                   and re.fullmatch(r"--([a-z-]+)(=.*)?", a).group(1).replace("-", "_")
                                   in OPTIONS for a in c.get("args", []) or []),
        str(c.get("command")) + " " + str(c.get("args")))
    ports = c.get("ports") or []
    p0 = ports[0] if ports else {}
    add("one port, 8080/TCP = RELUD_PORT, named http1 or unnamed (Knative: one port, http1 or "
        "h2c; relud speaks HTTP/1.1)",
        len(ports) == 1 and p0.get("containerPort") == 8080 and str(p0.get("containerPort")) == env.get("RELUD_PORT")
        and p0.get("protocol", "TCP") == "TCP" and p0.get("name", "http1") == "http1", str(ports))

    def probe(kind, path):
        hg = get(c, kind, "httpGet", default={}) or {}
        port = hg.get("port")
        add(f"{kind}: GET {path} on the container port",
            hg.get("path") == path and port in (p0.get("containerPort"), p0.get("name"))
            and hg.get("scheme", "HTTP") == "HTTP", str(hg))
    probe("readinessProbe", "/v2/health/ready")
    probe("livenessProbe", "/v2/health/live")
    extra = sorted(set(c) - KNATIVE_CONTAINER)
    add("only container fields Knative accepts (works in Serverless and RawDeployment mode)",
        not extra, f"not accepted by Knative: {extra}")
    res = c.get("resources") or {}
    add("resources: cpu and memory requests, memory limit",
        all(k in res.get("requests", {}) for k in ("cpu", "memory")) and "memory" in res.get("limits", {}))
    threads = int(env.get("RELUD_THREADS", "0") or 0)
    ws = relud_bytes(env.get("RELUD_MAX_WORKSPACE_BYTES", "1GiB"))
    buf = relud_bytes(env.get("RELUD_MAX_BUFFERED_BYTES", "1GiB"))
    lim = k8s_bytes(res.get("limits", {}).get("memory"))
    worst = threads * ws + buf + (256 << 20) if threads and ws and buf else None
    add("memory limit above threads x max_workspace_bytes + max_buffered_bytes + 256 MiB of models",
        worst is not None and lim is not None and worst < lim,
        f"worst {worst}, limit {lim} (set RELUD_THREADS: 0 = the node's cores, not the pod's limit)")
    drain = env.get("RELUD_DRAIN_TIMEOUT", "30")
    add("RELUD_DRAIN_TIMEOUT < 30 s (Kubernetes' default terminationGracePeriodSeconds, which a "
        "ServingRuntime cannot set)", re.fullmatch(r"\d+", str(drain)) and int(drain) < 30, str(drain))
    sc = c.get("securityContext") or {}
    m = re.search(r"^USER\s+(\d+)", open(os.path.join(ROOT, "Dockerfile")).read(), re.M)
    add("non-root with the image's numeric USER, no privilege escalation, read-only root",
        sc.get("runAsNonRoot") is True and m is not None and sc.get("runAsUser") == int(m.group(1))
        and sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True,
        str(sc))
    ann = spec.get("annotations") or {}
    add("Prometheus annotations point at relud's /metrics on its port",
        ann.get("prometheus.kserve.io/port") == env.get("RELUD_PORT")
        and ann.get("prometheus.kserve.io/path") == "/metrics", str(ann))
    return out


def runtime_supports(rt, model):
    """KServe's ModelSpec.RuntimeSupportsModel + IsProtocolVersionSupported for one runtime."""
    spec = rt.get("spec") or {}
    if spec.get("disabled") or spec.get("multiModel"):
        return False
    mf = model.get("modelFormat") or {}
    label = "mt:" + str(mf.get("name")) + (":" + mf["version"] if mf.get("version") else "")
    labels = set()
    for f in spec.get("supportedModelFormats") or []:
        if model.get("runtime") is not None or f.get("autoSelect") is True:
            labels.add("mt:" + str(f.get("name")))
            if f.get("version"):
                labels.add("mt:" + str(f.get("name")) + ":" + str(f["version"]))
    proto = model.get("protocolVersion") or "v1"  # KServe's default
    pvs = spec.get("protocolVersions") or []
    return label in labels and (not pvs or proto in pvs)


def isvc_checks(isvc, rt):
    out = []
    add = lambda d, ok, det="": out.append((d, bool(ok), det))  # noqa: E731
    name = get(isvc, "metadata", "name", default="")
    add("apiVersion serving.kserve.io/v1beta1, kind InferenceService",
        isvc.get("apiVersion") == "serving.kserve.io/v1beta1" and isvc.get("kind") == "InferenceService")
    add(f"name {name!r} matches KServe's InferenceService name rule",
        ISVC_NAME.fullmatch(name or "") is not None and len(name) <= 63)
    if kc is not None:
        errs = []
        walk(isvc, "InferenceService", "InferenceService", errs, KTYPES, REQUIRED)
        add("every field and type matches KServe's InferenceService schema", not errs, "; ".join(errs[:5]))
    pred = get(isvc, "spec", "predictor", default={}) or {}
    impls = [k for k in FRAMEWORKS + ["model"] if k in pred]
    impls += ["containers"] if pred.get("containers") else []
    add("the predictor has exactly one implementation: model", impls == ["model"], str(impls))
    model = pred.get("model") or {}
    add("protocolVersion v2 (KServe's default v1 matches no relud runtime)",
        model.get("protocolVersion") == "v2", str(model.get("protocolVersion")))
    rname = get(rt, "metadata", "name")
    add(f"runtime, when named, is {rname!r}", model.get("runtime") in (None, rname), str(model.get("runtime")))
    add(f"KServe would choose the {rname!r} runtime for it (format labels, autoSelect, protocol)",
        runtime_supports(rt, model), json.dumps(model.get("modelFormat")))
    add("storageUri is a location KServe's storage initializer reads",
        STORAGE.fullmatch(str(model.get("storageUri", ""))) is not None, str(model.get("storageUri")))
    mode = get(isvc, "metadata", "annotations", "serving.kserve.io/deploymentMode")
    add("deploymentMode, when set, is Serverless or RawDeployment",
        mode in (None, "Serverless", "RawDeployment"), str(mode))
    mn, mx = pred.get("minReplicas", 1), pred.get("maxReplicas", 0)
    add("0 <= minReplicas <= maxReplicas (0: unbounded)", isinstance(mn, int) and mn >= 0
        and (mx == 0 or mn <= mx), f"{mn} {mx}")
    return out


def report(prefix, items):
    for d, ok, det in items:
        check(f"{prefix}: {d}", ok, det)


# ---- the manifests -----------------------------------------------------------------------------
files = sorted(f for f in os.listdir(KSERVE) if f.endswith((".yaml", ".yml")))
docs = []
for fn in files:
    try:
        loaded = [d for d in yaml.safe_load_all(open(os.path.join(KSERVE, fn))) if d is not None]
        check(f"deploy/kserve/{fn}: parses as YAML ({len(loaded)} document(s))", len(loaded) > 0)
        docs += [(fn, d) for d in loaded]
    except yaml.YAMLError as e:
        check(f"deploy/kserve/{fn}: parses as YAML", False, str(e).replace("\n", " "))
runtimes = [(fn, d) for fn, d in docs if d.get("kind") in ("ServingRuntime", "ClusterServingRuntime")]
isvcs = [(fn, d) for fn, d in docs if d.get("kind") == "InferenceService"]
check("deploy/kserve has one relud ServingRuntime and at least one InferenceService",
      len(runtimes) == 1 and len(isvcs) >= 1, f"{len(runtimes)} runtimes, {len(isvcs)} services")
check("deploy/kserve holds only those kinds", len(runtimes) + len(isvcs) == len(docs),
      str([d.get("kind") for _, d in docs]))
rt_fn, rt = runtimes[0] if runtimes else ("", {})
report(f"{rt_fn}", runtime_checks(rt))
formats = set()
for fn, isvc in isvcs:
    report(f"{fn} {get(isvc, 'metadata', 'name')}", isvc_checks(isvc, rt))
    formats.add(get(isvc, "spec", "predictor", "model", "modelFormat", "name"))
check("the examples cover both formats (relud and onnx)", {"relud", "onnx"} <= formats, str(formats))
check("deploy/kserve is mentioned in docs/operations.md",
      "deploy/kserve" in open(os.path.join(ROOT, "docs", "operations.md")).read())

# ---- relud with the runtime's environment, on /mnt/models as each InferenceService gets it ----
RELUD = os.environ.get("RELUD") or os.path.join(ROOT, "build", "relud")
SOURCES = {"relud": [("mnist_mlp.json", "json"), ("mnist_mlp.safetensors", "bin")],
           "onnx": [("simple_nn_onnx.onnx", "bin")]}


def lay_out(folder, name, fmt):
    """The bundled model of that format, renamed to the InferenceService's name."""
    os.makedirs(folder)
    src = os.path.join(ROOT, "config", "models")
    for f, kind in SOURCES[fmt]:
        if not os.path.exists(os.path.join(src, f)):
            return False
        stem, ext = os.path.splitext(f)
        dst = os.path.join(folder, name + ext)
        if ext == ".json":
            doc = json.load(open(os.path.join(src, f)))
            doc["name"] = name
            if "weights" in doc:
                doc["weights"] = name + os.path.splitext(doc["weights"])[1]
            json.dump(doc, open(dst, "w"))
        else:
            shutil.copyfile(os.path.join(src, f), dst)
    return True


def http(url, body=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


if not os.access(RELUD, os.X_OK):
    skip("relud with the runtime's environment", f"no {RELUD}; run make first")
elif runtimes:
    c = (get(rt, "spec", "containers", default=[]) or [{}])[0]
    for fn, isvc in isvcs:
        name = get(isvc, "metadata", "name")
        fmt = get(isvc, "spec", "predictor", "model", "modelFormat", "name")
        work = tempfile.mkdtemp(prefix="relud-kserve-")
        try:
            mnt = os.path.join(work, "mnt", "models")
            if not lay_out(mnt, name, fmt):
                skip(f"{name}: relud serves it", f"no bundled {fmt} model in config/models")
                continue
            env = dict(os.environ)
            env.update({k: v for k, v in env_of(c).items() if v is not None})
            env.update({"RELUD_HOST": "127.0.0.1", "RELUD_PORT": "0", "RELUD_MODEL_DIR": mnt,
                        "RELUD_LOG_FORMAT": "text"})
            log = open(os.path.join(work, "log"), "w+")
            p = subprocess.Popen([RELUD], env=env, stdout=subprocess.DEVNULL, stderr=log)
            port = None
            deadline = time.time() + 30
            while time.time() < deadline and p.poll() is None:
                log.seek(0)
                text = log.read()
                m = re.search(r"listening on http://[^ ]*:(\d+)", text)
                if m and re.search(r"info ready\b", text):
                    port = int(m.group(1))
                    break
                time.sleep(0.02)
            log.seek(0)
            text = log.read()
            if check(f"{name}: relud starts with the runtime's environment (strict_models) on "
                     f"/mnt/models as the storage initializer leaves it", port is not None, text[-300:]):
                base = f"http://127.0.0.1:{port}"
                for kind in ("readinessProbe", "livenessProbe"):
                    path = get(c, kind, "httpGet", "path")
                    st, _ = http(base + str(path))
                    check(f"{name}: the {kind} ({path}) answers 200", st == 200, str(st))
                st, meta = http(f"{base}/v2/models/{name}")
                ok = st == 200
                if ok:
                    meta = json.loads(meta)
                    inp = meta["inputs"][0]
                    shape = [1 if d < 0 else d for d in inp["shape"]]
                    n = 1
                    for d in shape:
                        n *= d
                    st, body = http(f"{base}/v2/models/{name}/infer", {"inputs": [
                        {"name": inp["name"], "shape": shape, "datatype": inp["datatype"],
                         "data": [0.5] * n}]})
                    ok = st == 200 and json.loads(body)["model_name"] == name
                check(f"{name}: POST /v2/models/{name}/infer (the URL KServe's users call) "
                      "answers 200", ok, f"{st} {str(meta)[:200]}")
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            check(f"{name}: SIGTERM drains and exits 0", p.returncode == 0, str(p.returncode))
        finally:
            shutil.rmtree(work, ignore_errors=True)

# ---- the checker catches what it should -------------------------------------------------------
def mutated(doc, fn):
    d = copy.deepcopy(doc)
    fn(d)
    return d


def c0(d):
    return d["spec"]["containers"][0]


def set_env(name, value):
    def f(d):
        for e in c0(d)["env"]:
            if e["name"] == name:
                e["value"] = value
    return f


RUNTIME_BREAKS = [
    ("a misspelt spec field", lambda d: d["spec"].update(supportedModelFormat=[]), "schema"),
    ("a misspelt container field", lambda d: c0(d).update(readinessprobe={}), "schema"),
    ("an unquoted env value", set_env("RELUD_PORT", 8080), "schema"),
    ("protocol v1 added", lambda d: d["spec"].update(protocolVersions=["v1", "v2"]), "protocolVersions"),
    ("onnx missing", lambda d: d["spec"].update(supportedModelFormats=[
        f for f in d["spec"]["supportedModelFormats"] if f["name"] != "onnx"]), "onnx"),
    ("relud not autoSelect", lambda d: [f.update(autoSelect=False) for f in d["spec"]["supportedModelFormats"]
                                        if f["name"] == "relud"], "autoSelect"),
    ("an option relud does not have", lambda d: c0(d)["env"].append({"name": "RELUD_MODELDIR", "value": "x"}),
     "relud option"),
    ("the model dir elsewhere", set_env("RELUD_MODEL_DIR", "/models"), "/mnt/models"),
    ("the port not 8080", set_env("RELUD_PORT", "9000"), "8080"),
    ("relud on loopback", set_env("RELUD_HOST", "127.0.0.1"), "RELUD_HOST"),
    ("readiness on /healthz", lambda d: c0(d)["readinessProbe"]["httpGet"].update(path="/healthz"),
     "readinessProbe"),
    ("a preStop hook (Knative refuses lifecycle)", lambda d: c0(d).update(
        lifecycle={"preStop": {"exec": {"command": ["sleep", "5"]}}}), "Knative"),
    ("a second port", lambda d: c0(d)["ports"].append({"containerPort": 9000}), "one port"),
    ("the container renamed", lambda d: c0(d).update(name="relud"), "kserve-container"),
    ("drain_timeout 30", set_env("RELUD_DRAIN_TIMEOUT", "30"), "DRAIN"),
    ("memory limit too low", lambda d: c0(d)["resources"]["limits"].update(memory="1Gi"), "memory limit"),
]
ISVC_BREAKS = [
    ("protocol v1", lambda d: d["spec"]["predictor"]["model"].update(protocolVersion="v1"), "protocolVersion"),
    ("a format relud has not", lambda d: d["spec"]["predictor"]["model"]["modelFormat"].update(name="sklearn"),
     "would choose"),
    ("a misspelt predictor field", lambda d: d["spec"]["predictor"].update(minReplica=1), "schema"),
    ("an invalid name", lambda d: d["metadata"].update(name="MNIST_mlp"), "name rule"),
    ("another runtime named", lambda d: d["spec"]["predictor"]["model"].update(runtime="kserve-tritonserver"),
     "runtime, when named"),
    ("a storageUri KServe cannot read", lambda d: d["spec"]["predictor"]["model"].update(storageUri="ftp://x/y"),
     "storageUri"),
]
if runtimes:
    for desc, fn, needle in RUNTIME_BREAKS:
        fails = [d for d, ok, _ in runtime_checks(mutated(rt, fn)) if not ok]
        check(f"self-test: the runtime with {desc} fails a check about {needle!r}",
              any(needle.lower() in d.lower() for d in fails), str(fails))
    onnx_isvc = next((d for _, d in isvcs
                      if get(d, "spec", "predictor", "model", "runtime") is not None), None)
    if onnx_isvc is not None:
        no_runtime = mutated(onnx_isvc, lambda d: d["spec"]["predictor"]["model"].pop("runtime"))
        fails = [d for d, ok, _ in isvc_checks(no_runtime, rt) if not ok]
        check("self-test: the onnx InferenceService without runtime: relud is not chosen "
              "(onnx is not autoSelect)", any("would choose" in d for d in fails), str(fails))
    base = next((d for _, d in isvcs if get(d, "spec", "predictor", "model", "runtime") is None),
                isvcs[0][1] if isvcs else None)
    for desc, fn, needle in ISVC_BREAKS if base is not None else []:
        fails = [d for d, ok, _ in isvc_checks(mutated(base, fn), rt) if not ok]
        check(f"self-test: an InferenceService with {desc} fails a check about {needle!r}",
              any(needle.lower() in d.lower() for d in fails), str(fails))

print(f"({SKIP} skipped)")
print(f"{PASS} passed, {FAIL} failed")
sys.exit(1 if FAIL else 0)
