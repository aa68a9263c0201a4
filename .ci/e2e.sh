#!/usr/bin/env bash
# End-to-end test of the alert rules and dashboards against live data:
#   tenant-exporter --demo  <-  Prometheus (Debian `prometheus`, 1 s scrape and evaluation,
#   alerts/*.yml with `for:` shortened to 3 s)  ->  Alertmanager (Debian
#   `prometheus-alertmanager`, deploy/alertmanager/alertmanager.example.yml with its receivers
#   pointed at a webhook)  ->  .ci/webhook_receiver.py
# Everything listens on 127.0.0.1 on ephemeral ports; every wait is bounded; every process
# started here is stopped on exit. Asserts: the exporter is `up`; `promtool check metrics`
# passes on the live exposition; every dashboard query returns data (check_dashboard_queries.py);
# the alerts the demo must trigger reach the webhook with their labels and annotations, and no
# other alert fires (check_alerts.py).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

for tool in prometheus promtool prometheus-alertmanager amtool python3; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool not found (apt-get install prometheus prometheus-alertmanager)" >&2; exit 1; }
done

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
python3 -B .ci/check_alerts.py "$prom" "http://127.0.0.1:$alertmanager_port" "$tmp/webhook.jsonl" \
  "127.0.0.1:$exporter_port" 90
