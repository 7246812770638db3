# netlab: the everyday commands. `make test` is what CI runs.

CARGO ?= cargo
PORT ?= 8888
FUZZ_SECS ?= 600

.PHONY: all build run test lint fmt install clean bench fuzz

all: build

build:
	$(CARGO) build --release

## Build in release mode and start the TCP server on port $(PORT).
run: build
	./target/release/netlab tcp-server --port $(PORT)

## Build and run every unit and integration test.
test:
	$(CARGO) build --all-targets
	$(CARGO) test --all-targets

## Formatting and lints, as CI checks them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Benchmark epoll-demo against a C epoll server, 10,000 idle connections,
## and select/poll/epoll (`netlab bench mux`); figures go to docs/bench.md.
## Then http-server against nginx and python3 -m http.server with wrk, and
## its memory with 1,000 keep-alive connections; figures go to docs/bench-http.md.
bench:
	$(CARGO) build --release
	mkdir -p target/bench
	cp target/release/netlab target/bench/netlab
	cc -O2 -Wall -o target/bench/epoll_echo bench/c/epoll_echo.c
	python3 bench/run.py target/bench/netlab target/bench/epoll_echo docs/bench.md docs/bench-mux.svg
	python3 bench/http.py target/bench/netlab docs/bench-http.md

## Fuzz http-server's request-handling core for $(FUZZ_SECS) seconds
## (needs a nightly toolchain and cargo-fuzz); new inputs go to fuzz/corpus/.
fuzz:
	cd fuzz && $(CARGO) +nightly fuzz run http_exchange -- -max_total_time=$(FUZZ_SECS)

## Install the binary into ~/.cargo/bin.
install:
	$(CARGO) install --path . --locked

clean:
	$(CARGO) clean
