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
# make cluster-up runs a node (pods really run) unless NODE=0 (the control plane only).
NODE ?= 1
# Parallel pytest workers for the integration tier (each has its own control plane and
# databases). The e2e tier runs first, alone: its node is machine-wide and changes the host.
TEST_WORKERS ?= 3
NODE_FLAG := $(if $(filter 0 no false,$(NODE)),--no-node,--node)
IMAGES := $(VENV)/bin/python tools/images/images.py

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

.PHONY: node
node: controlplane ## Build (or reuse) kubelet, kube-scheduler, kube-proxy, CoreDNS; install containerd, runc, CNI
	@bash tools/node/ensure-packages.sh
	@bash tools/node/build.sh
	@bash tools/dns/build.sh

.PHONY: cluster-up
cluster-up: $(VENV_STAMP) ## Start the local cluster (control plane + one node; NODE=0: no node); kubeconfig in .local/kubeconfig
	@$(CLUSTER) up $(NODE_FLAG) >/dev/null
	@echo "cluster up. Use it with:"
	@echo "  export KUBECONFIG=$(LOCAL)/kubeconfig PATH=$(LOCAL)/bin:\$$PATH"
	@echo "  kubectl get ns"

.PHONY: cluster-down
cluster-down: ## Stop the local cluster, undo the node's host changes, delete its state
	@if [ -x $(VENV)/bin/python ]; then $(CLUSTER) down; fi

.PHONY: cluster-status
cluster-status: ## Show the local control plane's processes and health
	@$(CLUSTER) status

.PHONY: image
image: $(VENV_STAMP) ## Build the Kustos image from the Dockerfile (buildah, no registry) and load it into the local node
	@bash tools/node/ensure-packages.sh
	@mkdir -p $(LOCAL)/image
	@$(IMAGES) kustos --out $(LOCAL)/image/kustos.tar >/dev/null
	@if [ -S $(LOCAL)/cluster/node/containerd.sock ]; then \
		$(IMAGES) load --address $(LOCAL)/cluster/node/containerd.sock $(LOCAL)/image/kustos.tar && \
		echo "loaded kustos:0.1.0 into the local node"; \
	else echo "no local node running: image saved in $(LOCAL)/image/kustos.tar (make cluster-up, then make image)"; fi

.PHONY: deploy
deploy: image ## image + install Kustos on the local cluster (kubectl apply -k manifests/overlays/sqlite)
	@$(LOCAL)/bin/kubectl apply --server-side -k manifests/overlays/sqlite
	@$(LOCAL)/bin/kubectl -n $(KUSTOS_NAMESPACE) rollout status deploy/kustos-operator --timeout=180s

.PHONY: chart-crds
chart-crds: ## Copy crds/*.yaml into charts/kustos/crds (helm installs CRDs from there)
	@rm -f charts/kustos/crds/*.yaml
	@for f in crds/*.yaml; do [ "$$(basename $$f)" = kustomization.yaml ] || cp $$f charts/kustos/crds/; done

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
lint: $(VENV_STAMP) ## ruff (check and format), mypy --strict (kustos and tests) and the layer contracts (import-linter)
	$(VENV)/bin/ruff check operator tests tools bench
	$(VENV)/bin/ruff format --check operator tests tools bench
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests
	$(VENV)/bin/lint-imports

.PHONY: test-unit
test-unit: $(VENV_STAMP) ## Unit tests only (no I/O)
	$(VENV)/bin/pytest tests/unit -q

.PHONY: test
test: $(VENV_STAMP) ## Install what is missing and run every test tier (unit, integration, e2e on the node)
	@bash tools/db/ensure-packages.sh
	@bash tools/node/ensure-packages.sh
	@bash tests/sdk/ensure-packages.sh
	@# The Go binaries and the base image build (cached) while lint and the unit tier run.
	@mkdir -p $(LOCAL); \
	( bash tools/controlplane/build.sh && bash tools/node/build.sh && bash tools/dns/build.sh && \
	  bash tools/images/base.sh && \
	  { $(VENV)/bin/python -m tests.sdk.toolchains || echo "SDK toolchains failed (above)"; } ) \
		>$(LOCAL)/build.log 2>&1 & build=$$!; \
	$(MAKE) lint && $(VENV)/bin/pytest tests/unit -q -p no:cacheprovider || { kill $$build; exit 1; }; \
	echo "waiting for the cached builds (log: $(LOCAL)/build.log)"; \
	wait $$build || { tail -30 $(LOCAL)/build.log; exit 1; }; \
	e2e=0; $(VENV)/bin/pytest tests/e2e -q -p no:cacheprovider --durations=15 || e2e=$$?; \
	rest=0; $(VENV)/bin/pytest tests -q -p no:cacheprovider --ignore=tests/unit --ignore=tests/e2e \
		--durations=30 -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder || rest=$$?; \
	[ $$e2e -eq 0 ] && [ $$rest -eq 0 ]

.PHONY: bench
bench: $(VENV_STAMP) ## Run the benchmarks (on demand; figures go to docs/benchmarks.md)
	@for b in bench/*.py; do echo "== $$b"; $(VENV)/bin/python $$b; done
