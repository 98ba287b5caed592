#!/usr/bin/env bash
# make demo: two fixture backends (:9001, :9002) behind goaround on :3000, metrics on :8080.
# Shows requests alternating between the backends, then keeps everything running until
# Ctrl-C, which stops every process this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

FIXTURE=target/release/examples/fixture_backend
GOAROUND=bin/goaround
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$FIXTURE" --port 9001 --name backend-1 & PIDS+=($!)
"$FIXTURE" --port 9002 --name backend-2 & PIDS+=($!)
"$GOAROUND" -p 3000 -prometheus-port 8080 -b http://127.0.0.1:9001 -b http://127.0.0.1:9002 & PIDS+=($!)

# Ready when both backends passed their first health check.
for _ in $(seq 1 100); do
  if curl -s --max-time 1 http://127.0.0.1:8080/metrics 2>/dev/null | grep -q '^goaround_backends_up 2$'; then
    break
  fi
  sleep 0.1
done

echo
echo "== six requests to http://127.0.0.1:3000/ (round-robin):"
for _ in 1 2 3 4 5 6; do curl -s http://127.0.0.1:3000/; echo; done
echo
echo "== backends, via the control socket (echo list | nc -U /tmp/goaround.sock):"
if command -v nc >/dev/null; then echo list | nc -U /tmp/goaround.sock || true; fi
echo
echo "goaround is on http://127.0.0.1:3000 (metrics: http://127.0.0.1:8080/metrics). Ctrl-C stops it all."
wait
