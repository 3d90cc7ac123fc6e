#!/usr/bin/env bash
# Validates the deployment files (deploy/): alert rules (promtool check and unit tests), the
# Prometheus and Alertmanager configs, the Grafana dashboard, every kustomize overlay rendered
# and validated against Kubernetes' schemas (custom kinds against their CRD schemas), the
# Compose file against the Compose specification, and that the generated files
# (.env.example, PrometheusRule) are current. Then, with the built nfai binary (NFAI_BIN, else
# $CARGO_TARGET_DIR/debug/nfai), it builds the runtime image with buildah and runs it
# (deploy/docker/ci-image.sh), and restores a backup into a fresh data directory and compares
# search results (deploy/tests/backup_restore.py). `--static` leaves those two out.
#
# Tools are installed on first use (apt: prometheus, prometheus-alertmanager, kubernetes-client
# when kubectl is missing, nodejs/npm; pip into .venv-deploy; npm into .venv-deploy/npm);
# later runs of the static checks are offline. The image's apt step needs the Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

static_only=0
[ "${1:-}" = "--static" ] && static_only=1

venv=.venv-deploy
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
step() { printf '\n-- %s\n' "$*"; }

apt_need() { # apt_need <command> <package>...
  command -v "$1" >/dev/null && return 0
  local cmd="$1"; shift
  echo "check-deploy: installing $* (apt) for $cmd" >&2
  apt-get install -y -q --no-install-recommends "$@" >/dev/null
}
apt_need promtool prometheus
apt_need amtool prometheus-alertmanager
apt_need kubectl kubernetes-client
apt_need node nodejs
apt_need npm npm

req=deploy/tools/requirements.txt
if [ ! -x "$venv/bin/kubernetes-validate" ] || ! cmp -s "$req" "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.requirements"
fi
npmdir="$venv/npm"
if ! cmp -s deploy/tools/package-lock.json "$npmdir/package-lock.json"; then
  mkdir -p "$npmdir"
  cp deploy/tools/package.json deploy/tools/package-lock.json "$npmdir/"
  (cd "$npmdir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

step "promtool: rules and their unit tests"
promtool check rules deploy/prometheus/rules/*.yml
promtool test rules deploy/prometheus/tests/*.test.yml

step "promtool: Prometheus config (secret files stubbed)"
mkdir -p "$tmp/secrets"
echo stub > "$tmp/secrets/qdrant_api_key"
sed "s#/run/secrets/#$tmp/secrets/#g" deploy/prometheus/prometheus.yml > "$tmp/prometheus.yml"
promtool check config --syntax-only "$tmp/prometheus.yml"

step "amtool: Alertmanager config"
amtool check-config deploy/alertmanager/alertmanager.yml

step "Grafana dashboard"
python3 - deploy/grafana/dashboards/*.json <<'PY'
import json, sys
for path in sys.argv[1:]:
    d = json.load(open(path))
    assert d.get("uid") and d.get("title"), f"{path}: uid and title required"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), f"{path}: duplicate panel ids"
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    assert exprs and all(e.strip() for e in exprs), f"{path}: empty query"
    print(f"{path}: {len(ids)} panels, {len(exprs)} queries")
PY
# The dashboard's PromQL, with Grafana's variables filled in, parsed by promtool as recording rules.
python3 - deploy/grafana/dashboards/*.json > "$tmp/dashboard-queries.yml" <<'PY'
import json, sys
rules = []
for path in sys.argv[1:]:
    for p in json.load(open(path))["panels"]:
        for t in p.get("targets", []):
            e = t["expr"].replace("$__rate_interval", "5m").replace("$instance", ".*").replace("$model", ".*")
            rules.append({"record": f"dashboard:query_{len(rules)}", "expr": e})
print(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
PY
promtool check rules "$tmp/dashboard-queries.yml" >/dev/null
echo "dashboard queries: valid PromQL"

step "generated files are current"
python3 deploy/tools/gen-env-example.py --check
python3 deploy/tools/gen-prometheusrule.py --check

step "Compose file against the Compose specification"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose/compose.yaml

step "kustomize overlays: render, validate (Kubernetes 1.32 and 1.37), CRD schemas"
rendered=()
for overlay in deploy/k8s/overlays/*/; do
  name="$(basename "$overlay")"
  kubectl kustomize "$overlay" > "$tmp/$name.yaml"
  rendered+=("$tmp/$name.yaml")
  echo "$name: $(grep -c '^kind:' "$tmp/$name.yaml") objects"
done
for k in 1.32.0 1.37.0; do
  # Custom kinds only warn here; validate-crds.cjs checks them below.
  "$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$k" "${rendered[@]}" \
    deploy/k8s/monitoring/*.yaml
done
node deploy/tools/validate-crds.cjs "$npmdir/node_modules" "${rendered[@]}"

if [ "$static_only" = 0 ]; then
  bin="${NFAI_BIN:-${CARGO_TARGET_DIR:-target}/debug/nfai}"
  models="${NFAI_MODEL_DIR:-$HOME/.cache/nfai/models}"
  if [ ! -x "$bin" ]; then
    echo "check-deploy: no nfai binary at $bin (build it, set NFAI_BIN, or pass --static)" >&2
    exit 1
  fi
  step "image: build deploy/docker/Dockerfile's runtime stage with buildah and run it"
  deploy/docker/ci-image.sh "$bin" "$models"

  step "backup and restore: a restored data directory gives the same search results"
  python3 deploy/tests/backup_restore.py "$bin" "$models"
fi
echo "check-deploy: all deployment checks passed"
