#!/usr/bin/env bash
# Renders the monitoring mixin (mixin/, jsonnet) into alerts/*.yml and dashboards/*.json.
#   .ci/mixin.sh          regenerate the committed files
#   .ci/mixin.sh --check  exit 1, with a diff, if the committed files differ from the mixin
# Needs only Debian's `jsonnet` (no jsonnet-bundler, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v jsonnet >/dev/null || { echo "mixin: jsonnet not found (apt-get install jsonnet)" >&2; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/tenant-exporter-mixin.XXXXXX")
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/alerts" "$out/dashboards"
jsonnet -J mixin -S -m "$out" mixin/build.jsonnet >/dev/null
generated() { (cd "$1" && ls alerts/*.yml dashboards/*.json 2>/dev/null | sort); }
if [ "${1:-}" = --check ]; then
  # Nothing bypasses _config.selector: rendered with another job, no rule and no dashboard
  # names the default job any more, and the new one is in every rule file and dashboard.
  mkdir -p "$out/other/alerts" "$out/other/dashboards"
  jsonnet -J mixin -S -m "$out/other" --tla-code 'config={selector: "job=\"selector-under-test\""}' mixin/build.jsonnet >/dev/null
  if grep -n 'job=\\\?"tenant-exporter' "$out"/other/alerts/*.yml "$out"/other/dashboards/*.json >"$out/hardcoded"; then
    head "$out/hardcoded" >&2
    echo "mixin: these ignore _config.selector (the default job is hard-coded)" >&2
    exit 1
  fi
  for f in "$out"/other/alerts/*.yml "$out"/other/dashboards/*.json; do
    grep -q 'selector-under-test' "$f" || { echo "mixin: $(basename "$f") does not use _config.selector" >&2; exit 1; }
  done
  if diff -u <(generated .) <(generated "$out") >"$out/files.diff" \
     && diff -ru --exclude=tests --exclude=runbook.md --exclude=provisioning.yml alerts "$out/alerts" >"$out/alerts.diff" \
     && diff -ru --exclude=provisioning.yml dashboards "$out/dashboards" >"$out/dashboards.diff"; then
    echo "mixin: alerts/*.yml and dashboards/*.json are what mixin/ generates ($(generated . | wc -l) files)"
    exit 0
  fi
  head -n 80 "$out"/*.diff >&2
  echo "mixin: alerts/ or dashboards/ differ from mixin/: run .ci/mixin.sh and commit the result" >&2
  exit 1
fi
rm -f alerts/*.yml dashboards/*.json
cp "$out"/alerts/*.yml alerts/
cp "$out"/dashboards/*.json dashboards/ 2>/dev/null || true
echo "mixin: wrote $(generated "$out" | wc -l) files"
