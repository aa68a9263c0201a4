#!/usr/bin/env bash
# What the exporter costs a real Prometheus: one simulator with $ENTERPRISES BroadWorks
# enterprises, two exporters against it (the default metric families, and every family),
# each scraped by its own Prometheus every 15 s for $DURATION seconds. Prints each
# Prometheus's head series and RSS, and checks that the sync counters arrive (Prometheus
# negotiates OpenMetrics).
#
#   benches/prometheus.sh                       # 10,000 enterprises, 600 s
#   ENTERPRISES=1000 DURATION=120 benches/prometheus.sh
#
# Needs `prometheus` (Debian's package), curl, python3 (free ports, JSON). Uses the release
# binaries if built, else the debug ones (Prometheus's side does not depend on it). Every
# process started here is stopped on exit; every wait is bounded; all listen on 127.0.0.1.
set -euo pipefail
ENTERPRISES=${ENTERPRISES:-10000}
DURATION=${DURATION:-600}
PROMETHEUS=${PROMETHEUS:-prometheus}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
PROFILE=release
[[ -x $TARGET_DIR/release/tenant-exporter && -x $TARGET_DIR/release/examples/simulator ]] || PROFILE=debug
EXPORTER=$TARGET_DIR/$PROFILE/tenant-exporter
SIMULATOR=$TARGET_DIR/$PROFILE/examples/simulator

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}
for tool in curl python3 "$PROMETHEUS" "$EXPORTER" "$SIMULATOR"; do
	command -v "$tool" >/dev/null || die "$tool is not there (cargo build --example simulator?)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tenant-exporter-prom.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	[[ ${KEEP_WORK:-0} == 1 ]] && log "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Waits up to $2 seconds for URL $1 to answer 200.
wait_http() {
	for _ in $(seq $(($2 * 10))); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	die "$1 did not answer within $2 s"
}

# One instant query's first value, or "none".
query() {
	curl -fsS --get "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" |
		python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "none")'
}

log "simulator with $ENTERPRISES enterprises ($PROFILE build)"
"$SIMULATOR" --enterprises "$ENTERPRISES" >"$WORK/sim.out" 2>"$WORK/sim.err" &
PIDS+=($!)
for _ in $(seq 300); do
	grep -q '^token ' "$WORK/sim.out" 2>/dev/null && break
	sleep 0.1
done
SIM_URL=$(awk '$1 == "base_url" { print $2 }' "$WORK/sim.out")
SIM_TOKEN=$(awk '$1 == "token" { print $2 }' "$WORK/sim.out")
[[ -n $SIM_URL && -n $SIM_TOKEN ]] || die "the simulator printed no base URL"

declare -A EXP_PORT PROM_PORT
for variant in default every; do
	metrics=""
	if [[ $variant == every ]]; then
		metrics="  metrics:
    enable: [webex_broadworks_directory_sync_last_changes, webex_broadworks_directory_sync_errors, webex_broadworks_external_identities, webex_broadworks_contacts]"
	fi
	cat >"$WORK/$variant.yml" <<CONF
global:
  interval: 5m
$metrics
webex:
  - name: bench
    base_url: $SIM_URL
    access_token: $SIM_TOKEN
    broadworks_enterprises: {page_size: 1000}
CONF
	EXP_PORT[$variant]=$(free_port)
	"$EXPORTER" --config.file="$WORK/$variant.yml" --web.listen-address="127.0.0.1:${EXP_PORT[$variant]}" \
		--log.level=warn 2>"$WORK/exporter-$variant.log" &
	PIDS+=($!)
	PROM_PORT[$variant]=$(free_port)
	cat >"$WORK/prometheus-$variant.yml" <<CONF
global: {scrape_interval: 15s, scrape_timeout: 10s}
scrape_configs:
  - job_name: tenant-exporter
    static_configs: [{targets: ['127.0.0.1:${EXP_PORT[$variant]}']}]
  - job_name: prometheus
    static_configs: [{targets: ['127.0.0.1:${PROM_PORT[$variant]}']}]
CONF
	mkdir "$WORK/data-$variant"
	"$PROMETHEUS" --config.file="$WORK/prometheus-$variant.yml" --storage.tsdb.path="$WORK/data-$variant" \
		--web.listen-address="127.0.0.1:${PROM_PORT[$variant]}" >"$WORK/prometheus-$variant.log" 2>&1 &
	PIDS+=($!)
done
for variant in default every; do
	wait_http "http://127.0.0.1:${EXP_PORT[$variant]}/-/ready" 300
	wait_http "http://127.0.0.1:${PROM_PORT[$variant]}/-/ready" 60
done
log "scraping for $DURATION s"
sleep "$DURATION"

printf '\n%s enterprises, %s s of 15 s scrapes, Prometheus %s\n' "$ENTERPRISES" "$DURATION" \
	"$("$PROMETHEUS" --version 2>&1 | awk 'NR == 1 { print $3 }')"
printf '| families | scraped samples | head series | Prometheus RSS (max over the run) | exporter RSS | scrape duration | sync counters |\n|---|---|---|---|---|---|---|\n'
for variant in default every; do
	p=${PROM_PORT[$variant]}
	samples=$(query "$p" 'scrape_samples_scraped{job="tenant-exporter"}')
	head=$(query "$p" 'prometheus_tsdb_head_series')
	rss=$(query "$p" "max_over_time(process_resident_memory_bytes{job=\"prometheus\"}[${DURATION}s]) / 2^20")
	took=$(query "$p" 'scrape_duration_seconds{job="tenant-exporter"}')
	exporter=$(query "$p" 'process_resident_memory_bytes{job="tenant-exporter"} / 2^20')
	counters=$(query "$p" 'count(webex_broadworks_directory_syncs_total)')
	printf '| %s | %s | %s | %.0f MiB | %.0f MiB | %.3f s | %s |\n' "$variant" "$samples" "$head" "$rss" "$exporter" "$took" "$counters"
done
