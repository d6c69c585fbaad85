# hookgate: `make run` to try it, `make test` to check it, `make bench` to measure it.
GO      ?= go
BIN     := bin/hookgate
ADDR    ?= 127.0.0.1:8080
DATA    ?= ./hookgate-data
# How much each fuzz target runs inside `make test`: a count of inputs, not a duration,
# because Go 1.26's fuzz coordinator can fail a target with "context deadline exceeded"
# when a duration ends mid-input on a busy machine (golang/go#75804, fixed in Go 1.27).
# Run `make fuzz FUZZTIME=5000000x` (or a duration such as 5m) for longer.
FUZZTIME ?= 50000x
# The dashboard's browser test: Debian's Chromium, driven by playwright-core from npm.
CHROMIUM     := /usr/bin/chromium
BROWSER_TEST := server/testdata/browser
# The official TypeScript MCP SDK client, an agent in the legacy-loop test.
TS_CLIENT    := server/testdata/tsclient

.PHONY: build run test deps check fuzz bench clean

build:
	$(GO) build -o $(BIN) ./server/cmd/hookgate

## run: start the gateway on the embedded store; prints the MCP URL and a token.
run: build
	./$(BIN) serve --addr $(ADDR) --data $(DATA) --dev-token

## deps: install what the tests need on a fresh Debian machine, each only when missing:
## Go modules; redis-server (the Redis backend's tests start their own servers on free
## ports); nodejs and npm with the TypeScript MCP SDK (npm ci in $(TS_CLIENT)), whose
## client the legacy-loop test runs as the agent; for the dashboard's browser test
## Debian's chromium and playwright-core (npm ci in $(BROWSER_TEST)), which need
## Node.js 20+. The browser test skips, saying so, when chromium cannot be installed;
## for anything else deps fails, naming what is missing.
deps:
	$(GO) mod download
	./scripts/deps.sh $(CHROMIUM) $(BROWSER_TEST) $(TS_CLIENT)

## check: formatting and vet.
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "not gofmt'ed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## test: everything, with the race detector, then each fuzz target briefly.
test: deps check
	$(GO) test -race -count=1 -timeout 8m ./...
	$(MAKE) fuzz

# Packages with fuzz targets: the verifiers and the payload rules.
FUZZPKGS := ./bridge/verify/ ./bridge/

fuzz:
	@for pkg in $(FUZZPKGS); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

## bench: measure ingest, latency, tools path and memory; writes BENCHMARKS.md.
bench: build
	GO=$(GO) bash scripts/bench.sh

clean:
	rm -rf bin
