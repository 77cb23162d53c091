# daoguard — the two commands a newcomer needs: `make demo` and `make test`.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/daoguard/daoguard.Version=$(VERSION) -X github.com/daoguard/daoguard.Commit=$(COMMIT)
BIN      := bin/daoguard

.PHONY: all build contracts test vet staticcheck fmt-check interop-deps ganache-deps race policy-test screen-bench bench fuzz demo tour clean model incidents golden

all: build

build: contracts
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/daoguard

# Everything CI checks: formatting, vet, staticcheck, every test with the race
# detector, and a short run of every fuzz target.
test: fmt-check contracts vet staticcheck interop-deps ganache-deps race policy-test screen-bench fuzz incidents

# The dev chain's and the tests' contracts, compiled from contracts/src with
# the solc pinned in contracts/package.json, and Safe v1.4.1's published
# artifacts from its npm package, into internal/evm/artifacts (generated,
# embedded in the binary, never committed).
ARTIFACTS := $(addprefix internal/evm/artifacts/,$(addsuffix .json,DevToken DevAggregator DevProxy DevSwitch DaoguardProbe Safe SafeL2 SafeProxyFactory MultiSend MultiSendCallOnly CompatibilityFallbackHandler))
contracts: $(ARTIFACTS)
$(ARTIFACTS) &: contracts/build.js contracts/package-lock.json $(wildcard contracts/src/*.sol)
	@command -v npm >/dev/null 2>&1 || { echo "node and npm are needed to compile the contracts (apt-get install nodejs npm)"; exit 1; }
	cd contracts && npm ci --no-audit --no-fund --silent && node build.js

# The npm package the interop test signs with: an independent RFC 9421
# implementation (skipped when node is not installed, unless .ci/run).
INTEROP := internal/auth/testdata/interop
interop-deps:
	@if command -v npm >/dev/null 2>&1; then \
	  [ -d $(INTEROP)/node_modules/http-message-signatures ] || (cd $(INTEROP) && npm ci --no-audit --no-fund --silent); \
	else echo "npm not found: the RFC 9421 interop test will be skipped"; fi

# The real node of the end-to-end test (cmd/daoguard TestRealNode): ganache
# from npm, pinned (skipped when node is not installed, unless .ci/run).
GANACHE := testdata/ganache
ganache-deps:
	@if command -v npm >/dev/null 2>&1; then \
	  [ -x $(GANACHE)/node_modules/.bin/ganache ] || (cd $(GANACHE) && npm ci --no-audit --no-fund --silent); \
	else echo "npm not found: the real-node end-to-end test will be skipped"; fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) tool staticcheck ./...

race:
	$(GO) test -race -count=1 ./...
	@$(GO) test -count=1 -run '^TestPostgresReachable$$' -v ./internal/postgres | grep -E 'PostgreSQL tests' || true

# The golden policy cases, through the CLI a policy author uses.
policy-test: build
	./$(BIN) policy test testdata/policy

# The screening benchmark on the repository's sample of the screening sets;
# in full: bin/daoguard screen bench --data ../shared/data/screening
# The screening model, trained on the training split of the screening
# data and daoguard's own texts (internal/screen/train), embedded in the
# binary. Deterministic: TestModelReproducible checks the shipped one.
SCREENING_DATA ?= ../shared/data/screening
model:
	$(GO) run ./internal/screen/train -data $(SCREENING_DATA) -out internal/screen/model.bin

# The incident replays run in race (internal/devchain TestIncidents); the
# pending ones are said here, with their reasons.
# Rewrites the frozen audit encodings (internal/audit/testdata/audit.golden).
# Only for a new leaf or checkpoint version: published logs must keep verifying.
golden:
	$(GO) test ./internal/audit -run '^TestGolden$$' -count=1 -update

incidents:
	@echo "incident replays pending (testdata/incidents):"
	@grep -H '^pending:' testdata/incidents/*.yaml | sed 's|^testdata/incidents/|  |'

screen-bench: build
	./$(BIN) screen bench --data testdata/screening-sample

# Counts, not durations: a duration can end while a worker is mid-input,
# which Go reports as "context deadline exceeded" (golang/go#56238).
FUZZTIME ?= 20000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseAmount$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzParseKeyID$$' -fuzztime $(FUZZTIME) ./internal/auth
	$(GO) test -run '^$$' -fuzz '^FuzzParseKeyring$$' -fuzztime $(FUZZTIME) ./internal/secrets
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./internal/secrets
	$(GO) test -run '^$$' -fuzz '^FuzzParseSignature$$' -fuzztime $(FUZZTIME) ./internal/auth
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzParsePolicy$$' -fuzztime $(FUZZTIME) ./internal/policy
	$(GO) test -run '^$$' -fuzz '^FuzzCalldata$$' -fuzztime $(FUZZTIME) ./internal/policy
	$(GO) test -run '^$$' -fuzz '^FuzzParseLedger$$' -fuzztime $(FUZZTIME) ./internal/policy
	$(GO) test -run '^$$' -fuzz '^FuzzPayee$$' -fuzztime $(FUZZTIME) ./internal/policy
	$(GO) test -run '^$$' -fuzz '^FuzzDescribeCalls$$' -fuzztime $(FUZZTIME) ./internal/policy
	$(GO) test -run '^$$' -fuzz '^FuzzParseBody$$' -fuzztime $(FUZZTIME) ./internal/pricefeed
	$(GO) test -run '^$$' -fuzz '^FuzzParseLeaf$$' -fuzztime $(FUZZTIME) ./internal/audit
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyExport$$' -fuzztime $(FUZZTIME) ./internal/audit
	$(GO) test -run '^$$' -fuzz '^FuzzText$$' -fuzztime $(FUZZTIME) ./internal/screen
	$(GO) test -run '^$$' -fuzz '^FuzzConsistency$$' -fuzztime $(FUZZTIME) ./internal/screen
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/probe
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshalModel$$' -fuzztime $(FUZZTIME) ./internal/screen
	$(GO) test -run '^$$' -fuzz '^FuzzParseStats$$' -fuzztime $(FUZZTIME) ./internal/anomaly

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./internal/sqlite ./internal/postgres
	$(GO) test -run '^$$' -bench Submit -benchtime 20000x ./internal/httpapi

# The tour of API.md: daoguard demo on a temporary data directory and the
# in-process chain, printed as a table; exit 1 if a step differs.
demo: build
	./$(BIN) demo

# The CLI tour: every command a newcomer types, with its exit codes.
tour: build
	./scripts/demo.sh $(BIN)

clean:
	rm -rf bin contracts/node_modules $(INTEROP)/node_modules $(GANACHE)/node_modules internal/evm/artifacts/*.json
