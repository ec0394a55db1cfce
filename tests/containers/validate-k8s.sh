#!/bin/bash
# Offline check of deploy/k8s, run by .ci/run (no cluster, no container engine):
#  1. tests/containers/validate_k8s.py: YAML, field-by-field schema check against Debian's
#     python3-kubernetes API models, and relud-specific rules (probes, drain arithmetic,
#     env names, selectors, HPA/PDB, ConfigMap size and sync with config/models).
#  2. kubectl kustomize deploy/k8s renders, when a kubectl is on PATH (not in Debian 12's main
#     archive as a current version: skipped otherwise).
#  3. With build/relud: the ConfigMap is materialised the way the kubelet mounts it
#     (..data symlink to a timestamped folder, one symlink per key) and relud serves the
#     models from it (model_dir /models in the pod).
#  4. tests/containers/validate_kserve.py: deploy/kserve (relud's KServe ServingRuntime and
#     the InferenceService example) against KServe's CRD schema, its runtime selection and
#     relud's rules; with build/relud, the runtime's environment serving /mnt/models.
# Ends with "N passed, N failed"; non-zero exit on failure.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
PY=/usr/bin/python3
PASS=0 FAIL=0 SKIP=0
ok()   { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }

missing=()
for p in python3-yaml python3-kubernetes; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})"; exit 2
  fi
fi

# 1. manifests
out=$($PY tests/containers/validate_k8s.py 2>&1); rc=$?
echo "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$|^\([0-9]+ skipped\)$'
s=$(echo "$out" | sed -n 's/^(\([0-9]*\) skipped)$/\1/p'); SKIP=$((SKIP + ${s:-0}))
p=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
f=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
PASS=$((PASS + ${p:-0})); FAIL=$((FAIL + ${f:-0}))
[ "$rc" -eq 0 ] || [ "${f:-0}" -gt 0 ] || bad "validate_k8s.py crashed (exit $rc)"

# 2. kustomize rendering
if command -v kubectl >/dev/null 2>&1; then
  if kinds=$(kubectl kustomize deploy/k8s 2>&1 | grep -E '^kind: ' | sort | tr '\n' ' '); then
    case $kinds in
      *ConfigMap*Deployment*HorizontalPodAutoscaler*PodDisruptionBudget*Service*) ok "kubectl kustomize deploy/k8s renders: $kinds" ;;
      *) bad "kubectl kustomize deploy/k8s: got kinds '$kinds'" ;;
    esac
  else
    bad "kubectl kustomize deploy/k8s failed"
  fi
else
  SKIP=$((SKIP + 1)); echo "skip - kubectl kustomize (no kubectl on PATH)"
fi

# 3. relud serving the ConfigMap as the kubelet mounts it
RELUD=${RELUD:-build/relud}
if [ -x "$RELUD" ]; then
  W=$(mktemp -d /tmp/relud-k8s.XXXXXX)
  trap 'kill "$rp" 2>/dev/null; wait "$rp" 2>/dev/null; rm -rf "$W"' EXIT
  ts=..2026_01_01_00_00_00.000000001
  mkdir -p "$W/models/$ts"
  $PY - deploy/k8s/configmap-models.yaml "$W/models/$ts" <<'EOF'
import base64, os, sys, yaml
cm = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "ConfigMap")
for k, v in (cm.get("data") or {}).items():
    open(os.path.join(sys.argv[2], k), "w").write(v)
for k, v in (cm.get("binaryData") or {}).items():
    open(os.path.join(sys.argv[2], k), "wb").write(base64.b64decode(v))
EOF
  ln -s "$ts" "$W/models/..data"
  for f in "$W/models/$ts"/*; do ln -s "..data/$(basename "$f")" "$W/models/$(basename "$f")"; done
  chmod -R a-w "$W/models/$ts"
  RELUD_STRICT_MODELS=true "$RELUD" --host 127.0.0.1 --port 0 --model-dir "$W/models" 2>"$W/log" &
  rp=$!
  port=
  for _ in $(seq 50); do
    port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$W/log" | head -1)
    [ -n "$port" ] && break; sleep 0.1
  done
  nmodels=$(find "$W/models/$ts" \( -name '*.json' -o -name '*.onnx' \) | wc -l)
  if [ -n "$port" ] && curl -fsS -o /dev/null --retry 20 --retry-delay 0 --retry-max-time 5 --retry-connrefused \
       "http://127.0.0.1:$port/v2/health/ready" && grep -q "models: $nmodels ready, 0 unavailable" "$W/log"; then
    ok "relud loads all $nmodels models from the ConfigMap laid out as the kubelet mounts it (strict_models)"
  else
    bad "relud on the kubelet-style ConfigMap mount: $(tail -5 "$W/log" | tr '\n' ' ')"
  fi
  for m in $(ls "$W/models/$ts" | sed -n 's/\.\(json\|onnx\)$//p'); do
    code=$(curl -sS -o "$W/resp" -w '%{http_code}' "http://127.0.0.1:${port:-1}/v2/models/$m/ready" || true)
    if [ "$code" = 200 ]; then ok "model $m ready from the ConfigMap"; else bad "model $m from the ConfigMap: HTTP $code $(head -c 200 "$W/resp")"; fi
  done
else
  SKIP=$((SKIP + 1)); echo "skip - relud on the ConfigMap mount (no $RELUD; run make first)"
fi

# 4. KServe: deploy/kserve
out=$(RELUD=${RELUD:-build/relud} $PY tests/containers/validate_kserve.py 2>&1); rc=$?
echo "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$|^\([0-9]+ skipped\)$'
s=$(echo "$out" | sed -n 's/^(\([0-9]*\) skipped)$/\1/p'); SKIP=$((SKIP + ${s:-0}))
p=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
f=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
PASS=$((PASS + ${p:-0})); FAIL=$((FAIL + ${f:-0}))
[ "$rc" -eq 0 ] || [ "${f:-0}" -gt 0 ] || bad "validate_kserve.py crashed (exit $rc)"

echo "($SKIP skipped)"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
