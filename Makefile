# showmix: the two commands that set up a fresh Debian 12 machine and run or test the engine.
#   make run   install missing packages, build, start the engine with a demo room
#   make test  install missing packages, then fmt check, clippy -D warnings, every test

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
OUT ?= out/demo
LISTEN ?= 127.0.0.1:8080

.PHONY: deps build run test fmt clippy unit bench

deps:
	@bash ops/install-deps.sh

build: deps
	$(CARGO) build --release -p showmix

run: build
	@mkdir -p $(OUT)
	@token=$$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'); \
	exec ./target/release/showmix serve --listen $(LISTEN) --api-token $$token --demo $(OUT)

fmt:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	# Binaries first: CLI and shutdown tests run the showmix binary, and building it in the
	# middle of the suite would starve the rooms other tests are running.
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

test: deps fmt clippy unit

bench: deps
	$(CARGO) bench -p showmix-benches
