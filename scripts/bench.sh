#!/usr/bin/env bash
# make bench: requests/s and latency through goaround (the static release binary) next to
# the same load sent straight to one fixture backend, per path, as a ratio.
#
#   DURATION [10] seconds per run   CONNS [64] wrk connections   THREADS [2] wrk threads
#   PATHS ["/ /bytes/1024 /bytes/65536"]   HANDLES [32] goaround -n
#   WORKERS [one per CPU] goaround -workers (event loops)
#   EXTRAS [1]: also TLS (keep-alive, and one handshake per request) and cache-hit runs
#
# Loopback only; every process started here is stopped on exit. For nginx and HAProxy side
# by side, see docs/BENCHMARKS.md (the shared peers.sh harness with CANDIDATE=bin/goaround ...).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PATHS=${PATHS:-"/ /bytes/1024 /bytes/65536"}
HANDLES=${HANDLES:-32}
WORKERS=${WORKERS:-}
NAME=bench
# shellcheck source=scripts/common.sh
source scripts/common.sh

"$FIXTURE" --port 0 --name b1 >"$W/b1.out" 2>&1 & PIDS+=($!)
"$FIXTURE" --port 0 --name b2 >"$W/b2.out" 2>&1 & PIDS+=($!)
B1=$(wait_for_line "$W/b1.out" '127\.0\.0\.1:[0-9]+')
B2=$(wait_for_line "$W/b2.out" '127\.0\.0\.1:[0-9]+')

# start_goaround NAME [extra flags...]: sets GA_<NAME> (address) and records the pid
start_goaround() {
  local name=$1; shift
  RUST_LOG=warn,goaround::server=info "$GOAROUND" -p 0 -bind 127.0.0.1 -prometheus-port 0 \
    -socket "$W/$name.sock" -n "$HANDLES" ${WORKERS:+-workers "$WORKERS"} \
    -b "http://$B1" -b "http://$B2" "$@" 2>"$W/$name.log" & PIDS+=($!)
  eval "PID_$name=$!"
  local addr metrics
  addr=$(wait_for_line "$W/$name.log" 'listening on [0-9.]+:[0-9]+' | awk '{print $3}')
  metrics=$(wait_for_line "$W/$name.log" 'metrics on [0-9.]+:[0-9]+' | awk '{print $3}')
  for _ in $(seq 1 100); do
    curl -s "http://$metrics/metrics" | grep -q '^goaround_backends_up 2$' && break
    sleep 0.1
  done
  eval "GA_$name=$addr"
}
start_goaround plain
GA=$GA_plain
GA_PID=$PID_plain

cat >"$W/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
LUA

run() { # url -> "rps p50_ms p99_ms errors requests"
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s "$W/report.lua" "$1" 2>&1 | awk '/^RESULT/ {
    printf "%.0f %.3f %.3f %d %d\n", $2 / ($3 / 1e6), $4 / 1000, $5 / 1000, $6, $2 }'
}

switches() { # pid -> context switches (voluntary + involuntary) of all its threads so far
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'
}

cpu_ticks() { # pid -> user + system clock ticks so far
  sed 's/.*) //' /proc/"$1"/stat | awk '{ print $12 + $13 }'
}
HZ=$(getconf CLK_TCK)

echo "goaround $("$GOAROUND" -version | awk '{print $2}') ($(file -b "$GOAROUND" | grep -oE 'static(-pie)? linked|dynamically linked')),"
echo "wrk -t$THREADS -c$CONNS -d${DURATION}s; goaround -n $HANDLES -workers ${WORKERS:-\"one per CPU\"} over 2 fixture backends"
echo "direct = the same load straight to one fixture backend; ratio = goaround / direct req/s"
echo "cpu_us = goaround's CPU time (user + system) per request, steadier than req/s on a shared machine"
echo
printf "%-14s %12s %9s %9s %12s %9s %9s %7s %7s %6s\n" path direct_rps p50_ms p99_ms goaround_rps p50_ms p99_ms ratio cpu_us errors
per_request=""
for path in $PATHS; do
  read -r d_rps d_p50 d_p99 d_err _ < <(run "http://$B1$path")
  before=$(switches "$GA_PID")
  ticks=$(cpu_ticks "$GA_PID")
  read -r g_rps g_p50 g_p99 g_err g_requests < <(run "http://$GA$path")
  cpu_us=$(awk -v t=$(($(cpu_ticks "$GA_PID") - ticks)) -v n="$g_requests" -v hz="$HZ" \
    'BEGIN { printf "%.1f", (n > 0) ? t * 1e6 / hz / n : 0 }')
  after=$(switches "$GA_PID")
  [ -n "$per_request" ] || per_request=$(awk -v s=$((after - before)) -v n="$g_requests" \
    'BEGIN { printf "%.3f (%s)", (n > 0) ? s / n : 0, "'"$path"'" }')
  ratio=$(awk -v a="$g_rps" -v b="$d_rps" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
  printf "%-14s %12s %9s %9s %12s %9s %9s %7s %7s %6s\n" "$path" "$d_rps" "$d_p50" "$d_p99" "$g_rps" "$g_p50" "$g_p99" "$ratio" "$cpu_us" "$((d_err + g_err))"
done
echo
echo "goaround context switches per request: $per_request"
echo
echo "goaround peak RSS: $(awk '/^VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$GA_PID/status")"

[ "${EXTRAS:-1}" = 1 ] || exit 0

# TLS: a throwaway self-signed pair made here (never committed, never reused).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -keyout "$W/key.pem" -out "$W/cert.pem" -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
start_goaround tls -cacert "$W/cert.pem" -privkey "$W/key.pem"
start_goaround cache -cache
echo
printf "%-40s %12s %9s %9s %6s\n" scenario req/s p50_ms p99_ms errors
scenario() { # label url [wrk args...]
  local label=$1 url=$2; shift 2
  local rps p50 p99 err
  read -r rps p50 p99 err < <(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$@" \
    -s "$W/report.lua" "$url" 2>&1 | awk '/^RESULT/ {
    printf "%.0f %.3f %.3f %d\n", $2 / ($3 / 1e6), $4 / 1000, $5 / 1000, $6 }')
  printf "%-40s %12s %9s %9s %6s\n" "$label" "$rps" "$p50" "$p99" "$err"
}
scenario "plain /bytes/1024 (no cache)" "http://$GA/bytes/1024"
scenario "cache hits /bytes/1024" "http://$GA_cache/bytes/1024"
scenario "TLS keep-alive /bytes/1024" "https://$GA_tls/bytes/1024"
scenario "TLS handshake per request (new conns)" "https://$GA_tls/" -H "Connection: close"
scenario "plain new connection per request" "http://$GA/" -H "Connection: close"
