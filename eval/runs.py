"""Run directories, for the eval: what it evaluates (a training run, or the base model written
into ``runs/base-<model>-<data>/`` with a config.yaml so the report treats it as a run), and the
one reader of what a run directory holds (:func:`load_run`), shared by ``eval generate`` /
``preference``, ``eval report`` and ``eval study``."""

from __future__ import annotations

import dataclasses
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from train.config import ConfigError, DataConfig, MethodConfig, ModelConfig, structured
from train.rundir import effective_state, state_note

from .config import EvalConfig


@dataclass
class Target:
    path: Path  # the weights evaluated, and where the eval writes: a run directory or one of its checkpoints
    method: str  # base | sft | dpo | sft_dpo
    model: ModelConfig
    data: DataConfig
    peft: str  # none for base
    beta: float | None  # DPO's beta, for the implicit reward
    run: Path | None = None  # the run directory (config.yaml, sft/); None: the same as path

    @property
    def run_dir(self) -> Path:
        return self.run or self.path


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


def checkpoint_of(path: Path) -> tuple[Path, str] | None:
    """``(run directory, stage)`` when ``path`` is ``<run>/checkpoints/<stage>/checkpoint-N``."""
    if (path.name.startswith("checkpoint-") and path.name[len("checkpoint-"):].isdigit()
            and path.parent.parent.name == "checkpoints" and (path.parents[2] / "config.yaml").is_file()):
        return path.parents[2], path.parent.name
    return None


def checkpoint_method(method: str | None, stage: str) -> str | None:
    """What a checkpoint of ``stage`` is: an sft_dpo run's SFT-stage checkpoints are SFT models."""
    return "sft" if method == "sft_dpo" and stage == "sft" else method


def _from_checkpoint(path: Path, run: Path, stage: str) -> Target:
    """A checkpoint saved while training (``train.save_steps``): the run's config, these weights. A
    checkpoint of an sft_dpo run's SFT stage is an SFT model; of its DPO stage, DPO against run/sft."""
    from train.rundir import COMPLETE

    if not (path / COMPLETE).is_file():
        raise ConfigError(f"run: {path} is a checkpoint cut off while being written (no {COMPLETE})")
    t = _from_run(run, finished=False)
    return dataclasses.replace(t, path=path, run=run, method=checkpoint_method(t.method, stage))


def _from_run(path: Path, finished: bool = True) -> Target:
    ckpt = checkpoint_of(path)
    if ckpt is not None:
        return _from_checkpoint(path, *ckpt)
    conf = path / "config.yaml"
    if not conf.is_file():
        raise ConfigError(f"run: {path} has no config.yaml (not a run directory, nor one of its "
                          "checkpoints/<stage>/checkpoint-N)")
    raw = OmegaConf.load(conf)
    if raw.get("method", {}).get("name") == "base":
        return Target(path, "base", structured(ModelConfig, raw.model), structured(DataConfig, raw.data), "none", None)
    try:
        status = read_json(path / "status.json")
    except RunError:
        status = {}
    state = effective_state(status) if status else None
    if finished and state != "done":
        note = f"; {state_note(status)}" if status and state_note(status) else ""
        raise ConfigError(f"run: {path} is not finished (state {state!r}{note}); finish it with resume=true")
    # Only the sections the eval needs are typed: a run trained before a later key was added
    # (say train.sigterm_grace_s) must stay readable.
    method: MethodConfig = structured(MethodConfig, raw.method)
    beta = method.dpo.beta if method.dpo is not None else None
    return Target(path, method.name, structured(ModelConfig, raw.model), structured(DataConfig, raw.data),
                  raw.peft.name, beta)


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

    saved = t.run_dir / "vocab.json"
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
            policy.load_adapter(str(t.run_dir / "sft"), adapter_name="ref")
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
    _, ref = load_model(t.model.weights_at(t.run_dir / "sft") if t.method == "sft_dpo" else t.model, device, dtype=dtype)
    yield ref.eval()


# --- reading a run directory ------------------------------------------------------------------

RUN_FILES = ("config.yaml", "status.json", "data.json", "metrics.jsonl", "generations.jsonl",
             "scores.json", "preference.json")


class RunError(Exception):
    """A run directory that cannot be read; the message is the reason, shown to the user."""


@dataclass
class Run:
    """Everything a run directory holds, as read once; any file may be missing."""

    path: Path
    name: str
    method: str
    config: dict = field(default_factory=dict)
    config_text: str = ""
    status: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)
    generations: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)
    preference: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.method})"

    @property
    def state(self) -> str | None:
        """status.json's state, except a run whose writer is gone: 'crashed' (train.rundir)."""
        return effective_state(self.status) if self.status else None

    def per_prompt(self, metric: str) -> dict:
        """``{prompt id: value}`` of a registered metric, the mean over the prompt's samples:
        ``preference.*`` from preference.json's rows, every other metric from scores.json's."""
        from .metrics.preference import SUMMARY
        from .metrics.registry import REGISTRY

        m = REGISTRY.get(metric)
        if m is None:
            return {}
        values: dict = {}
        if m.group == "preference":
            key = SUMMARY[m.field][0]
            for row in self.preference.get("rows") or []:
                if isinstance(row, dict) and row.get(key) is not None:
                    values.setdefault(str(row.get("id")), []).append(float(row[key]))
        else:
            for row in self.scores.get("rows") or []:
                v = m.get(row) if isinstance(row, dict) else None
                if v is not None and not isinstance(v, (dict, list)):
                    values.setdefault(str(row.get("prompt_id", row.get("id"))), []).append(float(v))
        return {k: sum(v) / len(v) for k, v in values.items()}


def read_json(path: Path) -> dict:
    """A JSON object, ``{}`` when the file is missing; :class:`RunError` when it is broken."""
    if not path.exists():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunError(f"{path.name}: {e}") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path.name}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON-lines file (train.rundir's rule: a last line cut off mid-write is
    dropped with a warning); any other bad line is a :class:`RunError` naming it."""
    from train.rundir import read_jsonl as read_lines

    if not path.exists():
        return []
    try:
        rows = read_lines(path, warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))
    except ValueError as e:
        raise RunError(str(e)) from None
    except OSError as e:
        raise RunError(f"{path.name}: {e}") from None
    return [row for row in rows if isinstance(row, dict)]


def load_run(path: str | Path) -> Run:
    """Read what exists of a run directory; raises :class:`RunError` when it is not one."""
    path = Path(path)
    if not path.exists():
        raise RunError("no such directory")
    if not path.is_dir():
        raise RunError("not a directory")
    if not any((path / f).exists() for f in RUN_FILES):
        raise RunError(f"not a run directory (none of {', '.join(RUN_FILES)})")
    config, config_text = {}, ""
    ckpt = checkpoint_of(path)
    home = ckpt[0] if ckpt else path  # a checkpoint's config and status are its run's
    if (home / "config.yaml").exists():
        try:
            config_text = (home / "config.yaml").read_text(encoding="utf-8")
            config = yaml.safe_load(config_text) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise RunError(f"config.yaml: {e}") from None
        if not isinstance(config, dict):
            raise RunError("config.yaml: expected a mapping")
    method = (config.get("method") or {}).get("name") if isinstance(config.get("method"), dict) else None
    name = str(config.get("name") or home.name)
    if ckpt:
        name = f"{name}@{ckpt[1]}-{path.name[len('checkpoint-'):]}"
        method = checkpoint_method(method, ckpt[1])
    return Run(
        path=path, name=name, method=str(method or "?"),
        config=config, config_text=config_text,
        status=read_json(home / "status.json"), data=read_json(home / "data.json"),
        metrics=read_jsonl(home / "metrics.jsonl"), generations=read_jsonl(path / "generations.jsonl"),
        scores=read_json(path / "scores.json"), preference=read_json(path / "preference.json"),
    )
