#!/usr/bin/env bash
# End-to-end test of the alert rules and dashboards against live data:
#   tenant-exporter --demo  <-  Prometheus (Debian `prometheus`, 1 s scrape and evaluation,
#   alerts/*.yml with `for:` shortened to 3 s)  ->  Alertmanager (Debian
#   `prometheus-alertmanager`, deploy/alertmanager/alertmanager.example.yml with its receivers
#   pointed at a webhook)  ->  .ci/webhook_receiver.py
# and, alongside, a second Prometheus at the shipped scrape and evaluation interval (1 minute)
# with the shipped rules, as production runs it.
# Everything listens on 127.0.0.1 on ephemeral ports; every wait is bounded; every process
# started here is stopped on exit. Asserts: the exporter is `up`; `promtool check metrics`
# passes on the live exposition; every dashboard query returns data and names only metrics
# Prometheus has (check_dashboard_queries.py), which a deliberately broken copy of the
# dashboards must fail; the alerts the demo must trigger reach the webhook with their labels
# and annotations, the ones the example inhibits stay muted, and no other alert fires
# (check_alerts.py); finally every dashboard query returns data on the production-interval
# Prometheus with Grafana's $__rate_interval for that scrape interval.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

for tool in prometheus promtool prometheus-alertmanager amtool python3; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool not found (apt-get install prometheus prometheus-alertmanager)" >&2; exit 1; }
done
. .ci/pyenv.sh  # promql-parser, for check_dashboard_queries.py

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tenant-exporter-e2e.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    for log in "$tmp"/*.log; do
      [ -f "$log" ] || continue
      echo "---- last lines of $(basename "$log")" >&2
      tail -n 25 "$log" >&2
    done
  fi
  rm -rf "$tmp"
  echo "e2e: finished in $(( $(date +%s) - start )) s (exit $rc)"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# fetch URL: prints the body; fails on a connection error, a timeout (5 s) or an HTTP error.
fetch() {
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.5 s until it succeeds.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local until=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$until" ]; then echo "e2e: timed out after ${seconds}s waiting for $what" >&2; return 1; fi
    sleep 0.5
  done
  echo "e2e: $what"
}

cargo build --locked --quiet
exporter_port=$(free_port)
prometheus_port=$(free_port)
prod_port=$(free_port)
alertmanager_port=$(free_port)

python3 -B .ci/webhook_receiver.py "$tmp/webhook.port" "$tmp/webhook.jsonl" >"$tmp/webhook.log" 2>&1 &
pids+=($!)
wait_for 10 "webhook receiver listening" test -s "$tmp/webhook.port"
webhook_port=$(cat "$tmp/webhook.port")

target/debug/tenant-exporter --demo --web.listen-address="127.0.0.1:$exporter_port" --log.level=warn \
  >"$tmp/exporter.log" 2>&1 &
pids+=($!)
wait_for 30 "exporter ready on 127.0.0.1:$exporter_port" fetch "http://127.0.0.1:$exporter_port/-/ready"

fetch "http://127.0.0.1:$exporter_port/metrics" >"$tmp/exposition.txt"
promtool check metrics <"$tmp/exposition.txt"
echo "e2e: promtool check metrics passed on the live exposition"

python3 -B .ci/e2e_config.py "$tmp" "127.0.0.1:$exporter_port" "127.0.0.1:$alertmanager_port" \
  "http://127.0.0.1:$webhook_port/alerts" 3s
promtool check config "$tmp/prometheus.yml" >/dev/null
promtool check config "$tmp/prometheus-prod.yml" >/dev/null
amtool check-config "$tmp/alertmanager.yml" >/dev/null

prometheus-alertmanager --config.file="$tmp/alertmanager.yml" --storage.path="$tmp/alertmanager" \
  --web.listen-address="127.0.0.1:$alertmanager_port" --cluster.listen-address= \
  >"$tmp/alertmanager.log" 2>&1 &
pids+=($!)
wait_for 30 "Alertmanager ready on 127.0.0.1:$alertmanager_port" fetch "http://127.0.0.1:$alertmanager_port/-/ready"

prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prometheus" \
  --web.listen-address="127.0.0.1:$prometheus_port" >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
prom="http://127.0.0.1:$prometheus_port"
prometheus --config.file="$tmp/prometheus-prod.yml" --storage.tsdb.path="$tmp/prometheus-prod" \
  --web.listen-address="127.0.0.1:$prod_port" >"$tmp/prometheus-prod.log" 2>&1 &
pids+=($!)
prod="http://127.0.0.1:$prod_port"
prod_started=$(date +%s)
wait_for 30 "Prometheus ready on 127.0.0.1:$prometheus_port" fetch "$prom/-/ready"

target_up() {
  fetch "$prom/api/v1/query?query=up%7Bjob%3D%22tenant-exporter%22%7D%20%3D%3D%201" | grep -q '"__name__":"up"'
}
wait_for 30 "Prometheus scrapes the exporter: up{job=\"tenant-exporter\"} == 1" target_up
rules_loaded() {
  [ "$(fetch "$prom/api/v1/rules" | python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')" -gt 0 ]
}
wait_for 10 "Prometheus loaded the rules" rules_loaded

python3 -B .ci/check_dashboard_queries.py "$prom" 60
python3 -B .ci/check_alerts.py "$prom" "http://127.0.0.1:$alertmanager_port" "$tmp/webhook.jsonl" 90

# The query check must be able to fail: every selector renamed in turn is reported, and a copy
# of the dashboards with one metric name broken in each fails on exactly those names.
python3 -B .ci/check_dashboard_queries.py --self-test "$prom" 10
mkdir -p "$tmp/broken"
python3 - "$tmp/broken" <<'PY'
import json, pathlib, re, sys
sys.path.insert(0, ".ci")
import promql
for path in sorted(pathlib.Path("dashboards").glob("*.json")):
    d = json.loads(path.read_text())
    # The last query's last metric name: often inside an `or`/`and` branch.
    for p in reversed([p for p in d["panels"] if p.get("targets")]):
        t = p["targets"][-1]
        names = [n for n, _ in promql.selectors(t["expr"]) if n]
        if names:
            t["expr"] = re.sub(rf"\b{re.escape(names[-1])}\b", names[-1] + "_broken", t["expr"])
            print(f"broken: {path.name} panel {p['title']!r}: {names[-1]}")
            break
    (pathlib.Path(sys.argv[1]) / path.name).write_text(json.dumps(d))
PY
if python3 -B .ci/check_dashboard_queries.py "$prom" 5 "$tmp/broken" >"$tmp/broken.log" 2>&1; then
  cat "$tmp/broken.log" >&2
  echo "e2e: the dashboard query check passed on deliberately broken dashboards" >&2
  exit 1
fi
broken=$(grep -c '^FAIL .*no such metric [a-z_:]*_broken' "$tmp/broken.log" || true)
dashboards=$(ls dashboards/*.json | wc -l)
if [ "$broken" -ne "$dashboards" ]; then
  cat "$tmp/broken.log" >&2
  echo "e2e: expected $dashboards broken-metric failures, got $broken" >&2
  exit 1
fi
echo "e2e: the dashboard query check fails on the broken copy ($broken broken metric names reported)"

# Production interval: the shipped scrape interval, Grafana's $__rate_interval for it.
scrape=$(cat "$tmp/scrape_seconds")
prod_up() {
  fetch "$prod/api/v1/query?query=count(count_over_time(up%7Bjob%3D%22tenant-exporter%22%7D%5B10m%5D)%20%3E%3D%202)" | grep -q '"value"'
}
wait_for $(( 3 * scrape + 30 )) "the production-interval Prometheus has two scrapes" prod_up
python3 -B .ci/check_dashboard_queries.py "$prod" $(( 2 * scrape + 30 )) dashboards "$scrape"
echo "e2e: production-interval Prometheus ran $(( $(date +%s) - prod_started )) s"
