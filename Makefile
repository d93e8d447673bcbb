# showmix: the two commands that set up a fresh Debian 12 machine and run or test the engine.
#   make run   install missing packages, build, start the engine with a demo room
#   make test  install missing packages, then fmt check, clippy -D warnings, every test
# Both also install the npm packages of tests/browser (hls.js, playwright-core) when missing.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
OUT ?= out/demo
LISTEN ?= 127.0.0.1:8080

.PHONY: deps browser-deps build run test fmt clippy unit bench

deps:
	@bash ops/install-deps.sh

# hls.js and playwright-core for the browser test (tests/hls_browser.rs) and the hls bench,
# at the versions tests/browser/package-lock.json pins; Chromium itself is Debian's
# (ops/packages.txt). Runs npm only when node_modules is missing or older than the lock file.
BROWSER := tests/browser
$(BROWSER)/node_modules/.package-lock.json: $(BROWSER)/package.json $(BROWSER)/package-lock.json
	npm ci --prefix $(BROWSER) --no-audit --no-fund
	@touch $@

browser-deps: $(BROWSER)/node_modules/.package-lock.json

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

test: deps browser-deps fmt clippy unit

bench: deps browser-deps
	$(CARGO) bench -p showmix-benches
