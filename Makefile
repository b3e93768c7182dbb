# Every target runs in .venv/ and depends on the install stamp, so on a fresh clone any
# target installs first by itself.
PY      := .venv/bin/python
STAMP   := .venv/.installed
# torch first: the CPU build where there is no CUDA (torch==2.13.0 lies on this machine's
# disk), the normal build where nvidia-smi finds a GPU. A bare `torch` would pull a CUDA build.
TORCH_CPU  ?= torch==2.13.0
TORCH_CUDA ?= torch
PYTEST_ARGS ?=

.PHONY: install demo demo-fast study sweep bench bench-gpu test test-slow lint validate sft dpo sft-dpo eval report clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "install: CUDA found, installing $(TORCH_CUDA)"; $(PY) -m pip install -q "$(TORCH_CUDA)"; \
	else \
		echo "install: no CUDA, installing $(TORCH_CPU) (CPU build)"; $(PY) -m pip install -q "$(TORCH_CPU)"; \
	fi
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

# make demo: the whole comparison on the embedded Gemma-3 270M, offline, on CPU (budget in
# conf/experiment/demo.yaml and DEMO_EVAL; under 30 min on 2 cores): base, SFT, DPO, SFT->DPO on the style data,
# generations on the 40 held-out prompts, scores, preference accuracy, reports/demo/report.html.
DEMO_RUNS  ?= runs/demo
DEMO_OUT   ?= reports/demo
DEMO_TRAIN ?=
DEMO_EVAL  ?= limit=20 generate.max_new_tokens=80 generate.batch_size=20
DEMO_BASE  ?= $(DEMO_RUNS)/base-gemma3-270m-style
demo: $(STAMP)
	$(PY) -m train experiment=demo method=sft out_dir=$(DEMO_RUNS) $(DEMO_TRAIN)
	$(PY) -m train experiment=demo method=dpo out_dir=$(DEMO_RUNS) $(DEMO_TRAIN)
	$(PY) -m train experiment=demo method=sft_dpo out_dir=$(DEMO_RUNS) $(DEMO_TRAIN)
	$(PY) -m eval generate model=gemma3-270m data=style out_dir=$(DEMO_RUNS) $(DEMO_EVAL)
	$(PY) -m eval preference model=gemma3-270m data=style out_dir=$(DEMO_RUNS) $(DEMO_EVAL)
	@for m in sft dpo sft_dpo; do \
		$(PY) -m eval generate run=$(DEMO_RUNS)/demo-$$m $(DEMO_EVAL) && \
		$(PY) -m eval preference run=$(DEMO_RUNS)/demo-$$m $(DEMO_EVAL) || exit 1; \
	done
	$(PY) -m eval report $(DEMO_BASE) $(DEMO_RUNS)/demo-sft $(DEMO_RUNS)/demo-dpo \
		$(DEMO_RUNS)/demo-sft_dpo --out $(DEMO_OUT)

# make study: the seed 004 study on the embedded model, CPU (plan: conf/study/seed004_cpu.yaml,
# budget: conf/experiment/seed004_cpu.yaml; about an hour on 2 cores). Re-running skips the
# finished arms. Report: reports/seed004/ (tables.md + study.json; README.md there is the write-up).
STUDY ?= seed004_cpu
study: $(STAMP)
	$(PY) -m eval study run --plan $(STUDY)
	$(PY) -m eval study report --plan $(STUDY) --out reports/seed004

# make sweep SWEEP="method=sft,dpo,sft_dpo seed=0,1,2" [ARGS="model=gemma3-270m train.max_steps=50 ..."]
#   [SWEEP_NAME=name] [SWEEP_EVAL="limit=20 generate.max_new_tokens=80"]: every job of the sweep
# (Hydra's syntax; ARGS may choose hydra/launcher=joblib or submitit_slurm) trained into
# runs/<sweep name>/ (default name: the swept keys, e.g. method-seed; finished runs are skipped,
# interrupted ones resumed), each run evaluated, then runs/<sweep name>/report/: tables.md and
# study.json (each arm pooled over its seeds, paired differences) and report.html (every run).
SWEEP ?=
SWEEP_NAME ?=
SWEEP_EVAL ?=
sweep: $(STAMP)
	@test -n "$(SWEEP)" || { echo 'usage: make sweep SWEEP="method=sft,dpo seed=0,1,2" [ARGS="..."] [SWEEP_NAME=...] [SWEEP_EVAL="..."]'; exit 2; }
	$(PY) -m eval sweep $(SWEEP) $(ARGS) $(if $(SWEEP_NAME),--name $(SWEEP_NAME)) --eval "$(SWEEP_EVAL)"

# make bench: framework overhead vs plain TRL, data / eval throughput, peak RSS, the CPU lever
# (bench/run.py; about 10 minutes on 2 cores, on an otherwise idle machine).
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

# make bench-gpu: SFT / DPO tokens/s, step time, peak memory and MFU of a Gemma-3-1B-sized model,
# plain TRL defaults vs tuned settings (bench/gpu.py; needs a CUDA GPU, ~10 min per sequence length).
bench-gpu: $(STAMP)
	$(PY) bench/gpu.py $(BENCH_GPU_ARGS)

# make demo-fast: the same with the output layer trimmed to the data's tokens (model.trim_vocab;
# ~2x faster end to end, ~4x per training step; reports/demo-trim/ holds its committed report)
demo-fast:
	$(MAKE) demo DEMO_RUNS=runs/demo-trim DEMO_OUT=reports/demo-trim DEMO_TRAIN="model.trim_vocab=true" \
		DEMO_EVAL="$(DEMO_EVAL) model.trim_vocab=true" DEMO_BASE=runs/demo-trim/base-gemma3-270m-style-trim

# The report test renders in Debian's headless Chromium (+ a Korean font); installed here when
# missing and apt is usable, else that one test skips and says why.
CHROMIUM := .venv/.chromium
$(CHROMIUM): | $(STAMP)
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "test: installing chromium for the report test (Debian packages)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-nanum >/dev/null) \
		|| echo "test: could not install chromium; the browser test will skip"; \
	fi
	@touch $(CHROMIUM)

test: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check data train eval tests bench hydra_plugins

# make validate FILES="a.jsonl b.jsonl" [ARGS="--task dpo --map 거부됨=rejected"]
validate: $(STAMP)
	$(PY) -m data validate $(FILES) $(ARGS)

# make sft|dpo|sft-dpo [ARGS="model=gemma3-270m train.epochs=1 ..."]  -> runs/<name>/
# (Hydra overrides; defaults in conf/. Several GPUs: see conf/accelerate/ and the README.)
sft: $(STAMP)
	$(PY) -m train method=sft $(ARGS)

dpo: $(STAMP)
	$(PY) -m train method=dpo $(ARGS)

sft-dpo: $(STAMP)
	$(PY) -m train method=sft_dpo $(ARGS)

# make eval RUN=runs/<name> [ARGS="limit=20 generate.max_new_tokens=64"]: generations.jsonl,
# scores.json and preference.json in the run directory. RUN=base evaluates the base model
# into runs/base-<model>-<data>/ (ARGS="model=gemma3-270m data=keywords").
eval: $(STAMP)
	@test -n "$(RUN)" || { echo 'usage: make eval RUN=runs/<name>|base [ARGS="..."]'; exit 2; }
	$(PY) -m eval generate $(if $(filter base,$(RUN)),,run=$(RUN)) $(ARGS)
	$(PY) -m eval preference $(if $(filter base,$(RUN)),,run=$(RUN)) $(ARGS)

# make report RUNS="runs/base-... runs/sft-... runs/dpo-... runs/sft_dpo-..." [OUT=reports/NAME]
OUT ?= reports/latest
report: $(STAMP)
	@test -n "$(RUNS)" || { echo 'usage: make report RUNS="runs/a runs/b ..." [OUT=reports/NAME]'; exit 2; }
	$(PY) -m eval report $(RUNS) --out $(OUT)

clean:
	rm -rf .venv .pytest_cache
