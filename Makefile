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

.PHONY: install demo test test-fast lint bench data data-hub scores train eval finetune fig9 reproduce-cpu ladder vl-proof clean-venv

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

## data: the default expert dataset (python -m gato.collect --suite default: 1,000 episodes per
## cartpole and Meta-World task, 5,000 per BabyAI level, 4 Pong games; ~25 min on 2 idle cores)
## in $(DATA_DIR)/; rerunning resumes an interrupted collection and skips what is already there
data: $(STAMP)
	$(BIN)/python -m gato.collect --suite default --workers 2 --data-dir $(DATA_DIR)

## data-hub: the JAT dataset's episodes (needs internet; python -m gato.collect --from-hub) in
## $(DATA_DIR)/ beside `make data`'s tasks, so that `make train SIZE=79M` trains on both:
## HUB_EPISODES (1,000) per config of HUB_CONFIGS (17 BabyAI, Meta-World and MuJoCo configs that
## `make data` does not collect; a folder collected here is refused) and HUB_ATARI_EPISODES (50:
## a row is a whole game of frames) per config of HUB_ATARI_CONFIGS. HUB_CONFIGS=all: every
## JAT config (folders collected here are skipped). Rerunning resumes; HUB_PATH=DIR reads a local
## copy of the dataset (one folder per config) instead of streaming it.
HUB_CONFIGS ?= babyai-go-to,babyai-pickup,babyai-put-next-local,babyai-go-to-obj,\
babyai-unlock-local,metaworld-pick-place,metaworld-door-close,metaworld-drawer-open,\
metaworld-window-close,metaworld-button-press-topdown,metaworld-plate-slide,metaworld-sweep,\
mujoco-halfcheetah,mujoco-hopper,mujoco-walker,mujoco-ant,mujoco-humanoid
HUB_ATARI_CONFIGS ?= atari-breakout,atari-spaceinvaders,atari-seaquest,atari-qbert
HUB_EPISODES ?= 1000
HUB_ATARI_EPISODES ?= 50
HUB_PATH ?=
HUB_FLAGS = --random-episodes 10 --workers 2 --data-dir $(DATA_DIR) $(if $(HUB_PATH),--hub-path $(HUB_PATH))
data-hub: $(STAMP)
	$(BIN)/python -m gato.collect --from-hub $(subst $(eval) ,,$(HUB_CONFIGS)) \
		--episodes $(HUB_EPISODES) $(HUB_FLAGS)
	$(if $(HUB_ATARI_CONFIGS),$(BIN)/python -m gato.collect \
		--from-hub $(subst $(eval) ,,$(HUB_ATARI_CONFIGS)) --episodes $(HUB_ATARI_EPISODES) $(HUB_FLAGS))

## scores: refresh gato/data/scores.json (random/expert return per task) from $(DATA_DIR)
scores: data
	$(BIN)/python -m gato.scores --update-from $(DATA_DIR)

## train: pretrain Gato on $(DATA) with python -m gato.train (checkpoints, metrics.csv, TensorBoard
## and loss.png in runs/<size>-<time>/, or --run-dir in ARGS). SIZE=debug|tiny|79M|364M|1.18B
## (defaults from experiments/presets/$(SIZE).json), STEPS=n, NGPU=n GPUs on this machine
## (torchrun), ARGS='--flag value ...' for anything else (python -m gato.train --help).
## Resume: make train ARGS='--run-dir runs/X --resume'. Multi-node: on each node run
##   torchrun --nnodes=N --nproc_per_node=G --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \
##     --rdzv-id=gato -m gato.train --size 1.18B --preset experiments/presets/1.18B.json
SIZE ?= tiny
DATA ?= $(DATA_DIR)
NGPU ?= 1
STEPS ?=
ARGS ?=
TRAIN_FLAGS = --size $(SIZE) --data-dir $(DATA) \
	$(if $(wildcard experiments/presets/$(SIZE).json),--preset experiments/presets/$(SIZE).json) \
	$(if $(STEPS),--steps $(STEPS)) $(ARGS)

train: $(STAMP)
ifeq ($(NGPU),1)
	$(BIN)/python -m gato.train $(TRAIN_FLAGS)
else
	$(BIN)/torchrun --standalone --nproc_per_node=$(NGPU) -m gato.train $(TRAIN_FLAGS)
endif

## eval: roll out a checkpoint (default: the newest under runs/) and report expert-normalized
## scores: make eval CKPT=runs/x TASKS=cartpole.balance,metaworld.reach EPISODES=50
TASKS ?= cartpole.balance,metaworld.reach,babyai.go-to-red-ball
EPISODES ?= 50
CKPT ?=
eval: $(STAMP)
	$(BIN)/python -m gato.evaluate $(if $(CKPT),--checkpoint $(CKPT),) \
		--tasks $(TASKS) --episodes $(EPISODES) --workers 2 --data-dir $(DATA_DIR)

## finetune: fine-tune on the first DEMOS expert episodes of a held-out task (spec section 8):
## make finetune TASK=cartpole.swingup DEMOS=10 CKPT=runs/x   (no CKPT, or SCRATCH=1: fresh weights
## of SIZE); FT_ARGS='--steps 2000 ...' for anything else (python -m gato.finetune --help)
TASK ?= cartpole.swingup
DEMOS ?= 10
SCRATCH ?=
FT_ARGS ?=
finetune: $(STAMP)
	$(BIN)/python -m gato.finetune --task $(TASK) --demos $(DEMOS) --data-dir $(DATA_DIR) \
		$(if $(CKPT),--ckpt $(CKPT),--scratch) $(if $(SCRATCH),--scratch,) --size $(SIZE) $(FT_ARGS)

## fig9: the paper's Figure 9, pretrained vs from scratch over demonstration budgets:
## make fig9 CKPT=runs/x TASK=cartpole.swingup FIG9_DEMOS=1,10,100 SEEDS=2 FT_ARGS="--steps 2000"
FIG9_DEMOS ?= 1,10,100
SEEDS ?= 2
fig9: $(STAMP)
	$(BIN)/python experiments/fig9.py $(if $(CKPT),--ckpt $(CKPT),) --task $(TASK) \
		--demos $(FIG9_DEMOS) --seeds $(SEEDS) --data-dir $(DATA_DIR) $(FT_ARGS)

## reproduce-cpu: issue 7's proof on a 2-core CPU, about 3 hours (experiments/results/cpu-proof.md):
## expert data, pretraining with and without prompts, evaluations, Figure 9 on cartpole.swingup.
## Rerunning skips what is done; PROOF_ARGS='--stages eval,report ...' (experiments/cpu_proof.py --help)
PROOF_ARGS ?=
reproduce-cpu: $(STAMP)
	$(BIN)/python experiments/cpu_proof.py --data-dir $(DATA_DIR) $(PROOF_ARGS)

## ladder: one `small` Gato trained on TASK alone and scored by 50 rollouts (issue 12's single-task
## ladder; recipe experiments/presets/ladder/$(TASK).json, table experiments/results/ladder.md):
## make ladder TASK=babyai.go-to-red-ball   (LADDER_ARGS='--stages eval,report ...')
LADDER_ARGS ?=
ladder: $(STAMP)
	$(BIN)/python experiments/ladder.py --task $(TASK) --data-dir $(DATA_DIR) $(LADDER_ARGS)

## vl-proof: issue 14's proof (experiments/vl_proof.py, recipe experiments/presets/vl-proof.json):
## three `small` Gatos of one budget (control + vision-language + text; control only; language
## only), each trained, evaluated (normalized scores; captions, VQA, bits per byte against their
## baselines), a table in experiments/results/vl-proof.md and a PNG of captioned held-out scenes.
## About 2.5 hours on 2 cores (estimated; not run yet). VL_PROOF_ARGS='--stages eval,report ...'
VL_PROOF_ARGS ?=
vl-proof: $(STAMP)
	$(BIN)/python experiments/vl_proof.py --data-dir $(DATA_DIR) $(VL_PROOF_ARGS)

clean-venv:
	rm -rf $(VENV)
