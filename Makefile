# showmix: the two commands that set up a fresh Debian 12 machine and run or test the engine.
#   make run   install missing packages, build, start the engine with a demo room
#   make test  install missing packages, then fmt check, clippy -D warnings, every test

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
OUT ?= out/demo

.PHONY: deps build run test fmt clippy unit bench

deps:
	@bash ops/install-deps.sh

build: deps
	$(CARGO) build --release -p showmix

run: build
	@mkdir -p $(OUT)
	@echo "showmix: demo room (pk of two test patterns, showroom-720p ladder) writing $(OUT)/{720p,480p,360p}.mp4"
	@echo "showmix: press Ctrl-C to end it; the files are finalised on exit"
	./target/release/showmix mix --layout pk --ladder showroom-720p \
		--seat host=test:smpte --seat rival=test:ball?tone=660 --out $(OUT)

fmt:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

test: deps fmt clippy unit

bench: deps
	$(CARGO) bench -p showmix-benches
