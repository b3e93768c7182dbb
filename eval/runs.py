"""What the eval evaluates: a training run directory, or the base model (written into
``runs/base-<model>-<data>/`` with a config.yaml so the report treats it as a run)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from train.config import Config, ConfigError, DataConfig, ModelConfig, structured

from .config import EvalConfig


@dataclass
class Target:
    path: Path
    method: str  # base | sft | dpo | sft_dpo
    model: ModelConfig
    data: DataConfig
    peft: str  # none for base
    beta: float | None  # DPO's beta, for the implicit reward


def target(cfg: EvalConfig) -> Target:
    if cfg.run:
        return _from_run(Path(cfg.run))
    trimmed = "-trim" if cfg.model.trim_vocab else ""  # never mixed up with the full-vocabulary base
    path = Path(cfg.out_dir) / f"base-{cfg.model.name}-{cfg.data.name}{trimmed}"
    path.mkdir(parents=True, exist_ok=True)
    conf = {"name": path.name, "method": {"name": "base"}, "model": OmegaConf.structured(cfg.model),
            "peft": {"name": "none"}, "data": OmegaConf.structured(cfg.data), "seed": cfg.seed}
    (path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(conf)), encoding="utf-8")
    (path / "status.json").write_text(json.dumps({"state": "done", "stages": {}}) + "\n", encoding="utf-8")
    return Target(path, "base", cfg.model, cfg.data, "none", None)


def _from_run(path: Path) -> Target:
    conf = path / "config.yaml"
    if not conf.is_file():
        raise ConfigError(f"run: {path} has no config.yaml (not a run directory)")
    raw = OmegaConf.load(conf)
    if raw.get("method", {}).get("name") == "base":
        return Target(path, "base", structured(ModelConfig, raw.model), structured(DataConfig, raw.data), "none", None)
    status = json.loads((path / "status.json").read_text(encoding="utf-8")) if (path / "status.json").exists() else {}
    if status.get("state") != "done":
        raise ConfigError(f"run: {path} is not finished (state {status.get('state')!r}); finish it with resume=true")
    c: Config = structured(Config, raw)
    beta = c.method.dpo.beta if c.method.dpo is not None else None
    return Target(path, c.method.name, c.model, c.data, c.peft.name, beta)


def load_policy(t: Target, device: str, dtype: str | None = None):
    """(tokenizer, model) as trained: base + adapter, or the full weights in the run; in ``dtype``
    (default: the model config's for the device)."""
    from train.models import load_model, qlora_quantization

    if t.method == "base":
        return _trimmed(t, *load_model(t.model, device, dtype=dtype))
    if t.peft == "none":
        return load_model(t.model.weights_at(t.path), device, dtype=dtype)
    from peft import PeftModel

    quant = qlora_quantization(dtype or "bfloat16") if t.peft == "qlora" else {}
    tok, base = _trimmed(t, *load_model(t.model, device, dtype=dtype, **quant))
    return tok, PeftModel.from_pretrained(base, str(t.path)).eval()


def _trimmed(t: Target, tok, model):
    """``model.trim_vocab``: the output layer restricted as in training (the run's vocab.json;
    for the base model the same set, built from the data files, written beside its outputs)."""
    if not t.model.trim_vocab:
        return tok, model
    from train import trim

    saved = t.path / "vocab.json"
    if saved.is_file():
        keep = trim.read_ids(saved)
    else:
        files = trim.data_files(t.data)
        keep = trim.vocabulary(tok, files, t.data.columns)
        trim.write(saved, keep, len(tok), files)
    trim.restrict(model, keep)
    return tok, model


@contextmanager
def reference(t: Target, policy, device: str, dtype: str | None = None):
    """The DPO reference of a run, as trained against: the base model for ``dpo`` (the
    adapter disabled, or the base weights), the SFT result for ``sft_dpo``."""
    from train.models import load_model

    if t.peft != "none":
        if t.method == "sft_dpo":
            policy.load_adapter(str(t.path / "sft"), adapter_name="ref")
            policy.set_adapter("ref")
            try:
                yield policy
            finally:
                policy.set_adapter("default")
                policy.delete_adapter("ref")
        else:
            with policy.disable_adapter():
                yield policy
        return
    _, ref = load_model(t.model.weights_at(t.path / "sft") if t.method == "sft_dpo" else t.model, device, dtype=dtype)
    yield ref.eval()
