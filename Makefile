# zsar — make help lists the targets.
PYTHON ?= python3
ZSAR ?= $(PYTHON) -m zsar_cli
DEMO_DIR ?= build/demo
KSHOT_DIR ?= build/kshot

.DEFAULT_GOAL := help
.PHONY: help install lint test test-no-ffmpeg test-all bench demo recipe-world-kshot recipe-world-icl zeal zeal-demo slurm-pipeline \
	recipe-ucfcrime-selfres recipe-ucf101 recipe-hmdb51 recipe-k600 recipe-thumos14-zeal recipe-ucfcrime-auc \
	recipe-charades-sta

help: ## Show this help.
	@grep -E '^[a-zA-Z0-9_ %-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-16s %s\n", $$1, $$2}'

install: ## Install zsar and its dev tools into the current Python environment.
	$(PYTHON) -m pip install -e '.[dev]'

lint: ## ruff lint + format check, mypy on the package.
	$(PYTHON) -m ruff check zsar_cli tests bench scripts
	$(PYTHON) -m ruff format --check zsar_cli tests bench scripts
	$(PYTHON) -m mypy zsar_cli --ignore-missing-imports

TEST = $(PYTHON) -m pytest -q -m "not slow"
test: ## Run the test suite (no GPU, no network; a few minutes on 2 cores; slow tests excluded).
	$(TEST)

test-no-ffmpeg: ## The same tests with the ffmpeg/ffprobe programs hidden from PATH (theirs skip).
	scripts/without_ffmpeg.sh $(TEST)

test-all: ## The test suite including slow end-to-end world tests.
	$(PYTHON) -m pytest -q

bench: ## Run every benchmark under bench/ and print their ratios.
	@for b in bench/*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

demo: ## Generate world videos and classify them with the built-in world CLIP.
	$(ZSAR) synth $(DEMO_DIR) --trimmed 24 --untrimmed 0 --anomaly 0 --seed 7
	$(ZSAR) classify $(DEMO_DIR)/trimmed/list.csv --labels $(DEMO_DIR)/labels.txt --model builtin:world-clip -o $(DEMO_DIR)/predictions.parquet
	$(ZSAR) score $(DEMO_DIR)/predictions.parquet

recipe-world-kshot: ## k-shot curves of zsar adapt on world videos with nonsense label names (into KSHOT_DIR).
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) examples/world_kshot.py $(KSHOT_DIR)

recipe-world-icl: ## k-shot curve of in-context examples (classify --lvlm --examples) on the same world (into KSHOT_DIR/icl).
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) examples/world_icl.py $(KSHOT_DIR)/icl

# --- The seeds' tables from datasets on disk (zsar_cli/recipes): make recipe-NAME ROOT=/data/set
# [OUT=build/recipes] [CLIP=spec] [LVLM=spec] [DEVICE=cuda] [RECIPE_ARGS='--descriptions d.json'].
# Try one on a world stand-in first: zsar synth /tmp/w --layout ucf101, then ROOT=/tmp/w with
# CLIP=builtin:world-clip LVLM=builtin:world-lvlm.
OUT ?= build/recipes
CLIP ?= openclip:ViT-B-16/openai
LVLM ?= hf:Qwen/Qwen2.5-VL-7B-Instruct
DEVICE ?= auto
RECIPE = $(PYTHON) -m zsar_cli.recipes $(1) --root $(ROOT) --out $(OUT) --clip '$(CLIP)' --lvlm '$(LVLM)' --device $(DEVICE) $(RECIPE_ARGS)
recipe-ucfcrime-selfres: ## UCF-Crime classification: CLIP, LVLM on 16 linear frames, LVLM + Self-ReS (ROOT=...).
	$(call RECIPE,ucfcrime-selfres)
recipe-ucf101: ## UCF101 over 10 half-class splits: names, templates, descriptors, random control (ROOT=...).
	$(call RECIPE,ucf101)
recipe-hmdb51: ## HMDB51, the same rows as recipe-ucf101 (ROOT=...).
	$(call RECIPE,hmdb51)
recipe-k600: ## Kinetics-600 novel classes, 3 x 160 splits (ROOT=...; a K400 class list beside validate.csv).
	$(call RECIPE,k600)
recipe-thumos14-zeal: ## THUMOS14 ZEAL vs the CLIP-only baseline, mAP@0.3:0.7 (ROOT=...).
	$(call RECIPE,thumos14-zeal)
recipe-ucfcrime-auc: ## UCF-Crime frame ROC-AUC over every frame of every test video (ROOT=...).
	$(call RECIPE,ucfcrime-auc)
recipe-charades-sta: ## Charades-STA moment grounding, R@1 at IoU 0.3/0.5/0.7 and mIoU (ROOT=...).
	$(call RECIPE,charades-sta)

# --- The ZEAL chain on a folder of videos (examples/zeal_chain.sh, stage by stage with the CLI)
zeal: ## ZEAL chain: make zeal VIDEOS=dir LABELS=labels.txt DESCRIPTIONS=desc.json OUT=dir [GT=gt.json]
	examples/zeal_chain.sh $(VIDEOS) $(LABELS) $(DESCRIPTIONS) $(OUT) $(GT)

zeal-demo: ## ZEAL chain on freshly generated untrimmed world videos with the world models.
	$(ZSAR) synth build/zeal --trimmed 0 --untrimmed 8 --anomaly 0 --seed 3 --untrimmed-duration 20-40 --phase-seconds 2
	examples/zeal_chain.sh build/zeal/untrimmed/list.csv build/zeal/labels.txt build/zeal/descriptions.json build/zeal/out build/zeal/untrimmed/activitynet.json

# --- Slurm (see examples/slurm/): make slurm-pipeline SHARDS=64 VIDEOS=list.txt LABELS=labels.txt WORK=/scratch/run
SHARDS ?= 8
slurm-pipeline: ## Submit the whole ZEAL chain as Slurm arrays (afterok dependencies).
	SHARDS=$(SHARDS) VIDEOS=$(VIDEOS) LABELS=$(LABELS) WORK=$(WORK) examples/slurm/submit.sh

slurm-extract slurm-encode slurm-query-lvlm slurm-localize: slurm-%: ## Submit one stage as a Slurm array.
	SHARDS=$(SHARDS) VIDEOS=$(VIDEOS) WORK=$(WORK) examples/slurm/submit.sh $(subst extract,extract-frames,$*)
