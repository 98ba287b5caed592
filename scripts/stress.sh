#!/usr/bin/env bash
# make stress: the long versions of the abuse and fault tests, with wrk, on loopback.
#
#   1. 10,000 idle keep-alive connections (-workers 2): threads, RSS, and a new client's
#      latency while they are open.
#   2. wrk while the backend set is replaced over the control socket every 300 ms.
#   3. wrk while one of two backends is killed.
#   4. wrk while goaround gets SIGTERM (in-flight requests complete, exit 0).
#
#   DURATION [10] seconds per wrk run   CONNS [32] wrk connections   IDLE [10000]
#
# Every process started here is stopped on exit. Needs wrk, curl, python3 (installed by
# apt-get when missing, except python3 which the machine has).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
IDLE=${IDLE:-10000}
NAME=stress
# shellcheck source=scripts/common.sh
source scripts/common.sh

backend() { # NAME -> starts a fixture backend, sets BACKEND_<NAME> (addr) and BPID_<NAME>
  "$FIXTURE" --port 0 --name "$1" >"$W/$1.out" 2>&1 &
  PIDS+=($!)
  eval "BPID_$1=$!"
  eval "BACKEND_$1=$(wait_for_line "$W/$1.out" '127\.0\.0\.1:[0-9]+')"
}

goaround() { # NAME args... -> starts goaround, sets GA (addr), GA_PID, METRICS
  local name=$1; shift
  RUST_LOG=warn,goaround::server=info "$GOAROUND" -p 0 -bind 127.0.0.1 -prometheus-port 0 -socket "$W/$name.sock" \
    -health-interval 1s "$@" 2>"$W/$name.log" &
  GA_PID=$!
  PIDS+=($GA_PID)
  GA=$(wait_for_line "$W/$name.log" 'listening on [0-9.]+:[0-9]+' | awk '{print $3}' || true)
  if [ -z "$GA" ]; then
    echo "stress: goaround did not start" >&2; cat "$W/$name.log" >&2; exit 1
  fi
  METRICS=$(wait_for_line "$W/$name.log" 'metrics on [0-9.]+:[0-9]+' | awk '{print $3}')
}

wait_up() { # N: until N backends are up
  for _ in $(seq 1 100); do
    curl -s "http://$METRICS/metrics" | grep -q "^goaround_backends_up $1\$" && return 0
    sleep 0.1
  done
  echo "stress: $1 backends never came up" >&2; return 1
}

wrk_summary() { # wrk output file -> "requests non2xx connect_errors read_errors other_errors"
  awk '/requests in/ {r=$1} /Non-2xx/ {n=$5} /Socket errors/ {
         gsub(",", ""); c=$4; rd=$6; o=$8+$10 } END { printf "%d %d %d %d %d\n", r, n, c, rd, o }' "$1"
}

backend a; backend b; backend c

echo "== 1. $IDLE idle keep-alive connections, -workers 2 (two event loops)"
RUST_LOG=info "$GOAROUND" -p 0 -bind 127.0.0.1 -prometheus-port 0 -socket "$W/idle.sock" \
  -workers 2 -max-conns $((IDLE + 100)) -b "http://$BACKEND_a" 2>"$W/idle.log" &
GA_PID=$!; PIDS+=($GA_PID)
GA=$(wait_for_line "$W/idle.log" 'listening on [0-9.]+:[0-9]+' | awk '{print $3}')
METRICS=$(wait_for_line "$W/idle.log" 'metrics on [0-9.]+:[0-9]+' | awk '{print $3}')
wait_up 1
python3 - "$GA" "$IDLE" "$GA_PID" <<'PY'
import resource, socket, sys, time, urllib.request
addr, n, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
host, port = addr.rsplit(":", 1)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
conns = []
req = b"GET / HTTP/1.1\r\nHost: stress\r\n\r\n"
for i in range(n):
    s = socket.create_connection((host, int(port)))
    if i % 2 == 0:            # half of them have made one request and stay keep-alive
        s.sendall(req)
        s.recv(4096)
    conns.append(s)
def status(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return line.split(":", 1)[1].strip()
t = time.perf_counter()
body = urllib.request.urlopen(f"http://{addr}/", timeout=10).read()
took = (time.perf_counter() - t) * 1000
print(f"open idle connections: {len(conns)}; threads: {status('Threads')}; "
      f"RSS: {status('VmRSS')} (peak {status('VmHWM')}); new client answered in {took:.1f} ms")
for s in conns:
    s.close()
PY
kill "$GA_PID"; wait "$GA_PID" 2>/dev/null || true

echo
echo "== 2. wrk -c$CONNS -d${DURATION}s while the set is replaced every 300 ms"
goaround swap -b "http://$BACKEND_a" -b "http://$BACKEND_b"
wait_up 2
sets=("http://$BACKEND_a,http://$BACKEND_b" "http://$BACKEND_b,http://$BACKEND_c" "http://$BACKEND_a,http://$BACKEND_c")
python3 - "$W/swap.sock" "$DURATION" "$W/swaps" "${sets[@]}" <<'PY' &
import socket, sys, time
path, duration, out, sets = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
end, n = time.monotonic() + duration, 0
while time.monotonic() < end:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(sets[n % len(sets)].encode() + b"\n")
    s.shutdown(socket.SHUT_WR)
    reply = s.recv(100)
    assert reply.startswith(b"ok:"), reply
    s.close()
    n += 1
    time.sleep(0.3)
open(out, "w").write(str(n))
PY
wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://$GA/" > "$W/swap.wrk" 2>&1
wait $! 2>/dev/null || true
read -r req non2xx conn rd other < <(wrk_summary "$W/swap.wrk")
echo "requests $req, non-2xx $non2xx, socket errors connect/read/other $conn/$rd/$other," \
     "set replaced $(cat "$W/swaps") times"
kill "$GA_PID"; wait "$GA_PID" 2>/dev/null || true

echo
echo "== 3. wrk -c$CONNS -d${DURATION}s, one of two backends killed after $((DURATION / 3)) s"
goaround kill -b "http://$BACKEND_a" -b "http://$BACKEND_b"
wait_up 2
( sleep $((DURATION / 3)); kill "$BPID_b" ) &
wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://$GA/" > "$W/kill.wrk" 2>&1
read -r req non2xx conn rd other < <(wrk_summary "$W/kill.wrk")
echo "requests $req, non-2xx $non2xx, socket errors connect/read/other $conn/$rd/$other"
kill "$GA_PID"; wait "$GA_PID" 2>/dev/null || true

echo
echo "== 4. wrk -c$CONNS on /slow/100, SIGTERM after 2 s (-shutdown-timeout 5s)"
goaround term -shutdown-timeout 5s -b "http://$BACKEND_a" -b "http://$BACKEND_c"
wait_up 2
( sleep 2; kill -TERM "$GA_PID" ) &
start=$SECONDS
wrk -t2 -c"$CONNS" -d6s "http://$GA/slow/100" > "$W/term.wrk" 2>&1 &
WRK=$!
set +e; wait "$GA_PID"; code=$?; set -e
exited=$((SECONDS - start))
wait "$WRK" 2>/dev/null || true
read -r req non2xx conn rd other < <(wrk_summary "$W/term.wrk")
echo "goaround exit status $code, ~${exited}s after start; wrk: requests $req, non-2xx $non2xx;"
echo "  socket errors: connect $conn (refused once the listener closed), read $rd, other $other"
