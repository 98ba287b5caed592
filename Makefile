# goaround: build, test, lint, demo and benchmark. `make help` lists the targets.

CARGO    ?= cargo
MUSL     := x86_64-unknown-linux-musl
BIN      := bin/goaround

.PHONY: all build static test lint demo bench stress soak fuzz clean help musl-toolchain

all: build

help:
	@echo "make            release binary in ./bin/goaround (+ ./bin/shasum)"
	@echo "make static     fully static musl binary in ./bin/goaround (what users ship)"
	@echo "make test       every unit and integration test"
	@echo "make lint       cargo fmt --check and clippy -D warnings"
	@echo "make demo       two fixture backends + goaround on :3000; Ctrl-C stops all"
	@echo "make bench      wrk through the static binary vs. straight to a backend"
	@echo "make stress     10,000 idle connections; wrk while backends change, die, and on SIGTERM"
	@echo "make soak       SOAK_MINUTES (default 30) of wrk while backends change and die, with idle,"
	@echo "                slow and malformed clients; then lost requests, leaks, counters: PASS/FAIL"
	@echo "make fuzz       each cargo-fuzz target for FUZZ_SECONDS (default 60)"

build:
	$(CARGO) build --release --bins
	@mkdir -p bin
	cp target/release/goaround $(BIN)
	cd bin && sha1sum goaround > shasum

# rustup's musl target plus Debian's musl-gcc (ring compiles C); installed when missing.
musl-toolchain:
	@rustup target list --installed 2>/dev/null | grep -qx $(MUSL) || rustup target add $(MUSL)
	@command -v musl-gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq musl-tools; }

static: musl-toolchain
	$(CARGO) build --release --bins --target $(MUSL)
	@mkdir -p bin
	cp target/$(MUSL)/release/goaround $(BIN)
	cd bin && sha1sum goaround > shasum
	@file $(BIN) 2>/dev/null || true

# Debian's chromium for the status page's browser test (tests/status_page.rs), installed when
# missing (GOAROUND_CHROMIUM names another browser). Where it cannot be installed (no network,
# not root), say so: that test then prints SKIPPED instead of failing.
.PHONY: chromium
chromium:
	@[ -n "$$GOAROUND_CHROMIUM" ] || [ -x /usr/bin/chromium ] || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "make: WARNING: chromium could not be installed; the status page's browser test will be SKIPPED" >&2

test: chromium
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

demo: build
	$(CARGO) build --release --example fixture_backend
	scripts/demo.sh

bench: static
	$(CARGO) build --release --example fixture_backend
	scripts/bench.sh

stress: static
	$(CARGO) build --release --example fixture_backend
	scripts/stress.sh

soak: static
	$(CARGO) build --release --example fixture_backend
	scripts/soak.sh

clean:
	$(CARGO) clean
	rm -rf bin

# Each cargo-fuzz target for FUZZ_SECONDS (nightly and cargo-fuzz installed when missing).
FUZZ_SECONDS ?= 60
fuzz:
	@rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for t in request_head response_head chunked control_line; do \
	  cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 || exit 1; \
	done
