# zsar — make help lists the targets.
PYTHON ?= python3
ZSAR ?= $(PYTHON) -m zsar_cli
DEMO_DIR ?= build/demo

.DEFAULT_GOAL := help
.PHONY: help install lint test test-all bench demo

help: ## Show this help.
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-16s %s\n", $$1, $$2}'

install: ## Install zsar and its dev tools into the current Python environment.
	$(PYTHON) -m pip install -e '.[dev]'

lint: ## ruff lint + format check.
	$(PYTHON) -m ruff check zsar_cli tests bench scripts
	$(PYTHON) -m ruff format --check zsar_cli tests bench scripts

test: ## Run the test suite (no GPU, no network; a few minutes on 2 cores).
	$(PYTHON) -m pytest -q

test-all: ## The test suite including slow tests.
	$(PYTHON) -m pytest -q -m "slow or not slow"

bench: ## Run every benchmark under bench/ and print their ratios.
	@for b in bench/*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

demo: ## Generate world videos and classify them with the built-in world CLIP.
	$(ZSAR) synth $(DEMO_DIR) --trimmed 24 --untrimmed 0 --anomaly 0 --seed 7
	$(ZSAR) classify $(DEMO_DIR)/trimmed/list.csv --labels $(DEMO_DIR)/labels.txt --model builtin:world-clip -o $(DEMO_DIR)/predictions.parquet
	$(ZSAR) score $(DEMO_DIR)/predictions.parquet
