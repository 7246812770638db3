# netlab: the everyday commands. `make test` is what CI runs.

CARGO ?= cargo
PORT ?= 8888

.PHONY: all build run test lint fmt install clean

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

## Install the binary into ~/.cargo/bin.
install:
	$(CARGO) install --path . --locked

clean:
	$(CARGO) clean
