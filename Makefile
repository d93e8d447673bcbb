# showmix: the two commands that set up a fresh Debian 12 machine and run or test the engine.
#   make run   install missing packages, build, start the engine with a demo room
#   make test  install missing packages, then fmt check, clippy -D warnings, every test
# Both also install the npm packages of tests/browser (hls.js, playwright-core) when missing,
# and build the operator console (console/) that the binary embeds.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
OUT ?= out/demo
LISTEN ?= 127.0.0.1:8080

.PHONY: deps browser-deps console build plugins run test fmt clippy unit bench

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

# The operator console (console/: Vite, Preact, TypeScript, hls.js), built into console/dist,
# which engine/build.rs embeds into the showmix binary at compile time. npm ci runs when the
# lock file changed, the type check and vite build when a source changed. (Plain cargo without
# it still builds; /console/ then only says to run `make console`.)
CONSOLE := console
CONSOLE_SRC := $(wildcard $(CONSOLE)/src/*) $(CONSOLE)/index.html $(CONSOLE)/vite.config.ts \
	$(CONSOLE)/tsconfig.json
$(CONSOLE)/node_modules/.package-lock.json: $(CONSOLE)/package.json $(CONSOLE)/package-lock.json
	npm ci --prefix $(CONSOLE) --no-audit --no-fund
	@touch $@
$(CONSOLE)/dist/index.html: $(CONSOLE)/node_modules/.package-lock.json $(CONSOLE_SRC)
	npm run --prefix $(CONSOLE) build
	@touch $@

console: $(CONSOLE)/dist/index.html

build: deps console
	$(CARGO) build --release -p showmix

# The GStreamer elements as loadable plugins (libgstshowmixbeauty.so, libgstshowmixscale.so)
# in one directory, for GST_PLUGIN_PATH:
#   make plugins && GST_PLUGIN_PATH=$$PWD/target/gst-plugins gst-inspect-1.0 showmixbeauty
PLUGIN_DIR ?= target/gst-plugins
plugins: deps
	$(CARGO) build --release -p gst-plugin-showmixbeauty -p gst-plugin-showmixscale
	@mkdir -p $(PLUGIN_DIR)
	cp target/release/libgstshowmixbeauty.so target/release/libgstshowmixscale.so $(PLUGIN_DIR)/
	@echo "plugins in $(PLUGIN_DIR): export GST_PLUGIN_PATH=$$PWD/$(PLUGIN_DIR)"

run: build
	@mkdir -p $(OUT)
	@token=$$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'); \
	exec ./target/release/showmix serve --listen $(LISTEN) --api-token $$token --demo $(OUT)

fmt:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	# Binaries and libraries first: CLI and shutdown tests run the showmix binary (building it
	# in the middle of the suite would starve the rooms other tests are running), and
	# tests/plugins_loadable.rs loads the plugins' .so files into gst-launch-1.0.
	$(CARGO) build --workspace --bins --lib
	# Doc tests in their own run: the plugin crates are cdylib + rlib, so their rlib has no
	# hash in its name, and the plugins' own test build rewrites it in the middle of a combined
	# run; rustdoc then refuses the engine's doc test (E0460). A separate run sees one rlib.
	$(CARGO) test --workspace --lib --bins --tests
	$(CARGO) test --workspace --doc

test: deps browser-deps console fmt clippy unit

bench: deps browser-deps console
	$(CARGO) bench -p showmix-benches
