# Gato: every entry point installs what it needs into a git-ignored .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
# CPU-only machines get the CPU build (never the multi-GB CUDA packages); machines where
# nvidia-smi sees a GPU get PyPI's default Linux build, which is the CUDA one.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
PYTEST_ARGS ?=
DATA_DIR ?= data

.PHONY: install demo test test-fast lint bench data scores eval clean-venv

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
ifeq ($(HAS_GPU),1)
	$(BIN)/pip install "torch==$(TORCH_VERSION)"
else
	$(BIN)/pip install "torch==$(TORCH_VERSION)+cpu" --extra-index-url $(TORCH_CPU_INDEX)
endif
	$(BIN)/pip install -e '.[dev]'
	@touch $(STAMP)

## demo: the main job on a small default (expert data -> a small Gato trained on CPU, minutes)
demo: $(STAMP)
	$(BIN)/python -m gato.demo

## test: the whole suite, slow end-to-end checks included (what CI runs)
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

## test-fast: the suite without the tests marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gato tests tokenizers experiments
	$(BIN)/ruff format --check gato tests tokenizers experiments

## bench: throughput tables, printed and written as JSON under experiments/results/
bench: $(STAMP)
	$(BIN)/python -m gato.bench

## data: the default expert dataset (python -m gato.collect --suite default; ~4 min on 2 cores)
## in $(DATA_DIR)/; rerunning resumes an interrupted collection and skips what is already there
data: $(STAMP)
	$(BIN)/python -m gato.collect --suite default --workers 2 --data-dir $(DATA_DIR)

## scores: refresh gato/data/scores.json (random/expert return per task) from $(DATA_DIR)
scores: data
	$(BIN)/python -m gato.scores --update-from $(DATA_DIR)

## eval: roll out a checkpoint (default: the newest under runs/) and report expert-normalized
## scores: make eval CKPT=runs/x TASKS=cartpole.balance,metaworld.reach EPISODES=50
TASKS ?= cartpole.balance,metaworld.reach,babyai.go-to-red-ball
EPISODES ?= 50
CKPT ?=
eval: $(STAMP)
	$(BIN)/python -m gato.evaluate $(if $(CKPT),--checkpoint $(CKPT),) \
		--tasks $(TASKS) --episodes $(EPISODES) --workers 2 --data-dir $(DATA_DIR)

clean-venv:
	rm -rf $(VENV)
