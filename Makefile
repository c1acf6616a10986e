# vae-mnist: `make repro` runs the pipeline, `make test` runs the tests; both set up .venv first.
# Every target puts .venv/bin first on PATH, because DVC runs each stage's `cmd` (and `dvc queue`
# its workers) with the caller's PATH: without it `python` in dvc.yaml would be the system's.

VENV := $(CURDIR)/.venv
TOOLS := $(CURDIR)/.tools
UV_VERSION := 0.13.9
BOOTSTRAP_PYTHON ?= python3
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)

export PATH := $(VENV)/bin:$(PATH)
# Ship .pyc files with the environment: with PYTHONDONTWRITEBYTECODE set (common in CI) every
# stage would otherwise recompile MLflow and TensorFlow from source on each start.
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Trust the platform's certificate store (as pip does), so uv works behind TLS-inspecting proxies.
export UV_SYSTEM_CERTS ?= 1

.DEFAULT_GOAL := help
.PHONY: help env repro docs docs-serve docs-pictures report reproduce promote rollback champion-log test test-fast lint format deps ui serve explore browser-deps recipe sweep bench bench-floats mutation

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The s3, team and sweep extras always (the tests exercise them, and `uv sync` removes any extra
# that one call named and the next did not), and one TensorFlow build: TF=cpu, or TF=gpu on a CUDA machine.
TF ?= cpu
env: | $(UV) ## create or update .venv from uv.lock (fast when up to date)
	@$(UV) sync --locked --quiet --extra s3 --extra team --extra sweep --extra $(TF) --group docs

$(TOOLS)/bin/uv: # bootstrap uv inside its own venv (PEP 668 forbids pip outside one)
	$(BOOTSTRAP_PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

repro: env ## run the whole pipeline (dvc repro); set MNIST_MIRROR to use an offline mirror
	dvc repro

# BASE and OTHER (several, space-separated): `workspace`, a git revision, a DVC experiment, or a
# registered version (3, v3, champion). The page: reports/compare/index.html; report.md beside it.
BASE ?= HEAD
OTHER ?= workspace
report: env ## compare OTHER with BASE (default: the workspace with HEAD): make report BASE=champion OTHER=<exp>
	vae-mnist report --base $(BASE) $(OTHER)

# V: a version number or an alias (default champion). Exit 0: identical or within seed noise;
# 1: beyond noise; 2: the lineage lacks something (a commit, data, an environment).
V ?= champion
reproduce: env ## rebuild a registered version from its lineage and judge it: make reproduce V=3
	vae-mnist reproduce $(V)

# The champion's moves on a governed store (the team server): V is a candidate's version number.
# Each move is recorded on the model with who, when and why; champion-log prints them.
promote: env ## a maintainer promotes candidate V to @champion after re-checking the rule: make promote V=7
	@test -n "$(filter-out champion,$(V))" || { echo "which candidate? make promote V=<version>"; exit 2; }
	vae-mnist tracking promote $(V)

WHY ?= rolled back by hand
rollback: env ## withdraw the champion; @champion goes back to the best of the rest (WHY="...")
	vae-mnist tracking rollback --why "$(WHY)"

champion-log: env ## every recorded move of @champion: when, who, from, to, why
	vae-mnist tracking champion-log

# pytest-xdist workers; the tests that share a started stack or a module's fixture stay in one
# (conftest.worker_group). On 2 cores, a fresh clone's whole .ci/run: 3 workers 17:39, 4 17:11
# (a test waits on processes and servers a good part of its time). TEST_WORKERS=0: no workers.
TEST_WORKERS ?= 4
PYTEST := python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

test: env ## run the whole test suite (end-to-end tests need MNIST_MIRROR or internet)
	$(PYTEST)

test-fast: env ## the unit tests only (tests/unit: no end-to-end run, team stack, browser or fresh process)
	$(PYTEST) tests/unit

lint: env ## ruff (lint, format), the layers' import rules, dvc.yaml's code deps against the imports
	ruff check .
	ruff format --check .
	lint-imports --no-cache
	vae-mnist deps check

deps: env ## write each stage's code deps into dvc.yaml from what its script imports
	vae-mnist deps write

format: env ## ruff: fix what can be fixed and format
	ruff check --fix .
	ruff format .

ui: env ## the MLflow UI on http://127.0.0.1:5000 against the project's store
	vae-mnist tracking ui

# SERVE_PORT moves the port (default: vae_mnist.common.ports, as `vae-mnist serve --help` shows);
# SERVE_HOST=0.0.0.0 would expose the model, unauthenticated, to the network: a deliberate choice,
# never the default.
serve: env ## serve models:/<registered model>@champion on http://127.0.0.1:5001/invocations
	vae-mnist serve $(if $(SERVE_HOST),--host $(SERVE_HOST)) $(if $(SERVE_PORT),--port $(SERVE_PORT))

# EXPLORE_VERSION (a number or an alias; default champion) and EXPLORE_PORT (default 5002) are
# optional; the test images shown beside the decoder's are the preprocess stage's.
EXPLORE_ARGS := $(strip $(if $(EXPLORE_VERSION),--version $(EXPLORE_VERSION)) \
	$(if $(EXPLORE_PORT),--port $(EXPLORE_PORT)))
explore: env ## the latent-space explorer on the registered versions, http://127.0.0.1:5002
	vae-mnist explore $(EXPLORE_ARGS) --test-images data/processed

# The explorer's browser test drives Debian's Chromium through Playwright (whose own browser
# download is not needed).
BROWSER_DEBS := chromium
browser-deps: ## install Chromium for the explorer's browser test when missing (as root)
	$(call install_debs,$(BROWSER_DEBS))

# R names a recipe of recipes.yaml; `vae-mnist recipes list` lists them.
# SEEDS=3: one experiment a seed (<name>-s42, -s43, -s44), and their mean test -ELBO.
recipe: env ## run a recipe of recipes.yaml as the DVC experiment of its name: make recipe R=<name> [SEEDS=3]
	@test -n "$(R)" || { echo "which recipe? make recipe R=<name>; vae-mnist recipes list"; exit 2; }
	vae-mnist recipes run $(R) $(if $(SEEDS),--seeds $(SEEDS))

# S names a sweep of sweeps.yaml (`vae-mnist sweeps list`); N: the study's budget of
# trials (default: the sweep's), J: trials at once. Again, or on a second clone sharing the
# study's database (VAE_MNIST_SWEEP_STORAGE), it continues the same study.
sweep: env ## an Optuna sweep whose trials are DVC experiments: make sweep S=<name> [N=20] [J=2]
	@test -n "$(S)" || { echo "which sweep? make sweep S=<name>; vae-mnist sweeps list"; exit 2; }
	vae-mnist sweeps run $(S) $(if $(N),-n $(N)) $(if $(J),-j $(J))

# The documentation site (mkdocs.yml, docs/): strict, so that a broken link, a missing page or an
# unknown anchor fails the build. Its pictures come from docs/pictures.py (a pipeline run, the
# store's versions and Chromium needed); REPORT_BASE and REPORT_OTHER pick report.png's sides.
export NO_MKDOCS_2_WARNING := 1
DOCS_PORT ?= 8000
docs: env ## build the documentation site into site/ (strict: broken links and anchors fail)
	mkdocs build --strict
	@echo "site/index.html"

docs-serve: env ## serve the documentation on http://127.0.0.1:8000, rebuilt on every edit
	mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-pictures: env ## make docs/images/ again from the project (dag, curves, report, explorer, model page)
	python docs/pictures.py

bench: env ## training speed: this machine's GEMM limit, the trainer, a plain model.fit
	python benchmarks/train_throughput.py

bench-floats: env ## model bytes and train time under simulated machine differences (data/processed)
	python benchmarks/float_stability.py

# Mutation testing (mutmut; what and with which tests: [tool.mutmut] in pyproject.toml). Slow,
# so not part of `make test`; it starts afresh each time. Survivors land in mutants/survivors.txt,
# the counts in mutants/mutmut-cicd-stats.json; `mutmut show <name>` prints a survivor's diff.
mutation: env ## mutation testing of the pure cores (slow); survivors in mutants/survivors.txt
	rm -rf mutants
	mutmut run
	mutmut export-cicd-stats
	mutmut results | sed -n 's/^ *\(.*\): survived$$/\1/p' > mutants/survivors.txt
	@echo "survivors: $$(wc -l < mutants/survivors.txt) (mutmut show <name> prints one)"

# The local team stack (PostgreSQL, Ceph's S3 gateway, mlflow server) on 127.0.0.1, in .stack/
# (or STACK_DIR); STACK_{MLFLOW,POSTGRES,S3,MON}_PORT move a port, 0 meaning any free port:
#   make stack-up STACK_MLFLOW_PORT=5051 STACK_DIR=/tmp/stack
.PHONY: stack-deps stack-up stack-down stack-status
# The one list of the packages to install; the code names, for a binary it misses, its package.
STACK_DEBS := postgresql ceph-mon ceph-osd radosgw
STACK := vae-mnist stack
STACK_FOLDER := $(if $(STACK_DIR),--folder $(STACK_DIR))
STACK_PORTS := $(strip $(if $(STACK_MLFLOW_PORT),--mlflow-port $(STACK_MLFLOW_PORT)) \
	$(if $(STACK_POSTGRES_PORT),--postgres-port $(STACK_POSTGRES_PORT)) \
	$(if $(STACK_S3_PORT),--s3-port $(STACK_S3_PORT)) \
	$(if $(STACK_MON_PORT),--mon-port $(STACK_MON_PORT)))

# Debian packages that some tests need, installed when missing (as root; else prints the command).
define install_debs
	@missing=$$(for p in $(1); do \
	    dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "installed: $(1)"; exit 0; fi; \
	install="apt-get install -y --no-install-recommends $$(echo $$missing)"; \
	if [ "$$(id -u)" != 0 ]; then \
	    echo "missing: $$(echo $$missing); as root run: sudo apt-get update && sudo $$install"; \
	    exit 1; \
	fi; \
	apt-get update -q && DEBIAN_FRONTEND=noninteractive $$install
endef

stack-deps: ## install the stack's Debian packages when missing (as root; else prints the command)
	$(call install_debs,$(STACK_DEBS))

stack-up: env ## start the team stack (wipes a stopped one) and print what to export
	$(STACK) up $(STACK_FOLDER) $(STACK_PORTS)

stack-down: env ## stop what stack-up started, by PID (logs stay in STACK_DIR)
	$(STACK) down $(STACK_FOLDER)

stack-status: env ## each stack service up or down (non-zero unless all are up)
	$(STACK) status $(STACK_FOLDER)
