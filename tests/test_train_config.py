"""Every shipped config composes and checks; a bad config fails at start-up with one line
that names the key, before any data or model is read."""

import itertools

import pytest
from conftest import ROOT, compose_config, run_cli

from train.config import ConfigError, typed

GROUPS = {g: sorted(p.stem for p in (ROOT / "conf" / g).glob("*.yaml")) for g in ("model", "method", "peft", "data")}


def test_the_groups_ship_what_the_readme_promises():
    assert GROUPS["model"] == ["gemma3-1b-it", "gemma3-270m", "gemma3-270m-chat", "tiny"]
    assert GROUPS["method"] == ["dpo", "dpo_nll", "ipo", "kto", "sft", "sft_dpo", "sigmoid_norm"]
    assert GROUPS["peft"] == ["lora", "none", "qlora"]
    assert {"style", "keywords"} <= set(GROUPS["data"])
    assert (ROOT / "conf" / "experiment" / "seed004.yaml").exists()
    assert (ROOT / "conf" / "experiment" / "warmup.yaml").exists()


# every model, peft and data option with each kind of method (SFT, DPO, both, KTO); the DPO-family
# presets differ from dpo only inside method.dpo, and compose on their own below
KINDS = ["sft", "dpo", "sft_dpo", "kto"]


@pytest.mark.parametrize("method", GROUPS["method"])
def test_every_method_preset_composes_and_checks(method):
    c = typed(compose_config("model=tiny", f"method={method}"))
    assert c.method.name == method and c.run_dir == f"runs/{method}-tiny-lora-style-s0"


@pytest.mark.parametrize("model,method,peft,data", itertools.product(GROUPS["model"], KINDS, GROUPS["peft"], GROUPS["data"]))
def test_every_combination_composes_and_checks(model, method, peft, data):
    cfg = compose_config(f"model={model}", f"method={method}", f"peft={peft}", f"data={data}", "device=cpu")
    if peft == "qlora":  # the two GPU-only cases must say so on a CPU
        with pytest.raises(ConfigError, match=r"^peft\.name: qlora needs a CUDA GPU"):
            typed(cfg)
    elif model == "gemma3-1b-it":
        with pytest.raises(ConfigError, match=r"^model\.allow_cpu: gemma3-1b-it is meant for a GPU.*model=gemma3-270m"):
            typed(cfg)
    else:
        c = typed(cfg)
        assert c.run_dir == f"runs/{method}-{model}-{peft}-{data}-s0"
        assert (c.method.sft is not None) == (method in ("sft", "sft_dpo"))
        assert (c.method.dpo is not None) == (method in ("dpo", "sft_dpo", "ipo", "dpo_nll", "sigmoid_norm"))
        assert c.method.stages == {"sft_dpo": ["sft", "dpo"], "sft": ["sft"], "kto": ["kto"]}.get(method, ["dpo"])


def test_seed004_preset_is_seed_004s_setup():
    c = typed(compose_config("experiment=seed004", "method=sft_dpo", "model.allow_cpu=true"))
    assert (c.model.path, c.train.batch_size, c.train.epochs) == ("google/gemma-3-1b-it", 8, 5)
    assert c.data.train == ["data/keywords/train.jsonl"] and c.data.val == ["data/keywords/test.jsonl"]
    assert c.data.val_fraction == 0 and c.name == "seed004-sft_dpo-gemma3-1b-it-lora-s0"


@pytest.mark.parametrize("overrides,message", [
    (["+trian.epochs=3"], r"^trian: unknown key"),
    (["+train.epoch=3"], r"^train\.epoch: unknown key"),
    (["train.batch_size=eight"], r"^train\.batch_size: Value 'eight'"),
    (["train.batch_size=0"], r"^train\.batch_size: 0 must be > 0"),
    (["method=sft_dpo", "method.sft=null"], r"^method\.sft: method sft_dpo needs an SFT stage"),
    (["method=dpo", "method.dpo.loss_type=[sigmod]"], r"^method\.dpo\.loss_type: 'sigmod' is not one of"),
    (["method=sft", "method.sft=null"], r"^method\.sft: no stage to train"),
    (["method=dpo", "method.sft={learning_rate: 1e-4, epochs: null}"], r"^method\.sft: method dpo has no SFT stage"),
    (["method=dpo_nll", "method.dpo.loss_weights=[1.0]"], r"^method\.dpo\.loss_weights: 1 weight\(s\) for 2 loss type"),
    (["method=kto", "method.kto.loss_type=sigmoid"], r"^method\.kto\.loss_type: 'sigmoid' is not one of kto"),
    (["method=kto", "train.batch_size=1"], r"^train\.batch_size: KTO estimates its KL term"),
    (["method=kto", "train.group_by_length=true"], r"^train\.group_by_length: KTO estimates its KL term"),
    (["train.report_to=[tensorbord]"], r"^train\.report_to: 'tensorbord' is not one of"),
    (["resume=maybe"], r"^resume: 'maybe' is not one of false, true, auto"),
    (["model.dtype=float16"], r"^model\.dtype: 'float16'.*bfloat16"),
    (["peft=qlora"], r"^peft\.name: qlora needs a CUDA GPU"),
    (["peft.bits=4"], r"^peft\.bits: 4-bit loading is QLoRA"),
    (["data.val_fraction=1.5"], r"^data\.val_fraction: 1\.5 is not in \[0, 1\)"),
    (["train.early_stopping_patience=2", "data.val_fraction=0"], r"^train\.early_stopping_patience: needs a validation set"),
    (["resume=true", "overwrite=true"], r"^resume: resume=true and overwrite=true contradict"),
    (["name=a/b"], r"^name: 'a/b' is not a usable"),
])
def test_bad_configs_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        typed(compose_config("model=tiny", *overrides))


def test_the_cli_fails_in_one_line_before_loading_anything(tmp_path):
    r = run_cli("train", "model=tiny", "+train.epoch=3", f"out_dir={tmp_path}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["config error: train.epoch: unknown key (misspelled? see conf/)"]
    assert not any(tmp_path.iterdir())  # no run directory


def test_the_default_model_on_a_cpu_machine_points_at_the_embedded_one(tmp_path):
    r = run_cli("train", "method=dpo", f"out_dir={tmp_path}")  # what `make dpo` runs
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert 'make dpo ARGS="model=gemma3-270m"' in line and "Traceback" not in r.stderr


def test_missing_data_file_fails_in_one_line_without_a_run_dir(tmp_path):
    r = run_cli("train", "model=tiny", "data.train=[nowhere.jsonl]", f"out_dir={tmp_path}")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "nowhere.jsonl" in r.stderr.strip().splitlines()[-1]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("on", [True, False])
def test_group_by_length_reaches_the_trainer_under_either_transformers_name(tmp_path, on):
    """train.group_by_length: batches of similar lengths (the warm-up build trains 35% faster per
    step with it); the field is train_sampling_strategy in recent transformers, a boolean before."""
    from trl import SFTConfig

    from train.recipes import sampling

    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, **sampling(on))
    if hasattr(args, "train_sampling_strategy"):
        assert args.train_sampling_strategy == ("group_by_length" if on else "random")
    else:
        assert args.group_by_length is on
    assert typed(compose_config("experiment=warmup")).train.group_by_length is True
