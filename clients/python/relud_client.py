"""A Python client for relud: its /v1 JSON API and the Open Inference Protocol (KServe v2).

One module; needs `requests` and `numpy` (Debian: python3-requests, python3-numpy).

    import numpy as np
    from relud_client import Client, ReludError

    c = Client("http://127.0.0.1:8080")
    r = c.infer("simple_nn", {"input": np.ones((2, 10), np.float32)})
    r.as_numpy("output")                       # float32 array of shape (2, 5)

Method names follow tritonclient.http.InferenceServerClient where it has one
(is_server_live, get_model_metadata, infer, load_model, ...), so code written for Triton's
client reads the same; relud's own routes (/v1/forward, PUT/DELETE /v1/models, the
gradients extension) have methods of their own: forward, put_model, delete_model,
gradients. Every failure raises ReludError carrying the HTTP status and relud's message.
"""
import email.utils
import json
import time
import urllib.parse

import numpy as np
import requests

__all__ = ["Client", "ReludError", "RelUdError", "InferResult", "DATATYPES", "datatype_of"]

__version__ = "0.1.0"

# Wire datatype (the Open Inference Protocol's names) -> numpy dtype, little-endian as the
# binary tensor extension sends it. relud computes in FP32 or FP64 and converts the integer
# types; FP16 and BOOL are listed so that they reach the server, whose 400 says so.
DATATYPES = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "BOOL": np.dtype("?"),
}
_WIRE_OF = {(dt.kind, dt.itemsize): name for name, dt in DATATYPES.items()}


def datatype_of(array):
    """The wire datatype of a numpy array ("FP32", "INT64", ...); ValueError if none fits."""
    dt = np.asarray(array).dtype
    name = _WIRE_OF.get((dt.kind, dt.itemsize))
    if name is None:
        raise ValueError(f"numpy dtype {dt} has no Open Inference Protocol datatype relud "
                         f"reads (use one of {', '.join(DATATYPES)})")
    return name


class ReludError(Exception):
    """A request that failed: relud's error reply, or no reply at all.

    status: the HTTP status (400, 404, 503, ...), or None when no reply came (connection
    refused or reset, timeout). message: relud's "error" text, as the server wrote it (for a
    reply that is not relud's JSON, its start). retry_after: the Retry-After seconds of the
    reply, if any. request_id: the X-Request-Id of the reply (it is in relud's access log).
    """

    def __init__(self, status, message, *, retry_after=None, request_id=None, response=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.request_id = request_id
        self.response = response

    def __str__(self):
        return f"[{self.status}] {self.message}" if self.status is not None else self.message

    def __repr__(self):
        return f"ReludError({self.status!r}, {self.message!r})"


RelUdError = ReludError  # the spelling issue 14 used


def _retry_after(value):
    """Retry-After in seconds (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_from(r):
    try:
        body = r.json()
        msg = body["error"] if isinstance(body, dict) and isinstance(body.get("error"), str) \
            else r.text
    except ValueError:  # not JSON: libmicrohttpd's own page, or a proxy's
        msg = r.text.strip()[:500] or r.reason
    return ReludError(r.status_code, msg, retry_after=_retry_after(r.headers.get("Retry-After")),
                      request_id=r.headers.get("X-Request-Id"), response=r)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _v1_tensor(x):
    """A /v1 tensor: a numpy array as {"shape", "data"}; lists and numbers as they are."""
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            return x.item()
        return {"shape": list(x.shape), "data": x.ravel().tolist()}
    return x


def _v1_array(x, dtype):
    """A /v1 reply tensor ({"shape", "data"} or nested lists) as a numpy array."""
    if isinstance(x, dict) and "shape" in x and "data" in x:
        return np.asarray(x["data"], dtype=dtype).reshape(x["shape"])
    if isinstance(x, list):
        return np.asarray(x, dtype=dtype)
    return x


class InferResult:
    """The reply of infer() / gradients(), as tritonclient.http's InferResult.

    outputs: {name: numpy array} in the reply's order; as_numpy(name) returns one (None if
    absent); get_response() the reply's JSON (binary outputs keep their binary_data_size and
    have no "data"); get_output(name) one output's JSON. For the gradients extension:
    loss (a float), gradients ({"input" or a state_dict name such as "0.weight": array}),
    total_norm and stats (from the reply's parameters).
    """

    def __init__(self, response, outputs):
        self._response = response
        self.outputs = outputs

    def as_numpy(self, name):
        return self.outputs.get(name)

    def get_response(self):
        return self._response

    def get_output(self, name):
        for o in self._response.get("outputs", []):
            if o.get("name") == name:
                return o
        return None

    def __getitem__(self, name):
        return self.outputs[name]

    def __contains__(self, name):
        return name in self.outputs

    def __repr__(self):
        shapes = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in self.outputs.items())
        return f"<InferResult {self.model_name} {{{shapes}}}>"

    model_name = property(lambda self: self._response.get("model_name"))
    model_version = property(lambda self: self._response.get("model_version"))
    id = property(lambda self: self._response.get("id"))
    parameters = property(lambda self: self._response.get("parameters") or {})

    @property
    def loss(self):
        a = self.outputs.get("loss")
        return None if a is None else float(a.reshape(-1)[0])

    @property
    def gradients(self):
        return {k[5:]: v for k, v in self.outputs.items() if k.startswith("grad:")}

    @property
    def total_norm(self):
        return self.parameters.get("total_norm")

    @property
    def stats(self):
        """The per-layer diagnostics (relud sends them as a JSON string: a response
        parameter may only be a string, number or boolean)."""
        s = self.parameters.get("stats")
        return json.loads(s) if isinstance(s, str) else s


class Client:
    """A connection to one relud (a requests.Session: connections are kept alive).

    url: "http://host:port" ("host:port" alone means http). api_key: one of the keys of a
    relud started with api_keys_file, sent on every request as "Authorization: Bearer
    <api_key>" (health probes need none, but it does no harm). admin_token: relud's
    admin_token, sent instead on model control (load, unload, put,
    delete, training); without it those send api_key. timeout: seconds to connect and between bytes of
    the reply (requests' timeout), per attempt.

    Retries: a 503 (or 429) with Retry-After (relud's overloaded, draining, queue full or
    queue timeout refusals: nothing ran) is retried after the seconds it names, up to
    `retries` more attempts, unless it names more than max_retry_after seconds; then the
    ReludError is raised. A 503 without Retry-After (a model unloaded or failing to load)
    is not retried. With retry_connection_errors=True a refused or reset connection is
    retried too, after backoff, 2 * backoff, 4 * backoff, ... seconds (relud's routes are
    safe to repeat: a pass has no side effect, and model control sets a state).
    Health probes (is_server_live/ready, is_model_ready) never retry.

    Threads: give each thread its own Client (requests does not promise that a Session is
    thread-safe); each keeps its connections alive.
    """

    def __init__(self, url="http://127.0.0.1:8080", api_key=None, admin_token=None, timeout=60.0,
                 retries=3, max_retry_after=60.0, retry_connection_errors=False, backoff=0.1,
                 headers=None, session=None):
        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.admin_token = admin_token
        self.timeout = timeout
        self.retries = retries
        self.max_retry_after = max_retry_after
        self.retry_connection_errors = retry_connection_errors
        self.backoff = backoff
        self.headers = dict(headers or {})
        self.session = session or requests.Session()
        self._sleep = time.sleep  # tests replace it to count the waits

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _request(self, method, path, *, body=None, json_body=None, headers=None, admin=False,
                 retry=True, raw=False):
        """One call, retried as the class says; the requests.Response of a 2xx reply."""
        h = dict(self.headers)
        token = self.admin_token if admin and self.admin_token is not None else self.api_key
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body, default=_json_default, separators=(",", ":")).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        url = self.url + path
        attempt = 0
        while True:
            try:
                r = self.session.request(method, url, data=body, headers=h, timeout=self.timeout)
            except requests.ConnectionError as e:
                if retry and self.retry_connection_errors and attempt < self.retries:
                    self._sleep(self.backoff * (2 ** attempt))
                    attempt += 1
                    continue
                raise ReludError(None, f"{method} {url}: no reply ({e})") from e
            except requests.RequestException as e:  # timeouts, bad URLs
                raise ReludError(None, f"{method} {url}: {e}") from e
            if 200 <= r.status_code < 300:
                return r
            err = _error_from(r)
            if (retry and r.status_code in (429, 503) and err.retry_after is not None
                    and attempt < self.retries and err.retry_after <= self.max_retry_after):
                r.close()
                self._sleep(err.retry_after)
                attempt += 1
                continue
            if raw:
                return r
            raise err

    def _get(self, path, **kw):
        return self._request("GET", path, **kw).json()

    @staticmethod
    def _model_path(model_name, model_version=""):
        p = "/v2/models/" + urllib.parse.quote(model_name, safe="")
        if model_version:
            p += "/versions/" + urllib.parse.quote(str(model_version), safe="")
        return p

    # -- server ----------------------------------------------------------------------------

    def is_server_live(self):
        """GET /v2/health/live: True when the process answers 200 (False on another status;
        ReludError when nothing answers)."""
        return self._request("GET", "/v2/health/live", retry=False, raw=True).status_code == 200

    def is_server_ready(self):
        """GET /v2/health/ready: True when models are loaded and relud is not draining."""
        return self._request("GET", "/v2/health/ready", retry=False, raw=True).status_code == 200

    def get_server_metadata(self):
        """GET /v2: {"name", "version", "extensions"}."""
        return self._get("/v2")

    def get_metrics(self):
        """GET /metrics: the Prometheus text."""
        return self._request("GET", "/metrics").text

    # -- models ----------------------------------------------------------------------------

    def is_model_ready(self, model_name, model_version=""):
        """GET /v2/models/NAME/ready: True when the model serves (False when unknown,
        unloaded or failed to load, as tritonclient answers)."""
        r = self._request("GET", self._model_path(model_name, model_version) + "/ready",
                          retry=False, raw=True)
        return r.status_code == 200

    def get_model_metadata(self, model_name, model_version=""):
        """GET /v2/models/NAME: inputs and outputs with datatype and shape."""
        return self._get(self._model_path(model_name, model_version))

    def get_model_config(self, model_name, model_version=""):
        """GET /v2/models/NAME/config: Triton's ModelConfig as JSON (max_batch_size,
        dynamic_batching, input, output)."""
        return self._get(self._model_path(model_name, model_version) + "/config")

    def get_inference_statistics(self, model_name="", model_version=""):
        """GET /v2/models/NAME/stats, or every model's with no name: {"model_stats": [...]}."""
        if not model_name:
            return self._get("/v2/models/stats")
        return self._get(self._model_path(model_name, model_version) + "/stats")

    def list_models(self):
        """GET /v1/models: [{"name", "version", "state", "reason"}, ...]."""
        return self._get("/v1/models")["models"]

    def get_model_repository_index(self, ready=False):
        """POST /v2/repository/index: every model with its state (only the ready ones with
        ready=True). Open like the rest of the inference API (Triton's clients list it)."""
        return self._request("POST", "/v2/repository/index",
                             json_body={"ready": True} if ready else None).json()

    # -- model control (admin) -------------------------------------------------------------

    def load_model(self, model_name):
        """POST /v2/repository/models/NAME/load: (re)read NAME.json; {"name", "state"}."""
        return self._request("POST", "/v2/repository/models/%s/load"
                             % urllib.parse.quote(model_name, safe=""), admin=True).json()

    def unload_model(self, model_name):
        """POST /v2/repository/models/NAME/unload: stop serving it; {"name", "state"}."""
        return self._request("POST", "/v2/repository/models/%s/unload"
                             % urllib.parse.quote(model_name, safe=""), admin=True).json()

    def put_model(self, model_name, model):
        """PUT /v1/models/NAME: create or replace a model from a model file's dict (layers
        with weights as lists or numpy arrays); {"name", "state"}."""
        return self._request("PUT", "/v1/models/" + urllib.parse.quote(model_name, safe=""),
                             json_body=model, admin=True).json()

    def delete_model(self, model_name):
        """DELETE /v1/models/NAME: remove NAME.json and stop serving it."""
        return self._request("DELETE", "/v1/models/" + urllib.parse.quote(model_name, safe=""),
                             admin=True).json()

    # -- training jobs (docs/api.md, "Training") ------------------------------------------

    def train(self, model_name, body):
        """POST /v1/models/NAME/train (admin): start a training job on a copy of the model.
        body: the job as docs/api.md describes it (input, target, loss, optimizer,
        lr_scheduler, epochs or steps, ...; tensors may be numpy arrays). Returns
        {"id", "state": "queued"}; the job runs in the background (wait_train)."""
        body = dict(body)
        for k in ("input", "target"):
            if k in body:
                body[k] = _v1_tensor(body[k])
        if isinstance(body.get("validation"), dict):
            body["validation"] = {k: _v1_tensor(v) if k in ("input", "target") else v
                                  for k, v in body["validation"].items()}
        return self._request("POST", "/v1/models/%s/train"
                             % urllib.parse.quote(model_name, safe=""),
                             json_body=body, admin=True).json()

    def get_train_job(self, job_id):
        """GET /v1/train/ID: state, progress and history (loss, lr, grad_norm, per-layer
        gradient norms and dead units, step by step)."""
        return self._get("/v1/train/" + urllib.parse.quote(str(job_id), safe=""))

    def list_train_jobs(self):
        """GET /v1/train: the jobs relud remembers, oldest first (summaries)."""
        return self._get("/v1/train")["jobs"]

    def cancel_train_job(self, job_id):
        """DELETE /v1/train/ID (admin): cancel a queued or running job; nothing is
        installed."""
        return self._request("DELETE", "/v1/train/" + urllib.parse.quote(str(job_id), safe=""),
                             admin=True).json()

    def wait_train(self, job_id, *, poll=0.2, timeout=None):
        """Polls GET /v1/train/ID until the job is done, failed or cancelled and returns
        it; raises TimeoutError after timeout seconds (None: no limit). A failed job is
        returned, not raised: its "error" says why (the step and layer of a non-finite
        loss or gradient)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_train_job(job_id)
            if job["state"] in ("done", "failed", "cancelled"):
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("training job %s still %s after %gs"
                                   % (job_id, job["state"], timeout))
            time.sleep(poll)

    # -- /v1/forward -----------------------------------------------------------------------

    def forward(self, input, layers=None, model=None, *, dtype=None, grad_output=None, loss=None,
                target=None, reduction=None, gradients=None, clip_grad_norm=None, stats=None):
        """POST /v1/forward: input (numpy array or nested lists) through inline `layers` (a
        list of layer dicts, weights as lists or arrays) or a served `model`.

        loss: a loss name with `target` (and `reduction`), or a whole loss dict. Returns the
        reply's dict with every tensor as a numpy array: "output", and as asked "loss" (a
        float), "gradients" ({"input", "layers": [{"weight", "bias"}, ...], "total_norm"}),
        "stats". Arrays are float64 with dtype="float64" and float32 with "float32"; without
        dtype, float32 for inline layers (relud's default) and float64 for a model (whose
        precision the client does not know: no digit is lost either way).
        """
        if (layers is None) == (model is None):
            raise ValueError("forward: give either layers or model")
        body = {"input": _v1_tensor(input)}
        if layers is not None:
            body["layers"] = layers
        else:
            body["model"] = model
        if dtype is not None:
            body["dtype"] = dtype
        if grad_output is not None:
            body["grad_output"] = _v1_tensor(grad_output)
        if loss is not None:
            spec = dict(loss) if isinstance(loss, dict) else {"type": loss}
            if target is not None:
                spec["target"] = target
            if reduction is not None:
                spec["reduction"] = reduction
            if "target" in spec:
                spec["target"] = _v1_tensor(spec["target"])
            body["loss"] = spec
        if gradients is not None:
            body["gradients"] = gradients
        if clip_grad_norm is not None:
            body["clip_grad_norm"] = clip_grad_norm
        if stats is not None:
            body["stats"] = stats
        out = self._request("POST", "/v1/forward", json_body=body).json()
        npd = np.float64 if dtype == "float64" or (dtype is None and model is not None) \
            else np.float32
        out["output"] = _v1_array(out["output"], npd)
        g = out.get("gradients")
        if isinstance(g, dict):
            if "input" in g:
                g["input"] = _v1_array(g["input"], npd)
            for layer in g.get("layers", []):
                for k in list(layer):
                    if layer[k] is not None:
                        layer[k] = _v1_array(layer[k], npd)
        return out

    # -- Open Inference Protocol inference -------------------------------------------------

    def infer(self, model_name, inputs, outputs=None, *, binary=True, binary_output=None,
              model_version="", request_id=None, parameters=None, queue_timeout_us=None,
              headers=None):
        """POST /v2/models/NAME/infer.

        inputs: {name: numpy array} (a bare array means {"input": array}, relud models' one
        input); the datatype follows the array's dtype (float32 FP32, int64 INT64, ...; see
        DATATYPES). outputs: names to return (default: all). binary=True sends the inputs as
        raw little-endian bytes (the binary tensor data extension, with
        Inference-Header-Content-Length) and asks for binary outputs; binary=False sends and
        receives JSON. binary_output overrides the outputs' half. parameters: the request's
        parameters (e.g. the gradients extension's); queue_timeout_us: Triton's "timeout"
        parameter (microseconds in a batch queue). Returns an InferResult.
        """
        if isinstance(inputs, np.ndarray) or not isinstance(inputs, dict):
            inputs = {"input": inputs}
        if binary_output is None:
            binary_output = binary
        params = dict(parameters or {})
        if queue_timeout_us is not None:
            params["timeout"] = int(queue_timeout_us)
        req = {}
        if request_id is not None:
            req["id"] = str(request_id)
        chunks = []
        req_inputs = []
        for name, value in inputs.items():
            a = np.asarray(value)
            wire = datatype_of(a)
            t = {"name": name, "shape": list(a.shape), "datatype": wire}
            if binary:
                b = np.ascontiguousarray(a, dtype=DATATYPES[wire]).tobytes()
                t["parameters"] = {"binary_data_size": len(b)}
                chunks.append(b)
            else:
                t["data"] = a.ravel().tolist()
            req_inputs.append(t)
        req["inputs"] = req_inputs
        if outputs is not None:
            names = [outputs] if isinstance(outputs, str) else list(outputs)
            req["outputs"] = [{"name": n, "parameters": {"binary_data": bool(binary_output)}}
                              for n in names]
        elif binary_output:
            params["binary_data_output"] = True
        if params:
            req["parameters"] = params
        head = json.dumps(req, default=_json_default, separators=(",", ":")).encode()
        h = dict(headers or {})
        if binary:
            h["Inference-Header-Content-Length"] = str(len(head))
            h["Content-Type"] = "application/octet-stream"
        else:
            h["Content-Type"] = "application/json"
        r = self._request("POST", self._model_path(model_name, model_version) + "/infer",
                          body=b"".join([head] + chunks), headers=h)
        return self._parse_infer(r)

    @staticmethod
    def _parse_infer(r):
        content = r.content
        hl = r.headers.get("Inference-Header-Content-Length")
        if hl is not None:
            n = int(hl)
            resp = json.loads(content[:n])
            data = bytearray(content[n:])  # one copy, so the arrays are writable
        else:
            resp = json.loads(content)
            data = bytearray()
        out = {}
        offset = 0
        for o in resp.get("outputs", []):
            wire = o["datatype"]
            if wire not in DATATYPES:
                raise ReludError(r.status_code, f"output {o['name']}: datatype {wire} is not "
                                 "one this client reads")
            dt, shape = DATATYPES[wire], o["shape"]
            size = (o.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                count = int(np.prod(shape, dtype=np.int64))
                if count * dt.itemsize != size or offset + size > len(data):
                    raise ReludError(r.status_code, f"output {o['name']}: binary_data_size "
                                     f"{size} does not fit shape {shape} of {wire} or the body")
                a = np.frombuffer(data, dtype=dt, count=count, offset=offset).reshape(shape)
                offset += size
            else:
                a = np.asarray(o["data"], dtype=dt).reshape(shape)
            out[o["name"]] = a.astype(dt.newbyteorder("="), copy=False)
        return InferResult(resp, out)

    def gradients(self, model_name, input, *, target=None, grad_output=None, loss=None,
                  reduction=None, beta=None, delta=None, clip_grad_norm=None, stats=False,
                  outputs=None, binary=True, model_version=""):
        """relud's gradients extension on /v2/models/NAME/infer: a backward pass.

        Without loss: output.sum().backward(), or output.backward(grad_output). With loss
        (a loss name) against target (class indices as an integer array for cross_entropy
        and nll), with reduction / beta / delta. clip_grad_norm and stats as in /v1.
        Returns an InferResult: .gradients {"input", "0.weight", "0.bias", ...}, .loss,
        .total_norm, .stats, and the "output".
        """
        inputs = {"input": input}
        params = {}
        if loss is not None:
            params["loss"] = loss
            if target is None:
                raise ValueError("gradients: a loss needs a target")
            inputs["target"] = target
            for k, v in (("reduction", reduction), ("beta", beta), ("delta", delta)):
                if v is not None:
                    params[k] = v
        else:
            params["gradients"] = True
            if grad_output is not None:
                inputs["grad_output"] = grad_output
        if clip_grad_norm is not None:
            params["clip_grad_norm"] = clip_grad_norm
        if stats:
            params["stats"] = True
        return self.infer(model_name, inputs, outputs, binary=binary, parameters=params,
                          model_version=model_version)
