"""What validate_k8s.py and validate_kserve.py share: a strict structural walk of a manifest
against python-kubernetes's model types (Debian's python3-kubernetes) and, for CRDs that
package lacks, a table of extra types; and a safe nested lookup."""
try:
    import kubernetes.client as kc
except ImportError:
    kc = None


def walk(value, typ, path, errs, extra=None, required=None):
    """Appends to errs every field of value that typ does not have or whose type differs.
    typ: a python-kubernetes type string ("list[V1Container]", "dict(str, str)", "str", a
    class name) or a name in extra ({type: {json field: type string}}); required: {type:
    [json fields]} for the extra types."""
    extra, required = extra or {}, required or {}
    if typ.startswith("list["):
        if not isinstance(value, list):
            errs.append(f"{path}: expected a list")
            return
        for i, v in enumerate(value):
            walk(v, typ[5:-1], f"{path}[{i}]", errs, extra, required)
    elif typ.startswith("dict("):
        inner = typ[5:-1].split(", ", 1)[1]
        if not isinstance(value, dict):
            errs.append(f"{path}: expected a map")
            return
        for k, v in value.items():
            walk(v, inner, f"{path}.{k}", errs, extra, required)
    elif typ == "str":
        if not isinstance(value, str):
            errs.append(f"{path}: expected a string, got {type(value).__name__} {value!r} (quote it)")
    elif typ == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errs.append(f"{path}: expected an integer, got {value!r}")
    elif typ == "bool":
        if not isinstance(value, bool):
            errs.append(f"{path}: expected true/false, got {value!r}")
    elif typ in ("object", "float", "datetime", "date"):
        pass  # IntOrString, Quantity-like or free-form
    elif typ in extra or kc is not None:
        if not isinstance(value, dict):
            errs.append(f"{path}: expected an object ({typ})")
            return
        if typ in extra:
            fields = extra[typ]
        else:
            cls = getattr(kc, typ)
            fields = {j: cls.openapi_types[a] for a, j in cls.attribute_map.items()}
        for k, v in value.items():
            if k not in fields:
                errs.append(f"{path}: unknown field {k!r} for {typ} (known: {', '.join(sorted(fields))})")
                continue
            walk(v, fields[k], f"{path}.{k}", errs, extra, required)
        for k in required.get(typ, []):
            if k not in value:
                errs.append(f"{path}: required field {k!r} missing ({typ})")


def get(d, *path, default=None):
    """d[path[0]][path[1]]..., or default where a step is missing."""
    for p in path:
        if isinstance(d, dict) and p in d:
            d = d[p]
        elif isinstance(d, list) and isinstance(p, int) and p < len(d):
            d = d[p]
        else:
            return default
    return d
