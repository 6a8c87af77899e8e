#!/usr/bin/env bash
# Tests the trustgate Helm chart without a helm binary:
#   1. builds charts/tools/render (Go text/template + sprig, as helm renders) in GOPATH mode
#      against Debian's golang-go, golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v3-dev;
#   2. renders the chart with default values and with ci/all-features.yaml (with the
#      monitoring.coreos.com/v1 API present, so the ServiceMonitor renders);
#   3. validates the merged values against values.schema.json (check-jsonschema), the manifests
#      against the Kubernetes schemas of the oldest and newest supported versions
#      (kubernetes-validate --strict), and the ServiceMonitor against charts/tools/schemas;
#   4. checks invariants (charts/tools/check_rendered.py) and, when TRUSTGATE_BIN names a
#      trustgate binary, that `trustgate config validate` accepts the rendered configuration;
#   5. checks that changing the policy changes the checksum annotation, and that invalid
#      values (both PDB fields, an unknown CA bundle) fail.
#
# Installs what is missing: the Debian packages with apt-get (as root or through sudo) and the
# PyPI tools into a virtualenv under $CHART_TOOLS_DIR (default target/chart-tools), reused by
# later runs. Run from anywhere; `cargo test --test chart` runs it too.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
chart="$repo/charts/trustgate"
tools="${CHART_TOOLS_DIR:-$repo/target/chart-tools}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Oldest (Chart.yaml kubeVersion) and newest Kubernetes versions to validate against.
kube_versions=(1.25.0 1.37.0)
pypi=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0)
debs=(golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev openssl)

step() { printf '== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- tools ---------------------------------------------------------------------------------
missing=()
for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv

mkdir -p "$tools"
venv="$tools/venv"
if ! "$venv/bin/python" -c 'import kubernetes_validate, check_jsonschema' 2>/dev/null; then
  step "installing ${pypi[*]} into $venv"
  if ! python3 -m venv --clear "$venv" 2>/dev/null; then
    apt_install python3-venv
    python3 -m venv --clear "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pypi[@]}"
fi

render="$tools/render"
if [ ! -x "$render" ] || [ "$repo/charts/tools/render/main.go" -nt "$render" ]; then
  step "building the renderer"
  mkdir -p "$tools/gopath"
  (cd "$repo/charts/tools/render" &&
    GO111MODULE=off GOPATH="$tools/gopath:/usr/share/gocode" GOCACHE="$tools/gocache" \
      GOFLAGS= go build -o "$render" main.go)
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=trustgate-chart-test -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
# An empty CRL from that certificate (openssl ca needs a database and a CRL number).
: >"$work/index.txt"
echo 01 >"$work/crlnumber"
printf '[ca]\ndefault_ca = t\n[t]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 2\n' \
  "$work/index.txt" "$work/crlnumber" >"$work/ca.cnf"
openssl ca -config "$work/ca.cnf" -gencrl -keyfile "$work/key.pem" -cert "$work/cert.pem" \
  -out "$work/crl.pem" 2>/dev/null

# --- render and validate ------------------------------------------------------------------
# name|values overlay|extra API versions|kinds expected
cases=(
  "default||-|ConfigMap,Deployment,PodDisruptionBudget,Service,ServiceAccount"
  "all-features|$chart/ci/all-features.yaml|monitoring.coreos.com/v1|ConfigMap,DaemonSet,HorizontalPodAutoscaler,Ingress,NetworkPolicy,PodDisruptionBudget,Service,ServiceAccount,ServiceMonitor,StatefulSet"
)
for c in "${cases[@]}"; do
  IFS='|' read -r name overlay apis kinds <<<"$c"
  out="$work/$name"
  mkdir -p "$out"
  args=(-chart "$chart" -name trustgate-test -namespace registry
        -values-out "$out/values.json" -notes "$out/NOTES.txt")
  [ -n "$overlay" ] && args+=(-f "$overlay")
  [ "$apis" != "-" ] && args+=(-api-versions "$apis")

  step "$name: render"
  "$render" "${args[@]}" >"$out/manifests.yaml" || die "$name: rendering failed"
  [ -s "$out/NOTES.txt" ] || die "$name: NOTES.txt rendered empty"

  step "$name: values against values.schema.json"
  "$venv/bin/check-jsonschema" --schemafile "$chart/values.schema.json" "$out/values.json"

  for k in "${kube_versions[@]}"; do
    step "$name: manifests against Kubernetes $k schemas"
    # The ServiceMonitor is a CRD kind: kubernetes-validate has no schema and only warns.
    "$venv/bin/kubernetes-validate" --quiet --strict -k "$k" "$out/manifests.yaml" ||
      die "$name: kubernetes-validate -k $k failed"
  done

  if [[ ",$kinds," == *",ServiceMonitor,"* ]]; then
    step "$name: ServiceMonitor against charts/tools/schemas/servicemonitor.json"
    "$venv/bin/python" - "$out/manifests.yaml" "$out/servicemonitor.json" <<'EOF'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ServiceMonitor"]
assert len(docs) == 1, f"{len(docs)} ServiceMonitors"
json.dump(docs[0], open(sys.argv[2], "w"))
EOF
    "$venv/bin/check-jsonschema" --schemafile "$repo/charts/tools/schemas/servicemonitor.json" \
      "$out/servicemonitor.json"
  fi

  step "$name: invariants"
  "$venv/bin/python" "$repo/charts/tools/check_rendered.py" --rendered "$out/manifests.yaml" \
    --values "$out/values.json" --dashboard "$chart/dashboards/trustgate.json" \
    --expect-kinds "$kinds" --config-out "$out/config" \
    --pem-cert "$work/cert.pem" --pem-key "$work/key.pem" --pem-crl "$work/crl.pem"

  if [ -n "${TRUSTGATE_BIN:-}" ]; then
    step "$name: trustgate config validate on the rendered trustgate.yaml"
    "$TRUSTGATE_BIN" config validate --config "$out/config/trustgate.yaml"
  else
    echo "   (TRUSTGATE_BIN not set: not running trustgate config validate)"
  fi
done

# --- behaviour of values --------------------------------------------------------------------
checksum() { grep -m1 'checksum/config:' "$1" | awk '{print $2}'; }

step "a policy change rolls the pods (checksum/config changes)"
cat >"$work/policy.yaml" <<'EOF'
policy:
  default: allow
EOF
"$render" -chart "$chart" >"$work/before.yaml"
"$render" -chart "$chart" -f "$work/policy.yaml" >"$work/after.yaml"
"$render" -chart "$chart" >"$work/again.yaml"
before="$(checksum "$work/before.yaml")"
after="$(checksum "$work/after.yaml")"
[ -n "$before" ] && [ "$before" != "$after" ] || die "checksum/config did not change ($before)"
[ "$(checksum "$work/again.yaml")" = "$before" ] || die "checksum/config is not stable"

expect_failure() {
  local what="$1" message="$2" values="$3"
  printf '%s\n' "$values" >"$work/bad.yaml"
  if "$render" -chart "$chart" -f "$work/bad.yaml" >/dev/null 2>"$work/bad.err"; then
    die "$what rendered; it must fail"
  fi
  grep -q "$message" "$work/bad.err" || die "$what failed without saying '$message': $(cat "$work/bad.err")"
}
step "invalid values fail rendering"
expect_failure "a PDB with both fields" "exactly one of minAvailable and maxUnavailable" \
  'podDisruptionBudget: {minAvailable: 1, maxUnavailable: 1}'
expect_failure "an unknown CA bundle" 'caBundle "nope" is not defined' \
  'upstreams: [{registry: r.example, url: "https://r.example", default: true, caBundle: nope}]'
expect_failure "TLS without a Secret" "tls.existingSecret is required" \
  'tls: {enabled: true}'
expect_failure "credentials without a Secret" "credentials.existingSecret is required" \
  'upstreams: [{registry: r.example, url: "https://r.example", default: true, credentials: {username: u}}]'

expect_failure "s3 storage without a bucket" "storage.s3.bucket is required" \
  'storage: {backend: s3}'
expect_failure "the containerd verifier without a token" "containerdVerifier.enabled needs adminToken.existingSecret" \
  'containerdVerifier: {enabled: true}'

expect_failure "htpasswd users without a token key" "auth.htpasswd.existingSecret needs auth.tokenKey.existingSecret" \
  'auth: {enabled: true, htpasswd: {existingSecret: h}}'
expect_failure "a static token without a Secret" 'auth.tokens\[0\].secret is required' \
  'auth: {enabled: true, tokens: [{name: ci}]}'
expect_failure "client certificates without TLS" 'auth.clientCertificates needs tls.enabled' \
  'auth: {enabled: true, clientCertificates: {enabled: true, ca: {configMap: ca}}}'
expect_failure "a CRL from nowhere" 'auth.clientCertificates.crls\[0\]: set configMap or secret' \
  'tls: {enabled: true, existingSecret: t}
auth: {enabled: true, clientCertificates: {enabled: true, ca: {configMap: ca}, crls: [{key: crl.pem}]}}'

step "the containerd verifier with the Service's address, resolved by the installer"
printf 'adminToken: {existingSecret: t}\ncontainerdVerifier: {enabled: true}\n' >"$work/verifier.yaml"
"$render" -chart "$chart" -name tg -namespace registry -f "$work/verifier.yaml" >"$work/verifier-out.yaml"
grep -q -- '- "http://tg-trustgate.registry.svc:9090"' "$work/verifier-out.yaml" &&
  grep -q -- '- --resolve' "$work/verifier-out.yaml" ||
  die "the DaemonSet does not ask the Service by its resolved address"
grep -q 'admin_token_file: /etc/trustgate/admin-token/token' "$work/verifier-out.yaml" ||
  die "trustgate.yaml has no admin_token_file"

step "single replica: no PDB (it would block node drains)"
printf 'replicaCount: 1\n' >"$work/one.yaml"
"$render" -chart "$chart" -f "$work/one.yaml" >"$work/one-out.yaml"
! grep -q '^kind: PodDisruptionBudget' "$work/one-out.yaml" || die "PDB rendered for one replica"

echo "chart tests passed"
