# berth — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TEMPORAL_CLI_VERSION := v1.5.1
# The production server of make test-prod: the version the CLI's dev server embeds.
TEMPORAL_SERVER_VERSION := v1.29.1
WORKFLOWCHECK_VERSION := v0.6.0
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_/.-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/berth (static: it is also the mesh relay image)
	CGO_ENABLED=0 $(GO) build -o bin/berth ./cmd/berth

bin/temporal: ## build the pinned Temporal CLI (dev server + web UI) into bin/
	GOBIN=$(CURDIR)/bin $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

bin/temporal-server: ## build the pinned production Temporal server, its SQL tool and schema files into bin/ (make test-prod)
	rm -rf bin/.temporal-server && GOBIN=$(CURDIR)/bin/.temporal-server $(GO) install \
	  go.temporal.io/server/cmd/server@$(TEMPORAL_SERVER_VERSION) go.temporal.io/server/cmd/tools/sql@$(TEMPORAL_SERVER_VERSION)
	rm -rf bin/temporal-schema && mkdir -p bin/temporal-schema && \
	  cp -r "$$($(GO) env GOMODCACHE)/go.temporal.io/server@$(TEMPORAL_SERVER_VERSION)/schema/postgresql" bin/temporal-schema/ && \
	  chmod -R u+w bin/temporal-schema
	mv bin/.temporal-server/sql bin/temporal-sql-tool && mv bin/.temporal-server/server bin/temporal-server && rm -rf bin/.temporal-server

bin/workflowcheck: ## build the pinned workflowcheck linter into bin/
	GOBIN=$(CURDIR)/bin $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

XTERM_VERSION := 5.5.0
XTERM_FIT_VERSION := 0.10.0

.PHONY: vendor-xterm
vendor-xterm: ## check the vendored xterm.js and its fit addon (ui/static/vendor/xterm) against the pinned npm packages
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent @xterm/xterm@$(XTERM_VERSION) @xterm/addon-fit@$(XTERM_FIT_VERSION) >/dev/null && \
	  mkdir x f && tar xzf xterm-xterm-$(XTERM_VERSION).tgz -C x && tar xzf xterm-addon-fit-$(XTERM_FIT_VERSION).tgz -C f && \
	  cmp x/package/lib/xterm.js $(CURDIR)/ui/static/vendor/xterm/xterm.js && \
	  cmp x/package/css/xterm.css $(CURDIR)/ui/static/vendor/xterm/xterm.css && \
	  cmp f/package/lib/addon-fit.js $(CURDIR)/ui/static/vendor/xterm/addon-fit.js && \
	  echo "vendored xterm.js $(XTERM_VERSION) and addon-fit $(XTERM_FIT_VERSION) match the npm packages"; rc=$$?; rm -rf $$tmp; exit $$rc

.PHONY: run
run: build bin/temporal ## run the embedded default: Temporal dev server + local dockerd + berth dev (Ctrl-C stops)
	deploy/local/run.sh

.PHONY: lint
lint: bin/workflowcheck ## gofmt, go vet, workflowcheck and the layer rules (TestLayers)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	bin/workflowcheck ./workflows/...
	$(GO) test -count=1 -run '^TestLayers$$' .

.PHONY: unit
unit: ## unit tests only (no services needed)
	$(GO) test -count=1 . ./activities/... ./workflows/... ./server/... ./worker/... ./compose/... ./lb/... ./cmdb/... ./tickets/... ./logship/... ./artifacts/... ./metrics/...

.PHONY: test
test: lint bin/temporal ## lint, unit, store on SQLite and MariaDB, replay, integration on real services (make test-full adds the variants)
	@env=$$(deploy/local/testenv.sh up) && eval "$$env" && \
	  BERTH_REQUIRE_E2E=1 $(GO) test -count=1 -timeout 80m ./...

.PHONY: test-full
test-full: lint bin/temporal ## make test plus the integration tests kept for the full suite (variants; about 1.5x as long)
	@env=$$(deploy/local/testenv.sh up) && eval "$$env" && \
	  BERTH_E2E_FULL=1 BERTH_REQUIRE_E2E=1 $(GO) test -count=1 -timeout 120m ./...

# The integration tests that make test-prod runs on the production Temporal
# server: deploy, release, grey with approval, scale, the SIGKILLs of a
# worker, an API replica and a region's worker, and its mutual TLS.
PROD_TESTS := TestDeployAcrossTwoHosts|TestWorkerKilledMidDeploy|TestFailedHealthUndoesEverything|TestImageReleaseUnderLoad|TestWorkerKilledMidRelease|TestReleaseWaitsForApproval|TestGreyReleaseSplitsTrafficAndPromotes|TestGreyReleaseApprovalSurvivesWorkerKill|TestApprovalSurvivesWorkerKill|TestScaleOutAndInUnderLoad|TestAPIReplicasShareSessionsLimitsAndStreams|TestRegionWorkerDownHoldsOnlyItsRuns|TestServiceSpansTwoRegions|TestSystemdLayoutBoots|TestTemporalRequiresClientCertificate|TestAPIOverHTTPS

.PHONY: test-prod
test-prod: bin/temporal bin/temporal-server ## integration tests on the production Temporal server on PostgreSQL 15 (PROD_TESTS=regexp to choose)
	@deploy/local/deps.sh prod && env=$$(deploy/local/testenv.sh up) && eval "$$env" && \
	  ns=berth-test-$$(date +%s) && out=$$(BERTH_TEMPORAL_NAMESPACE=$$ns deploy/local/temporal-server.sh up) && \
	  trap 'deploy/local/temporal-server.sh forget '$$ns' 2>/dev/null' EXIT && read -r addr tls <<< "$$out" && \
	  BERTH_TEST_TEMPORAL_ADDRESS=$$addr BERTH_TEST_TEMPORAL_TLS_DIR=$$tls BERTH_TEST_TEMPORAL_NAMESPACE=$$ns BERTH_REQUIRE_E2E=1 BERTH_E2E_FULL=1 \
	  $(GO) test -count=1 -timeout 40m -v -run '^($(PROD_TESTS))$$' ./e2e/

.PHONY: bench-prod
bench-prod: bin/temporal bin/temporal-server ## BenchmarkConcurrentDeploys (50 deploys at once over two regions) on the production Temporal server, to read beside make bench's
	@deploy/local/deps.sh prod && env=$$(deploy/local/testenv.sh up) && eval "$$env" && \
	  ns=berth-test-$$(date +%s) && out=$$(BERTH_TEMPORAL_NAMESPACE=$$ns deploy/local/temporal-server.sh up) && \
	  trap 'deploy/local/temporal-server.sh forget '$$ns' 2>/dev/null' EXIT && read -r addr tls <<< "$$out" && \
	  BERTH_TEST_TEMPORAL_ADDRESS=$$addr BERTH_TEST_TEMPORAL_TLS_DIR=$$tls BERTH_TEST_TEMPORAL_NAMESPACE=$$ns \
	  $(GO) test -count=1 -run '^$$' -bench BenchmarkConcurrentDeploys -benchtime 1x -timeout 30m ./e2e/

.PHONY: chaos
chaos: bin/temporal ## the chaos suite: the worker SIGKILLed at random points of 50 runs (BERTH_CHAOS_RUNS=n, BERTH_CHAOS_SEED=s reruns a seed)
	@env=$$(deploy/local/testenv.sh up) && eval "$$env" && \
	  BERTH_REQUIRE_E2E=1 BERTH_CHAOS_RUNS=$${BERTH_CHAOS_RUNS:-50} $(GO) test -count=1 -timeout 40m -v -run '^TestChaos' ./e2e/

.PHONY: bench
bench: bin/temporal ## benchmarks on real services: deploy vs bare Docker, three-tier vs docker-compose, RSS, runs page p95 and the API at 500 req/s on MariaDB
	@deploy/local/deps.sh bench && env=$$(deploy/local/testenv.sh up) && eval "$$env" && \
	  $(GO) test -count=1 -run '^$$' -bench . -benchtime 3x -timeout 30m ./e2e/ && \
	  $(GO) test -count=1 -run '^$$' -bench 'BenchmarkRunsPage|BenchmarkMapLayout' -benchtime 300x ./server/ && \
	  $(GO) test -count=1 -run '^$$' -bench BenchmarkAPIUnderLoad -benchtime 1x -timeout 20m ./server/

.PHONY: record-histories
record-histories: bin/temporal ## re-record testdata/histories from the integration tests
	@env=$$(deploy/local/testenv.sh up) && eval "$$env" && \
	  BERTH_RECORD_HISTORIES=1 $(GO) test -count=1 -run 'TestDeployAcrossTwoHosts|TestFailedHealthUndoesEverything|TestWorkerKilledMidDeploy|TestScaleOutAndInUnderLoad|TestFirewallTicketTimeoutUndoesScaleOut' ./e2e/

.PHONY: services-down
services-down: ## stop the test services (dockerd hosts, MariaDB, and the production Temporal server and PostgreSQL if up); data is kept
	deploy/local/temporal-server.sh down
	deploy/local/postgres.sh down
	deploy/local/testenv.sh down

.PHONY: clean
clean: ## remove build output (keeps data/)
	rm -f bin/berth
