"""Which reference a preference stage (DPO family, KTO) was trained against, and whether its first
logged step agrees with that.

``status.json`` gets, per preference stage:

* ``reference``: the base model (``model``: hub id, local path, GGUF package or ``tiny``) with the
  sha256 of its weight files (``model_files``; none for the tiny model, whose random weights are
  built in memory from ``model.tiny``), and for SFT→DPO the SFT stage's result it continues from
  (``sft``: its path, ``sft_files``: the sha256 of its adapter or weight files); ``sha256`` is
  one digest over all of those files;
* ``step0``: the first logged step against what the loss predicts when the policy still equals
  its reference (every log-ratio 0): ln 2 for ``sigmoid``, 1/(4·beta²) for ``ipo``, 0.5 for KTO,
  and rewards 0. When the step is off, the reference is not the model training started from
  (a wrong checkpoint, a reloaded base after SFT, a stale precomputed reference): a warning in
  train.log and in ``eval report`` (:func:`warnings`).

TRL has no notion of either, hence this module.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

log = logging.getLogger("sftdpo")

WEIGHTS = ("*.safetensors", "*.bin", "*.gguf")  # model weight files in a model directory
ADAPTER = ("adapter_model.safetensors", "adapter_model.bin", "adapter_config.json")
LOSS_TOL = 0.01  # relative to max(1, expected): bf16 and kernel choices move the first loss a little
REWARD_TOL = 0.01
LN2 = math.log(2)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digests(folder: Path, names) -> dict[str, str]:
    """``{file name: sha256}`` of the files in ``folder`` matching any of ``names`` (globs)."""
    files = sorted({p for pattern in names for p in Path(folder).glob(pattern) if p.is_file()})
    return {p.name: sha256(p) for p in files}


def reference(cfg, previous: Path | None) -> dict:
    """What a preference stage starting from ``previous`` (the SFT stage's output, or None for the
    base model) is trained against. Our recipes make the starting policy the reference."""
    from .models import weights_dir

    base = weights_dir(cfg.model)
    ref = {"kind": "sft" if previous is not None else "base", "model": cfg.model.path or cfg.model.name,
           "model_files": digests(base, WEIGHTS) if base is not None else {}}
    if base is None:
        ref["note"] = f"random weights built in memory from model.tiny (seed {dict(cfg.model.tiny).get('seed', 0)})"
    if previous is not None:
        ref["sft"] = str(previous)
        ref["sft_files"] = digests(previous, ADAPTER if cfg.peft.name != "none" else WEIGHTS)
    files = [f"model/{k}:{v}" for k, v in ref["model_files"].items()]
    files += [f"sft/{k}:{v}" for k, v in ref.get("sft_files", {}).items()]
    ref["sha256"] = hashlib.sha256("\n".join(files).encode()).hexdigest()
    return ref


# --- the first step ------------------------------------------------------------------------------

# The loss of each TRL DPO loss type when every log-ratio is 0 (trl/trainer/dpo_trainer.py, default
# label_smoothing 0): sigmoid-shaped ones -log σ(0) = ln 2, hinge 1 - 0, the squared ones their target.
# None: it depends on the data (sft: the NLL of the chosen answers; exo_pair: log 0 at label_smoothing 0).
def _dpo_step0(loss_type: str, beta: float) -> float | None:
    return {
        "sigmoid": LN2, "sigmoid_norm": LN2, "robust": LN2, "aot": LN2, "aot_unpaired": LN2,
        "bco_pair": 2 * LN2, "nca_pair": 2 * LN2, "hinge": 1.0, "apo_zero": 1.0, "apo_down": 1.0,
        "ipo": 1 / (4 * beta ** 2), "sppo_hard": 1 / (2 * beta ** 2), "discopop": (LN2 + 1) / 2,
    }.get(loss_type)


def expected_loss(cfg, stage: str) -> float | None:
    """The first step's loss the stage's loss predicts, or None where it depends on the data."""
    st = getattr(cfg.method, stage)
    if stage == "kto":  # every example's loss is 1 - σ(0) = 0.5, times its weight
        return 0.5 * st.desirable_weight if st.desirable_weight == st.undesirable_weight else None
    values = [_dpo_step0(t, st.beta) for t in st.loss_type]
    weights = st.loss_weights or [1.0] * len(values)
    return None if None in values else sum(w * v for w, v in zip(weights, values))


def step0(cfg, stage: str, rows: list[dict]) -> dict | None:
    """The check of the stage's first logged training step (``rows``: metrics.jsonl), or None
    before it has been logged."""
    first = next((r for r in rows if r.get("stage") == stage and r.get("loss") is not None), None)
    if first is None:
        return None
    expected = expected_loss(cfg, stage)
    rewards = {k: first[k] for k in ("rewards/chosen", "rewards/rejected", "rewards/margins", "kl")
               if isinstance(first.get(k), (int, float))}
    off = []
    if expected is not None and abs(first["loss"] - expected) > LOSS_TOL * max(1.0, abs(expected)):
        off.append(f"loss {first['loss']:.4f}, expected {expected:.4f}")
    off += [f"{k} {v:.4f}, expected 0" for k, v in rewards.items() if abs(v) > REWARD_TOL]
    return {"step": first.get("step"), "loss": first["loss"], "expected_loss": expected, "rewards": rewards,
            "ok": not off, "off": "; ".join(off)}


def warning(stage: str, check: dict | None) -> str | None:
    if not check or check.get("ok", True):
        return None
    return (f"in the {stage} stage the first logged step (step {check.get('step')}) is not what the loss "
            f"predicts while the policy equals its reference ({check.get('off')}): the reference may not be "
            "the model training started from")


def warnings(name: str, status: dict) -> list[str]:
    """The step-0 warnings of a run's status.json, for ``eval report``."""
    stages = (status or {}).get("stages") or {}
    out = [warning(stage, s.get("step0")) for stage, s in stages.items() if isinstance(s, dict)]
    return [f"{name}: {w}." for w in out if w]
