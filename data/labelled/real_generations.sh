#!/usr/bin/env bash
# Real generations for data/labelled/real_loops.jsonl: base / SFT / DPO / SFT->DPO on both tasks,
# greedy and sampled, 384 new tokens. Embedded 270M, trimmed vocabulary (CPU).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
R=runs/labelled
T="experiment=seed004_cpu out_dir=$R overwrite=true"

train() { local name=$1; shift; [ -f $R/$name/status.json ] && grep -q '"done"' $R/$name/status.json && return 0; $PY -m train $T name=$name "$@"; }
train kw-sft    method=sft method.sft.epochs=5
train kw-sft1   method=sft method.sft.epochs=1
train kw-dpo    method=dpo method.dpo.epochs=2
train kw-sftdpo method=sft_dpo method.sft.epochs=2 method.dpo.epochs=1
train st-sft    data=style method=sft method.sft.epochs=2
train st-dpo    data=style method=dpo method.dpo.epochs=1
train st-sftdpo data=style method=sft_dpo method.sft.epochs=2 method.dpo.epochs=1
G="limit=10 generate.max_new_tokens=384 generate.batch_size=10"
S="generate.do_sample=true generate.temperature=1.0 generate.top_k=64 generate.top_p=0.95 seed=1"
gen() { # $1 = dir to copy from, $2 = label, rest = args
  local dir=$1 label=$2; shift 2
  [ -f $R/out/$label.jsonl ] && return 0
  $PY -m eval generate "$@"
  mkdir -p $R/out; cp $dir/generations.jsonl $R/out/$label.jsonl
}
for task in kw st; do
  data=$([ $task = kw ] && echo keywords || echo style)
  for dec in greedy sampled; do
    extra=$([ $dec = sampled ] && echo "$S" || echo "")
    gen $R/base-$dec/base-gemma3-270m-$data-trim $task-base-$dec model=gemma3-270m model.trim_vocab=true data=$data out_dir=$R/base-$dec $G $extra
    for arm in sft dpo sftdpo $([ $task = kw ] && echo sft1); do
      gen $R/$task-$arm $task-$arm-$dec run=$R/$task-$arm $G $extra
    done
  done
done
echo ALL DONE
