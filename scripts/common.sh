# Sourced by bench.sh, stress.sh and soak.sh: tools, a work directory, process cleanup, log waits.
# Expects NAME (used in temp paths and messages) to be set by the caller.

FIXTURE=${FIXTURE:-target/release/examples/fixture_backend}
GOAROUND=${GOAROUND:-bin/goaround}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }

W=$(mktemp -d "/tmp/goaround-$NAME.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT INT TERM

# wait_for_line FILE REGEX: prints the first match, waiting up to 10 s for it to appear.
wait_for_line() {
  for _ in $(seq 1 100); do
    if grep -m1 -oE "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$NAME: no '$2' in $1:" >&2; cat "$1" >&2; return 1
}
