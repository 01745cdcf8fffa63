# refbus: `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
PKGS  := ./... ./pkg/...
SQLC  := $(GO) run github.com/sqlc-dev/sqlc/cmd/sqlc@v1.31.1
BIN   := bin

.PHONY: help run test generate verify bench lint lint-openapi postgres build chromium screenshots

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## build the node commands (one per kind), refbus-admin, refbus-audit and the dev stack into bin/
	$(GO) build -o $(BIN)/ ./services/health/cmd/refbus-health ./services/education/cmd/refbus-education \
		./services/social/cmd/refbus-social ./services/ngo/cmd/refbus-ngo ./services/devstack
	$(GO) build -o $(BIN)/refbus-audit ./services/auditor
	$(GO) build -o $(BIN)/refbus-admin ./services/admin

run: postgres build ## run everything on this machine: NATS, Postgres, a node of each kind, demo data
	exec $(BIN)/devstack

test: postgres chromium ## run every test (real Postgres, real NATS, headless Chromium)
	$(GO) test -count=1 -timeout 15m $(PKGS)

generate: ## regenerate the sqlc code of every store package (sql/sqlc.yaml)
	cd sql && $(SQLC) generate

verify: ## fail if generated code is stale, code is unformatted, or vet complains
	cd sql && $(SQLC) diff
	@test -z "$$(gofmt -l pkg services sql schemas)" || { echo "gofmt would change:"; gofmt -l pkg services sql schemas; exit 1; }
	$(GO) vet $(PKGS)

bench: postgres ## measure the pipeline against raw JetStream (N=20000 by default)
	$(GO) run ./services/bench -n $${N:-20000}

lint: verify ## alias of verify

# REDOCLY is Redocly's CLI, pinned (it needs Node.js 20.19+ or 22.12+, and npm).
REDOCLY := npx --yes @redocly/cli@2.77.0
OPENAPI := services/internal/core/api/apiclient/openapi.json

lint-openapi: ## lint the OpenAPI document a node serves (Redocly's recommended rules, redocly.yaml), and check the committed copy
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 12) || (a === 20 && b >= 19) ? 0 : 1)' || \
		{ echo "Redocly's CLI needs Node.js 20.19+ or 22.12+, not $$(node --version)"; exit 1; }
	@mkdir -p $(BIN)
	$(GO) run ./services/internal/core/api/cmd/openapi -o $(BIN)/openapi.json
	$(REDOCLY) lint --config redocly.yaml $(BIN)/openapi.json
	@cmp -s $(BIN)/openapi.json $(OPENAPI) || { echo "$(OPENAPI) is stale: go generate ./services/internal/core/api/apiclient"; exit 1; }

# postgres makes sure the PostgreSQL server binaries are here: installed
# with apt on Debian, otherwise it says what to install.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || [ -n "$$PG_BIN" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
		echo "Installing the PostgreSQL server binaries with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "refbus needs the PostgreSQL 15+ server binaries (initdb, pg_ctl, postgres)."; \
		echo "Install them with your package manager (e.g. 'brew install postgresql@15', 'dnf install postgresql-server'),"; \
		echo "or set PG_BIN to the directory that holds them."; exit 1; \
	fi

# chromium makes sure Debian's headless Chromium is here for the browser
# tests of the caseworker UI (services/internal/scenario), with its locales
# (chromium-l10n: a Russian browser's date fields read dd.mm.yyyy): installed
# with apt on Debian; elsewhere set CHROMIUM to a Chromium or Chrome binary.
chromium:
	@if [ -n "$$CHROMIUM" ] || { command -v chromium >/dev/null 2>&1 && { [ -e /usr/lib/chromium/locales/ru.pak ] || ! command -v apt-get >/dev/null 2>&1; }; }; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Chromium with apt-get (for the UI's browser tests)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-l10n >/dev/null; \
	else \
		echo "The UI's browser tests need Chromium: install it, or set CHROMIUM to its binary."; exit 1; \
	fi

screenshots: postgres chromium ## save the caseworker UI's main pages as PNG into docs/
	mkdir -p docs
	$(GO) test -count=1 -run 'TestBrowserDomesticViolence|TestBrowserAccessibility' ./services/internal/scenario -args -screenshots=$(CURDIR)/docs
