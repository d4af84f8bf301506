# Kustos developer entry points. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# The first Python 3.11+ on PATH (Debian 12 ships 3.11 as python3).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { command -v $$p; break; }; done)
VENV := $(CURDIR)/.venv
VENV_STAMP := $(VENV)/.installed
LOCAL := $(CURDIR)/.local
KUBECONFIG ?= $(LOCAL)/kubeconfig
export KUBECONFIG
CLUSTER := $(VENV)/bin/python tools/controlplane/cluster.py

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: venv
venv: $(VENV_STAMP) ## Create .venv and install kustos with its dev extras (when pyproject.toml changes)

$(VENV_STAMP): pyproject.toml
	@py="$(PYTHON)"; \
	if [ -z "$$py" ] || ! "$$py" -c 'import ensurepip' 2>/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing python3 and python3-venv from apt" >&2; \
			apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null; \
			py="$${py:-$$(command -v python3)}"; \
		else \
			echo "Python 3.11+ with venv is required (Debian: apt-get install python3-venv)" >&2; \
			exit 1; \
		fi; \
	fi; \
	if [ ! -x $(VENV)/bin/pip ]; then rm -rf $(VENV) && "$$py" -m venv $(VENV); fi
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

.PHONY: controlplane
controlplane: ## Build (or reuse) kube-apiserver, kube-controller-manager, kubectl, etcd
	@bash tools/controlplane/build.sh

.PHONY: cluster-up
cluster-up: $(VENV_STAMP) ## Start the local control plane in the background; kubeconfig in .local/kubeconfig
	@$(CLUSTER) up >/dev/null
	@echo "control plane up. Use it with:"
	@echo "  export KUBECONFIG=$(LOCAL)/kubeconfig PATH=$(LOCAL)/bin:\$$PATH"
	@echo "  kubectl get ns"

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and delete its state
	@if [ -x $(VENV)/bin/python ]; then $(CLUSTER) down; fi

.PHONY: cluster-status
cluster-status: ## Show the local control plane's processes and health
	@$(CLUSTER) status

.PHONY: kubectl
kubectl: ## How to use the kubectl that matches the control plane
	@echo "After 'make cluster-up', kubectl v1.34.4 is linked at $(LOCAL)/bin/kubectl:"
	@echo "  export KUBECONFIG=$(LOCAL)/kubeconfig PATH=$(LOCAL)/bin:\$$PATH"

# ---------------------------------------------------------------------------------------
# Operator, databases, tests

STORE_URL ?= sqlite:///$(LOCAL)/kustos.db
KUSTOS_NAMESPACE ?= kustos-system
DB := $(VENV)/bin/python tools/db/dbctl.py

.PHONY: run
run: $(VENV_STAMP) ## Start the control plane (unless KUBECONFIG reaches a cluster), apply CRDs, run the operator
	@mkdir -p $(LOCAL)
	@if ! $(VENV)/bin/python tools/reachable.py "$(KUBECONFIG)"; then \
		echo "starting the local control plane (KUBECONFIG=$(KUBECONFIG))"; $(CLUSTER) up >/dev/null; fi
	@$(VENV)/bin/python tools/apply_crds.py "$(KUBECONFIG)" "$(KUSTOS_NAMESPACE)"
	KUSTOS_STORE_URL="$(STORE_URL)" KUSTOS_NAMESPACE="$(KUSTOS_NAMESPACE)" $(VENV)/bin/kustos run

.PHONY: db-up
db-up: $(VENV_STAMP) ## Start local PostgreSQL and MariaDB (loopback, throwaway data); see .local/db/env.json
	@$(DB) up

.PHONY: db-down
db-down: ## Stop the local databases
	@if [ -x $(VENV)/bin/python ]; then $(DB) down; fi

.PHONY: lint
lint: $(VENV_STAMP) ## ruff, mypy --strict and the layer contracts (import-linter)
	$(VENV)/bin/ruff check operator tests tools bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

.PHONY: test-unit
test-unit: $(VENV_STAMP) ## Unit tests only (no I/O)
	$(VENV)/bin/pytest tests/unit -q

.PHONY: test
test: $(VENV_STAMP) controlplane ## Install what is missing and run every test tier (unit, integration, e2e)
	@bash tools/db/ensure-packages.sh
	$(MAKE) lint
	$(VENV)/bin/pytest tests -q -p no:cacheprovider

.PHONY: bench
bench: $(VENV_STAMP) ## Run the benchmarks (on demand; figures go to docs/benchmarks.md)
	@for b in bench/*.py; do echo "== $$b"; $(VENV)/bin/python $$b; done
