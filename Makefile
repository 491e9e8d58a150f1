# Warden — the two set-up commands are `make quickstart` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
SWIFT_FLAGS ?=

.PHONY: quickstart test build release agent deps deps-test bench clean

deps:
	@scripts/install-deps.sh build

deps-quickstart:
	@scripts/install-deps.sh quickstart

deps-test:
	@scripts/install-deps.sh test

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

## Release builds link the Swift runtime and Foundation statically (--static-swift-stdlib): the binaries need no
## Swift toolchain on the target, and start faster (no relocation of a dozen shared Swift libraries).
RELEASE_FLAGS = -c release --static-swift-stdlib --scratch-path .build-release-static

release: deps
	$(SWIFT) build $(RELEASE_FLAGS) $(SWIFT_FLAGS)
	@echo "binaries: $$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)"

## The device binary alone: release warden-agent, static like `make release` (a device needs only libc, libstdc++,
## libmosquitto and OpenSSL; libcurl is opened only for HTTPS).
## dist/warden-agent is that binary without debug sections (107 → 85 MB; the symbol table stays, so backtraces keep
## their names).
agent: deps
	$(SWIFT) build $(RELEASE_FLAGS) $(SWIFT_FLAGS) --product warden-agent
	@mkdir -p dist
	strip --strip-debug -o dist/warden-agent.tmp "$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/warden-agent"
	@mv -f dist/warden-agent.tmp dist/warden-agent
	@echo "device binary: $$(pwd)/dist/warden-agent"

## Installs what is missing, builds, and runs the admin flow on a throw-away home.
quickstart: deps-quickstart
	$(SWIFT) build $(SWIFT_FLAGS) --product warden
	@scripts/quickstart.sh "$$($(SWIFT) build --show-bin-path)/warden"

## Installs what is missing and runs the whole suite; ends with swift test's summary.
## Tests run one at a time (--no-parallel): many start real Mosquitto, `warden serve` and CLI processes and wait on
## them, and in-process HTTPS servers share Swift's 2-thread cooperative pool with those waits; run in parallel on
## 2 cores, the waits starved the servers into 20 s timeouts. One at a time the suite takes about 6.5 minutes.
test: deps-test
	$(SWIFT) build $(SWIFT_FLAGS) --build-tests
	$(SWIFT) test $(SWIFT_FLAGS) --skip-build --no-parallel 2>&1 | tee .build/test.log; exit $${PIPESTATUS[0]}

## Benchmarks (release, separate package): see docs/PERFORMANCE.md
bench: deps-test
	scripts/bench-enroll.sh

clean:
	rm -rf .build quickstart-demo dist
