#!/usr/bin/env bash
# make soak: goaround under steady load for a long time while its backends change and die,
# with idle, slow and malformed clients alongside; then lost requests and leaks, as PASS/FAIL.
#
#   SOAK_MINUTES [30]   SOAK_SECONDS [SOAK_MINUTES * 60] overrides, for short runs
#   CONNS [32] THREADS [2]  wrk, GET / for the whole run     HANDLES [8] goaround -n
#   WORKERS [2] goaround -workers (event loops; each keeps its own idle backend connections)
#   SWAP_EVERY [2]   s: the backend set is replaced over the control socket (subsets of 3)
#   FAULT_EVERY [60; a third of the run when shorter than 3 min] s: one backend is stopped
#                    (SIGTERM: its listener and connections close, as in a crash) and
#                    restarted on its port DOWN_FOR [3] s later
#   SAMPLE_EVERY [60; a fifth of the run when shorter than 10 min] s: RSS, threads, fds
#   WARMUP [60, at most half the run] s: RSS is compared with the first sample after it
#   RSS_SLACK_MIB [2 for runs under 10 min, else 0] growth in MiB allowed beyond the 5 %:
#                    in a short run the allocator's warm-up is still of that order; a leak
#                    shows over a long one
#   IDLE [500] idle keep-alive clients   SLOW [50] slow clients   BAD_RATE [3] malformed/s
#   ALLOWED_FAILURES [0] wrk non-2xx + socket errors tolerated
#
# Only flags and observable behaviour are used (-p 0, -bind, -prometheus-port 0, -socket, -b,
# -n, -health-interval, the "listening on" and "metrics on" log lines, the control socket,
# /metrics), so any engine behind them can be soaked. Exit status 1 when a check fails.
# Every process started here is stopped on exit. Needs wrk, curl (installed when missing)
# and python3; the clients and the sampler are scripts/soak.py.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_MINUTES=${SOAK_MINUTES:-30}
SOAK=${SOAK_SECONDS:-$((SOAK_MINUTES * 60))}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
HANDLES=${HANDLES:-8}
WORKERS=${WORKERS:-2}
SWAP_EVERY=${SWAP_EVERY:-2}
FAULT_EVERY=${FAULT_EVERY:-$((SOAK >= 180 ? 60 : (SOAK / 3 > 1 ? SOAK / 3 : 1)))}
DOWN_FOR=${DOWN_FOR:-3}
SAMPLE_EVERY=${SAMPLE_EVERY:-$((SOAK >= 600 ? 60 : (SOAK / 5 > 1 ? SOAK / 5 : 1)))}
WARMUP=${WARMUP:-$((SOAK / 2 < 60 ? SOAK / 2 : 60))}
IDLE=${IDLE:-500}
SLOW=${SLOW:-50}
BAD_RATE=${BAD_RATE:-3}
ALLOWED_FAILURES=${ALLOWED_FAILURES:-0}
RSS_SLACK_MIB=${RSS_SLACK_MIB:-$((SOAK < 600 ? 2 : 0))}
NAME=soak
# shellcheck source=scripts/common.sh
source scripts/common.sh
HELPER=scripts/soak.py

declare -A PORT URL BPID RUNS
NAMES=(a b c)
SETS=("a b" "b c" "a c" "a b c")

start_backend() { # NAME [PORT]: starts (or restarts, on the same port) a fixture backend
  local name=$1 port=${2:-0}
  RUNS[$name]=$((${RUNS[$name]:-0} + 1))
  local out="$W/backend-$name-${RUNS[$name]}.out"
  "$FIXTURE" --port "$port" --name "$name" >"$out" 2>&1 &
  PIDS+=($!)
  BPID[$name]=$!
  local addr
  addr=$(wait_for_line "$out" '127\.0\.0\.1:[0-9]+') || return 1
  PORT[$name]=${addr##*:}
  URL[$name]="http://$addr"
}

stop_backend() { # NAME: SIGTERM, then wait for its final counts line
  kill -TERM "${BPID[$1]}" 2>/dev/null || true
  wait "${BPID[$1]}" 2>/dev/null || true
}

# One helper for the whole run (see "soak.py serve"): `ask WORDS...` prints its answer.
coproc HELPER_IO { exec python3 "$HELPER" serve; }
PIDS+=($HELPER_IO_PID)
ask() {
  local line
  echo "$*" >&"${HELPER_IO[1]}"
  while IFS= read -r -t 30 line <&"${HELPER_IO[0]}"; do
    [ "$line" = . ] && return 0
    echo "$line"
  done
  echo "soak: no answer from the helper to: $*" >&2
  return 1
}
control() { ask control "$W/goaround.sock" "$1"; }

urls() { # names... -> comma-separated URLs
  local out=() n
  for n in "$@"; do out+=("${URL[$n]}"); done
  (IFS=,; echo "${out[*]}")
}

metric_sum() { # METRICS_TEXT NAME [LABEL_FILTER]: sum of a metric's samples
  awk -v name="$2" -v filter="${3:-}" '
    index($0, name) == 1 && (substr($0, length(name) + 1, 1) ~ /[{ ]/) &&
      (filter == "" || index($0, filter)) { s += $NF }
    END { printf "%d\n", s }' <<<"$1"
}

T0=$SECONDS
SAMPLES="$W/samples"
resources() { # -> "rss threads fds listen clients backend other" of goaround
  ask sample "$GA_PID" "${GA##*:}" "${PORT[a]}" "${PORT[b]}" "${PORT[c]}"
}
sample() { # LABEL [LINE]: appends "LABEL t rss threads fds listen clients backend other",
  # from LINE (a `resources` answer already read) or from a new one
  local line rss threads fds listen clients backend other
  line=${2:-$(resources)}
  echo "$1 $((SECONDS - T0)) $line" >>"$SAMPLES"
  read -r rss threads fds listen clients backend other <<<"$line"
  printf "  %-9s t=%4ss  RSS %6.1f MiB  threads %3d  fds %4d (listen %d, clients %d, backends %d, other %d)\n" \
    "$1" "$((SECONDS - T0))" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" \
    "$threads" "$fds" "$listen" "$clients" "$backend" "$other"
}

no_clients() { # whether goaround holds no connection of the client port (from /proc)
  local line clients
  line=$(resources)
  read -r _ _ _ _ clients _ _ <<<"$line"
  [ "$clients" = 0 ]
}

echo "== soak: ${SOAK}s; wrk -t$THREADS -c$CONNS GET /; set replaced every ${SWAP_EVERY}s;" \
     "a backend stopped every ${FAULT_EVERY}s for ${DOWN_FOR}s;"
echo "   $IDLE idle, $SLOW slow clients, $BAD_RATE malformed requests/s; samples every ${SAMPLE_EVERY}s"
for n in "${NAMES[@]}"; do start_backend "$n"; done
RUST_LOG=warn,goaround::server=info "$GOAROUND" -p 0 -bind 127.0.0.1 -prometheus-port 0 \
  -socket "$W/goaround.sock" -n "$HANDLES" -workers "$WORKERS" -health-interval 1s \
  -b "${URL[a]}" -b "${URL[b]}" -b "${URL[c]}" 2>"$W/goaround.log" &
GA_PID=$!
PIDS+=($GA_PID)
GA=$(wait_for_line "$W/goaround.log" 'listening on [0-9.]+:[0-9]+' | awk '{print $3}' || true)
if [ -z "$GA" ]; then
  echo "soak: goaround did not start" >&2; cat "$W/goaround.log" >&2; exit 1
fi
METRICS=$(wait_for_line "$W/goaround.log" 'metrics on [0-9.]+:[0-9]+' | awk '{print $3}')
for _ in $(seq 1 100); do
  curl -s "http://$METRICS/metrics" | grep -q '^goaround_backends_up 3$' && break
  sleep 0.1
done

# The baseline: idle, after a short burst so that what is made once (buffers, backend
# connections) exists already.
wrk -t"$THREADS" -c"$CONNS" -d2s "http://$GA/" >/dev/null 2>&1 || true
for _ in $(seq 1 50); do no_clients && break; sleep 0.1; done
T0=$SECONDS
sample baseline

cat >"$W/status.lua" <<'LUA'
-- Non-2xx answers by status, and the totals, for soak.sh.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  if status < 200 or status > 299 then statuses[status] = (statuses[status] or 0) + 1 end
end
function done(summary, latency, requests)
  local merged = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do merged[code] = (merged[code] or 0) + n end
  end
  for code, n in pairs(merged) do io.write(string.format("STATUS %d %d\n", code, n)) end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %.3f %.3f %.3f\n", summary.requests,
    e.connect, e.read, e.write, e.timeout, e.status, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
LUA

T0=$SECONDS
python3 "$HELPER" clients "$GA" "$W/clients.out" --idle "$IDLE" --slow "$SLOW" \
  --bad-rate "$BAD_RATE" &
CLIENTS_PID=$!
PIDS+=($CLIENTS_PID)
wrk -t"$THREADS" -c"$CONNS" -d"${SOAK}s" --timeout 10s -s "$W/status.lua" "http://$GA/" \
  >"$W/wrk.out" 2>&1 &
WRK_PID=$!
PIDS+=($WRK_PID)

# One loop does the swaps, the faults and the samples, so that they never race: a set never
# loses its last backend that is up, and no backend is stopped while it is the only one.
current="a b c" killed="" killed_at=0 swap_i=0 fault_i=0 swaps=0 swap_errors=0 faults=0
next_swap=$SWAP_EVERY next_fault=$FAULT_EVERY next_sample=$SAMPLE_EVERY
up_members() { # members of the current set that goaround lists as up, minus a stopped one
  local listing n
  listing=$(control list 2>/dev/null || true)
  for n in $current; do
    [ "$n" = "$killed" ] && continue
    if grep -q "^${URL[$n]} up " <<<"$listing"; then echo "$n"; fi
  done
}
while [ $((SECONDS - T0)) -lt "$SOAK" ]; do
  now=$((SECONDS - T0))
  if [ -n "$killed" ] && [ $((now - killed_at)) -ge "$DOWN_FOR" ]; then
    if start_backend "$killed" "${PORT[$killed]}"; then killed=""; fi
  fi
  if [ "$now" -ge "$next_fault" ] && [ -z "$killed" ]; then
    next_fault=$((next_fault + FAULT_EVERY))
    up=$(up_members)
    # A member of the current set if possible (requests in flight to it are cut), never the
    # last one up.
    victim=""
    for pass in in out; do
      for try in 0 1 2; do
        n=${NAMES[$(((fault_i + try) % 3))]}
        in_set=out; [[ " $current " == *" $n "* ]] && in_set=in
        if [ "$in_set" = "$pass" ] && [ -n "$(grep -vx "$n" <<<"$up" || true)" ]; then
          victim=$n; break 2
        fi
      done
    done
    if [ -n "$victim" ]; then
      stop_backend "$victim"
      killed=$victim killed_at=$now faults=$((faults + 1)) fault_i=$((fault_i + 1))
      echo "  fault     t=${now}s  backend $victim stopped (set: $current), back in ${DOWN_FOR}s"
    fi
  fi
  if [ "$now" -ge "$next_swap" ]; then
    next_swap=$((now + SWAP_EVERY))
    up=$(up_members)
    for try in 0 1 2 3; do
      candidate=${SETS[$(((swap_i + try) % 4))]}
      keeps=0
      for n in $up; do [[ " $candidate " == *" $n "* ]] && keeps=1; done
      [ "$keeps" = 1 ] && break
    done
    swap_i=$(((swap_i + try + 1) % 4))
    if [ "$keeps" = 0 ]; then
      # Nothing in the set is known up (goaround has not seen a restart yet): a new set
      # could leave no backend at all, so this swap is skipped.
      echo "  swap      t=${now}s  skipped: no backend of {$current} is up"
    else
      # shellcheck disable=SC2086 # word splitting of the names is wanted
      reply=$(control "$(urls $candidate)" 2>&1 || true)
      if [[ "$reply" == ok:* ]]; then
        current=$candidate swaps=$((swaps + 1))
      else
        swap_errors=$((swap_errors + 1))
        echo "  swap      t=${now}s  to {$candidate}: $reply" >&2
      fi
    fi
  fi
  if [ "$now" -ge "$next_sample" ]; then
    next_sample=$((next_sample + SAMPLE_EVERY))
    sample load
  fi
  sleep 0.5
done

wait "$WRK_PID" || true
sample end
kill -TERM "$CLIENTS_PID" 2>/dev/null || true
wait "$CLIENTS_PID" || true

# Back to the starting set, every backend running, no clients: what goaround holds now
# should be what it held at the baseline.
if [ -n "$killed" ]; then start_backend "$killed" "${PORT[$killed]}"; killed=""; fi
control "$(urls a b c)" >/dev/null
for _ in $(seq 1 100); do
  curl -s "http://$METRICS/metrics" | grep -q '^goaround_backends_up 3$' && break
  sleep 0.1
done
read -r _ _ _ base_threads base_fds _ _ base_backend _ < <(grep '^baseline ' "$SAMPLES")
# Settled means three readings in a row (1 s) at or below the baseline: health-check threads
# of backends just added and removed come and go for a moment after the last swap.
settled=0
for _ in $(seq 1 60); do
  # Not `< <(resources)`: a process substitution is not waited for, and the next question
  # to the helper could then race with the end of this one.
  line=$(resources)
  read -r _ threads fds _ clients backend other <<<"$line"
  if [ "$threads" -le "$base_threads" ] && [ $((fds - backend)) -le $((base_fds - base_backend)) ]; then
    settled=$((settled + 1))
    [ "$settled" -ge 3 ] && break
  else
    settled=0
  fi
  sleep 0.5
done
sample after "$line"
METRICS_TEXT=$(curl -s "http://$METRICS/metrics")
for n in "${NAMES[@]}"; do stop_backend "$n"; done

# ---- report ----
echo
fail=0
check() { # OK(0/1) TEXT
  if [ "$1" = 1 ]; then echo "PASS  $2"; else echo "FAIL  $2"; fail=1; fi
}
count() { awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "$W/clients.out"; }

read -r requests e_connect e_read e_write e_timeout e_status p50 p99 pmax < <(awk '/^RESULT/ {
  $1 = ""; print }' "$W/wrk.out")
if [ -z "${requests:-}" ]; then
  echo "soak: no result from wrk:" >&2; cat "$W/wrk.out" >&2; exit 1
fi
statuses=$(awk '/^STATUS/ { printf "%s%s x%s", sep, $2, $3; sep = ", " }' "$W/wrk.out")
failures=$((e_status + e_connect + e_read + e_write + e_timeout))
echo "wrk: $requests requests in ${SOAK}s, latency p50 ${p50} ms, p99 ${p99} ms, max ${pmax} ms"
echo "     non-2xx ${e_status}${statuses:+ ($statuses)}; socket errors: connect $e_connect," \
     "read $e_read, write $e_write, timeout $e_timeout"
check $((failures <= ALLOWED_FAILURES)) \
  "no failed request: $failures non-2xx + socket errors (allowed $ALLOWED_FAILURES)"
echo "      wrk sends GETs, which goaround may retry on another backend when one is refused or"
echo "      reset; only a response cut after its first bytes reached the client cannot be"
echo "      retried, and a fixture answers / in one write, so none is expected."
check $((swap_errors == 0)) "control socket: $swaps sets replaced, $swap_errors errors; $faults backends stopped and restarted"

echo
echo "side clients (scripts/soak.py):"
sed 's/^/  /; /^  note /d' "$W/clients.out"
grep '^note ' "$W/clients.out" | sed 's/^note /  ! /' || true
malformed_failed=$(count malformed_failed)
check $((malformed_failed == 0)) \
  "malformed requests: $(count malformed_refused) refused (4xx or close), $malformed_failed got a 5xx, another answer or no answer within 15 s"
side_5xx=$(awk '$1 ~ /^(idle_answered|slow_writer|slow_reader)_5[0-9][0-9]$/ { s += $2 } END { print s + 0 }' "$W/clients.out")
side_hang=$(awk '$1 ~ /_hang$/ { s += $2 } END { print s + 0 }' "$W/clients.out")
check $((side_5xx + side_hang == 0)) \
  "idle and slow clients: $side_5xx answered 5xx, $side_hang left without an answer"

echo
echo "goaround (pid $GA_PID) samples:"
awk '{ printf "  %-9s t=%5ss  RSS %7.1f MiB  threads %3d  fds %4d  (listen %d, clients %d, backends %d, other %d)\n",
  $1, $2, $3 / 1024, $4, $5, $6, $7, $8, $9 }' "$SAMPLES"
ref=$(awk -v w="$WARMUP" '$1 == "load" && $2 >= w { print $2, $3; exit }' "$SAMPLES")
[ -n "$ref" ] || ref=$(awk '$1 == "end" { print $2, $3 }' "$SAMPLES")
read -r ref_t ref_rss <<<"$ref"
end_rss=$(awk '$1 == "end" { print $3 }' "$SAMPLES")
growth=$(awk -v a="$ref_rss" -v b="$end_rss" 'BEGIN { printf "%+.1f", (b - a) * 100 / a }')
check "$(awk -v a="$ref_rss" -v b="$end_rss" -v s="$RSS_SLACK_MIB" 'BEGIN { print (b <= a * 1.05 + s * 1024) ? 1 : 0 }')" \
  "RSS at the end of the load $((end_rss / 1024)) MiB vs t=${ref_t}s (first sample after ${WARMUP}s) $((ref_rss / 1024)) MiB: ${growth}% (at most +5% + ${RSS_SLACK_MIB} MiB)"
read -r _ _ _ threads fds _ clients backend other < <(grep '^after ' "$SAMPLES")
check $((threads <= base_threads)) "threads after the clients left: $threads (baseline $base_threads)"
# Each event loop keeps its own idle connections to a backend, at most -n of them.
pool=$((3 * (WORKERS * HANDLES + 1)))
check $((fds - backend <= base_fds - base_backend && backend <= pool)) \
  "descriptors after the clients left: $((fds - backend)) + $backend to backends (baseline $((base_fds - base_backend)) + $base_backend; backend connections at most $pool = 3 x (-workers x -n + 1 for health checks))"

echo
ga_total=$(metric_sum "$METRICS_TEXT" goaround_requests_total)
ga_own=$(metric_sum "$METRICS_TEXT" goaround_requests_total 'backend="none"')
ga_cache=$(metric_sum "$METRICS_TEXT" goaround_requests_total 'backend="cache"')
ga_backend=$((ga_total - ga_own - ga_cache))
retries=$(metric_sum "$METRICS_TEXT" goaround_retries_total)
backend_total=$(cat "$W"/backend-*.out | awk '/ stopped: / { for (i = 1; i < NF; i++) if ($i == "requests") s += $(i + 1) } END { print s + 0 }')
health_total=$(cat "$W"/backend-*.out | awk '/ stopped: / { for (i = 1; i < NF; i++) if ($i == "health_checks") s += $(i + 1) } END { print s + 0 }')
echo "goaround_requests_total $ga_total: $ga_own answered by goaround itself (backend=\"none\": 4xx to"
echo "  malformed and slow clients, 5xx when no backend could answer), $ga_backend with a backend's response"
echo "backends counted $backend_total requests over $(ls "$W"/backend-*.out | wc -l) runs (not their $health_total health checks);"
echo "  goaround_retries_total $retries"
diff=$((backend_total - ga_backend))
slack=$((retries + CONNS + SLOW))
check $((diff >= 0 && diff <= slack)) \
  "counters agree: backends - goaround = $diff, between 0 and $slack (retried attempts $retries + requests in flight when the clients left, at most $CONNS + $SLOW)"
echo "      A backend counts a request once it has read it: an attempt goaround retried elsewhere"
echo "      (the backend was stopped before answering) is counted by two backends and answered once."

warnings=$(grep -c ' WARN ' "$W/goaround.log" || true)
errors=$(grep -c ' ERROR ' "$W/goaround.log" || true)
echo
echo "goaround log: $warnings warnings, $errors errors; most frequent:"
grep -E ' (WARN|ERROR) ' "$W/goaround.log" | sed -E 's/^[^ ]+ +//; s/[0-9]+(\.[0-9]+)*/N/g' \
  | sort | uniq -c | sort -rn | head -5 | sed 's/^/  /' || true
echo
if [ "$fail" = 0 ]; then echo "soak: PASS"; else echo "soak: FAIL"; fi
exit "$fail"
