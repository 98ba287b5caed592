#!/usr/bin/env bash
# CPU time per request of a load balancer already running on loopback, and of everything
# else on the machine during the same run.
#
#   scripts/cpu_per_request.sh PORT [PATH] [SECONDS]
#
# Runs wrk -t2 -c64 against 127.0.0.1:PORT/PATH (default /, 6 s) and prints requests/s, p99,
# the user and system CPU µs per request of the processes listening on PORT (found with
# `ss -p`; nginx's workers are summed), the CPU µs per request the rest of the machine spent
# (wrk, backends, other tenants), and each busy thread's share of the proxy's CPU (an event
# loop that carries more connections than the others shows here).
#
# On a machine where the load generator and the backends share the proxy's cores, req/s is
# capped by their CPU as much as by the proxy's, so req/s ratios between proxies are noisy;
# CPU per request is the proxy's own cost and varies much less from run to run.
#
#   THREADS [2] CONNS [64] wrk threads and connections
#
# Needs wrk and ss (iproute2); ss shows other users' processes only to root.
set -euo pipefail

PORT=${1:?usage: $0 PORT [PATH] [SECONDS]}
URL_PATH=${2:-/}
SECONDS_RUN=${3:-6}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}

mapfile -t PIDS < <(ss -ltnpH "sport = :$PORT" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
[ "${#PIDS[@]}" -gt 0 ] || { echo "nothing listens on port $PORT (or ss -p may not show it)" >&2; exit 1; }

ticks() { # user and system clock ticks of every listed process
  local u=0 s=0 p f
  for p in "${PIDS[@]}"; do
    read -r -a f < <(sed 's/.*) //' "/proc/$p/stat")
    u=$((u + f[11])) s=$((s + f[12]))
  done
  echo "$u $s"
}
thread_ticks() { # "name ticks" per thread of every listed process
  local p t f
  for p in "${PIDS[@]}"; do
    for t in /proc/"$p"/task/*; do
      read -r -a f < <(sed 's/.*) //' "$t/stat")
      echo "${t##*/} $((f[11] + f[12])) $(tr ' ' '_' <"$t/comm")"
    done
  done
}
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }

out=$(mktemp)
trap 'rm -f "$out" "$out.t0"' EXIT
thread_ticks >"$out.t0"
read -r u0 s0 < <(ticks)
b0=$(busy)
wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_RUN}s" --latency "http://127.0.0.1:$PORT$URL_PATH" >"$out"
b1=$(busy)
read -r u1 s1 < <(ticks)

requests=$(awk '/requests in/{print $1}' "$out")
rps=$(awk '/Requests\/sec/{print $2}' "$out")
p99=$(awk '$1 == "99%" {print $2}' "$out")
hz=$(getconf CLK_TCK)
awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v b=$((b1 - b0)) -v n="$requests" -v hz="$hz" \
  -v rps="$rps" -v p99="$p99" -v port="$PORT" -v path="$URL_PATH" 'BEGIN {
    us = 1e6 / hz / n
    printf "port %s %s: %.0f req/s, p99 %s; proxy %.2f µs/request (user %.2f, system %.2f); rest of the machine %.2f µs/request\n",
      port, path, rps, p99, (u + s) * us, u * us, s * us, (b - u - s) * us
  }'
thread_ticks | awk -v total=$((u1 + s1 - u0 - s0)) 'NR == FNR { before[$1] = $2; next }
  { d = $2 - before[$1]; if (total > 0 && d * 100 / total >= 2) printf "  %s %.0f%%", $3, d * 100 / total }
  END { print "" }' "$out.t0" -
