# Every target runs in .venv/ and depends on the install stamp, so on a fresh clone any
# target installs first by itself.
PY      := .venv/bin/python
STAMP   := .venv/.installed
PYTEST_ARGS ?=
# TORCH_BUILD=cu128: that CUDA build of torch instead of the one chosen for the driver
TORCH_BUILD ?=

.PHONY: install demo demo-fast study sweep bench bench-generate bench-gpu gpu-check wheels mirror test test-slow test-min lint validate \
	sft dpo sft-dpo eval report clean

install: $(STAMP)

# The tested versions of constraints.txt. torch first (scripts/install_torch.py): the CPU build
# where there is no GPU (torch 2.13.0 lies on this machine's disk), else the CUDA build that suits
# the driver, after which torch must see the GPU or the install stops with one line saying why.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv .venv
	$(PY) scripts/install_torch.py $(if $(TORCH_BUILD),--build $(TORCH_BUILD))
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# make demo: the whole comparison on the embedded Gemma-3 270M, offline, on CPU (budget in
# conf/experiment/demo.yaml and DEMO_EVAL; under 30 min on 2 cores, the start model's first build included):
# start, SFT, DPO, SFT->DPO on the style data, sampled answers on 20 held-out prompts, scores,
# preference accuracy, reports/demo/report.html.
DEMO_RUNS  ?= runs/demo
DEMO_OUT   ?= reports/demo
DEMO_TRAIN ?=
DEMO_EVAL  ?= limit=20 generate.do_sample=true generate.temperature=1.0 generate.top_k=64 generate.top_p=0.95 \
	generate.num_samples=2 generate.max_new_tokens=192 generate.batch_size=40
DEMO_BASE  ?= $(DEMO_RUNS)/base-gemma3-270m-chat-style
demo: $(STAMP)
	$(PY) -m train experiment=demo method=sft out_dir=$(DEMO_RUNS) $(DEMO_TRAIN)
	$(PY) -m train experiment=demo method=dpo out_dir=$(DEMO_RUNS) $(DEMO_TRAIN)
	$(PY) -m train experiment=demo method=sft_dpo out_dir=$(DEMO_RUNS) $(DEMO_TRAIN)
	$(PY) -m eval generate model=gemma3-270m-chat data=style out_dir=$(DEMO_RUNS) $(DEMO_EVAL)
	$(PY) -m eval preference model=gemma3-270m-chat data=style out_dir=$(DEMO_RUNS) $(DEMO_EVAL)
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
	$(PY) -m eval study report --plan $(STUDY)

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

# make bench-generate: eval generate's speed levers one by one against the path before them
# (bench/generate.py, 8 prompts x 2 samples x 128 tokens, ~20 min on 2 cores); the study's workload:
# make bench-generate BENCH_GEN_ARGS="--prompts 35 --samples 4 --new-tokens 384 --levers key --vocab full"
BENCH_GEN_ARGS ?= --prompts 8 --samples 2 --new-tokens 128 --levers all --trimmed-levers key
bench-generate: $(STAMP)
	$(PY) bench/generate.py $(BENCH_GEN_ARGS) --out bench/results/generate-$$(date +%F).json

# make bench-gpu: SFT / DPO tokens/s, step time, peak memory and MFU of a Gemma-3-1B-sized model,
# plain TRL defaults vs tuned settings (bench/gpu.py; needs a CUDA GPU, ~10 min per sequence length).
bench-gpu: $(STAMP)
	$(PY) bench/gpu.py $(BENCH_GPU_ARGS)

# make gpu-check: the first run on a GPU machine, <= 5 min on one H100/H200 (bench/gpu_check.py):
# LoRA / QLoRA / full SFT->DPO and one-process FSDP smoke runs of a random Gemma-3-1B-sized model,
# eval generate + preference, then bench/gpu.py plain vs tuned SFT at 1024 tokens; JSON lines in
# bench/results/gpu-check-<date>.jsonl as it goes. The wheels in .whl/ (make wheels) are installed
# first where present, as on the lent GPU machine (no make there: it runs
# `python3 bench/gpu_check.py --wheels .whl --out $$OUT`, carrying .whl; see the README).
# make gpu-check DEVICE=cpu rehearses it with the tiny model in the mirrored venv (make mirror):
# Python 3.12 + the GPU machine's packages (torch 2.11, transformers 5.17) + the wheels.
DEVICE    ?= cuda
GPU_CHECK ?=
WHEELS    := .whl
MIRROR    := .venv-mirror
GPU_PY    ?= $(if $(filter cpu,$(DEVICE)),$(MIRROR)/bin/python,$(if $(wildcard $(PY)),$(PY),python3))
gpu-check: $(if $(filter cpu,$(DEVICE)),$(MIRROR)/.installed $(WHEELS)/.done)
	$(GPU_PY) bench/gpu_check.py --device $(DEVICE) $(if $(wildcard $(WHEELS)/*.whl),--wheels $(WHEELS)) $(GPU_CHECK)

# make test-min: the tests of the CUDA paths, training and eval in the mirrored venv, i.e. at the
# lower bounds of pyproject.toml (torch 2.11, transformers 5.17, the carried wheels)
MIN_TESTS ?= tests/test_cuda_paths.py tests/test_train_config.py tests/test_train_run.py tests/test_trim.py \
	tests/test_sft_masking.py tests/test_sft_trl_smoke.py tests/test_dpo_trl_smoke.py tests/test_eval_run.py \
	tests/test_bench_gpu.py tests/test_gpu_check.py
test-min: $(MIRROR)/.installed $(WHEELS)/.done
	PYTHONPATH=$$($(MIRROR)/bin/python bench/gpu_check.py _site $(WHEELS)) \
		$(MIRROR)/bin/python -m pytest -q -p no:cacheprovider $(MIN_TESTS) $(PYTEST_ARGS)

# make wheels: what the GPU machine lacks (bench/device/wheels.txt) at the tested versions, for
# Python 3.12 on x86-64 Linux, into .whl/ (git-ignored); at most 60 MiB, or bitsandbytes stays out.
wheels: $(WHEELS)/.done
$(WHEELS)/.done: bench/device/wheels.txt constraints.txt | $(STAMP)
	$(PY) bench/device/wheels.py --out $(WHEELS)
	@touch $@

# make mirror: the venv that mirrors the GPU machine (bench/device/image.txt; ~5 GB: PyPI's torch
# 2.11.0 is the machine's own CUDA build, and runs on a CPU)
PYTHON312 ?= $(shell pyenv prefix 3.12 >/dev/null 2>&1 && echo "$$(pyenv prefix 3.12)/bin/python" || echo python3.12)
mirror: $(MIRROR)/.installed
$(MIRROR)/.installed: bench/device/image.txt
	@test -x $(MIRROR)/bin/python || $(PYTHON312) -m venv $(MIRROR)
	$(MIRROR)/bin/python -m pip install -q --no-cache-dir -r bench/device/image.txt
	@touch $@

# make demo-fast: the same with the output layer trimmed to the data's tokens (model.trim_vocab;
# ~2x faster end to end, ~4x per training step; writes reports/demo-trim/)
demo-fast:
	$(MAKE) demo DEMO_RUNS=runs/demo-trim DEMO_OUT=reports/demo-trim DEMO_TRAIN="model.trim_vocab=true" \
		DEMO_EVAL="$(DEMO_EVAL) model.trim_vocab=true" DEMO_BASE=runs/demo-trim/base-gemma3-270m-chat-style-trim

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

# make test-slow: the real-model tests and the gpu-check rehearsal (make gpu-check DEVICE=cpu)
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check data train eval tests bench scripts hydra_plugins

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
	rm -rf .venv .pytest_cache $(WHEELS) $(MIRROR)
