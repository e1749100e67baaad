# modelfs developer targets. `make help` lists them.
# Every target bootstraps its own virtualenv (.venv), so a fresh machine needs only Python 3.11+ and Go.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-24s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create .venv with modelfs and the dev tools

.PHONY: run
run: $(STAMP) dataset-controller ## modelfs at work, no cluster needed: `modelfs sandbox` until Ctrl-C (SANDBOX_ARGS="--fast --keep")
	$(BIN)/modelfs sandbox $(SANDBOX_ARGS)

.PHONY: controlplane-binaries
controlplane-binaries: ## Build kube-apiserver, kube-controller-manager and etcd into ~/.cache/modelfs
	hack/build-control-plane.sh

.PHONY: dataset-controller
dataset-controller: ## Build the BaizeAI/dataset controller (and copy its Dataset CRD) into ~/.cache/modelfs
	hack/build-dataset-controller.sh

.PHONY: manifests
manifests: $(STAMP) ## Regenerate config/ (CRDs from api/, the ClusterRole from controllers/rbac.py)
	$(BIN)/modelfs manifests

.PHONY: lint
lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: fmt
fmt: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: unit
unit: $(STAMP) actionlint helm checkov ## Unit and property tests (no cluster)
	$(BIN)/pytest tests $(PYTEST_ARGS)

.PHONY: e2e
e2e: $(STAMP) controlplane-binaries dataset-controller helm ## End-to-end tests on the local control plane (--k8s=local)
	$(BIN)/pytest e2e $(PYTEST_ARGS)

.PHONY: test
test: $(STAMP) controlplane-binaries dataset-controller actionlint helm checkov ## What CI's main job runs: lint, unit, property and e2e tests (the kind workflow adds test-kind)
	$(MAKE) lint
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: bench
bench: $(STAMP) controlplane-binaries dataset-controller ## Operator benchmark: latency, API writes per ModelSync, RSS, idle, the real Dataset controller's burst (BENCH_ARGS="--syncs 50 --json out.json")
	$(BIN)/python -m benchmarks.operator_bench $(BENCH_ARGS)

.PHONY: clean
clean: ## Remove the virtualenv and caches in the tree (not ~/.cache/modelfs)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info

# ----------------------------------------------------------------------------- install
IMG ?= ghcr.io/samzong/modelfs:$(VERSION)
KUBECTL ?= $(BIN)/kubectl
# The tools cache, where hack/lib.sh's cache_dir puts it (tests/tools.py finds them there).
TOOLS := $(or $(MODELFS_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/modelfs)/tools
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(TOOLS)/actionlint-$(ACTIONLINT_VERSION)/actionlint
# checkov has a venv of its own: its botocore needs python-dateutil<3, kubernetes>=37 needs >=3.
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(TOOLS)/checkov-$(CHECKOV_VERSION)/.installed

.PHONY: deploy
deploy: $(STAMP) ## Install modelfs into the current kubeconfig's cluster (IMG=... to choose the image)
	rm -rf .deploy && mkdir -p .deploy
	cd .deploy && printf 'resources:\n  - ../config/default\nimages:\n  - name: modelfs\n    newName: %s\n    newTag: "%s"\n' \
		"$(firstword $(subst :, ,$(IMG)))" "$(or $(word 2,$(subst :, ,$(IMG))),latest)" > kustomization.yaml
	$(KUBECTL) apply -k .deploy
	rm -rf .deploy

.PHONY: undeploy
undeploy: $(STAMP) ## Remove everything `make deploy` installed (CRDs too: every modelfs object goes)
	$(KUBECTL) delete -k config/default --ignore-not-found

.PHONY: docker-build
docker-build: ## Build the operator image as IMG (needs Docker)
	docker build -t $(IMG) .

.PHONY: actionlint
actionlint: $(ACTIONLINT) ## Build actionlint (from the Go module proxy) into ~/.cache/modelfs/tools

$(ACTIONLINT):
	GOBIN=$(dir $(ACTIONLINT)) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

.PHONY: helm
helm: ## Build helm (hack/helm, from the Go module proxy; version in hack/versions.env) into ~/.cache/modelfs/tools
	hack/build-helm.sh

.PHONY: checkov
checkov: $(CHECKOV_STAMP) ## Install checkov (pinned, in a virtualenv of its own) into ~/.cache/modelfs/tools

# A venv can't be moved (its scripts name their python by absolute path), so the stamp, written
# last, is what says the install finished.
$(CHECKOV_STAMP):
	rm -rf $(dir $(CHECKOV_STAMP))
	$(PYTHON) -m venv $(dir $(CHECKOV_STAMP))
	$(dir $(CHECKOV_STAMP))bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

# On kind the real Dataset controller's loader pods would run and really download (the scenarios'
# repos are made up), so the kind suite runs the fake Dataset controller. The install tests run
# in a session of their own (they delete config/default, CRDs included), with IMG; the chart's
# rolling upgrade (a helm release of its own) runs there too, after them.
.PHONY: test-kind
test-kind: $(STAMP) helm ## e2e on kind (needs Docker): the suite, then the install and helm upgrade tests with IMG in kind
	$(BIN)/pytest e2e --k8s=kind --dataset-controller=fake --ignore=e2e/test_install.py --ignore=e2e/test_kind_upgrade.py $(PYTEST_ARGS)
	MODELFS_OPERATOR_IMAGE=$(IMG) $(BIN)/pytest e2e/test_install.py e2e/test_kind_upgrade.py --k8s=kind --dataset-controller=fake $(PYTEST_ARGS)

# ----------------------------------------------------------------------------- release
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' modelfs/__init__.py)
HELM_VERSION := $(shell sed -n 's/^HELM_VERSION=//p' hack/versions.env)
HELM := $(TOOLS)/helm-$(HELM_VERSION)/helm
CHART_REPO ?= oci://ghcr.io/samzong/charts
HELM_PUSH_FLAGS ?=
TAG ?=

.PHONY: chart-package
chart-package: helm ## Package charts/modelfs into dist/modelfs-<version>.tgz
	$(HELM) lint --strict charts/modelfs
	$(HELM) package charts/modelfs --destination dist

.PHONY: chart-push
chart-push: chart-package ## Push the packaged chart to CHART_REPO (default oci://ghcr.io/samzong/charts; log in first)
	$(HELM) push dist/modelfs-$(VERSION).tgz $(CHART_REPO) $(HELM_PUSH_FLAGS)

.PHONY: docker-push
docker-push: ## Push the operator image IMG (after make docker-build; log in first)
	docker push $(IMG)

.PHONY: release-check
release-check: ## Fail unless TAG (the git tag, v<version>) is the project's version
	@test "$(TAG)" = "v$(VERSION)" || { echo "tag '$(TAG)' is not v$(VERSION) (modelfs/__init__.py)"; exit 1; }
	@echo "releasing modelfs $(VERSION)"
