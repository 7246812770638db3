# netlab: the everyday commands. `make test` is what CI runs.

CARGO ?= cargo
PORT ?= 8888

.PHONY: all build run test lint fmt install clean bench

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
bench:
	$(CARGO) build --release
	mkdir -p target/bench
	cp target/release/netlab target/bench/netlab
	cc -O2 -Wall -o target/bench/epoll_echo bench/c/epoll_echo.c
	python3 bench/run.py target/bench/netlab target/bench/epoll_echo docs/bench.md docs/bench-mux.svg

## Install the binary into ~/.cargo/bin.
install:
	$(CARGO) install --path . --locked

clean:
	$(CARGO) clean
