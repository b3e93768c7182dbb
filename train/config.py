"""Typed configuration objects. Values live in ``conf/``; these classes only give them a
schema so a misspelled key or a wrong type fails at start-up, naming the key."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from .naming import register


class ConfigError(ValueError):
    """A bad configuration value: one line that starts with the key."""


MODEL_SOURCES = ("hub", "gguf", "tiny", "warmup")
DTYPES = ("auto", "bfloat16", "float32")


@dataclass
class ModelConfig:
    name: str = MISSING
    # hub: from_pretrained(path) — a hub id or a local directory
    # gguf: a PyPI package shipping a GGUF file, converted once into cache_dir
    # tiny: a random Gemma-3 built from ``tiny`` (tests)
    # warmup: a chat model built once into cache_dir by ``python -m train <build>`` (SFT on an
    #   instruction set, merged into full weights); ``path``, when set, is that model already built
    source: str = MISSING
    path: str = MISSING
    # auto = bfloat16 on CUDA, float32 on CPU. Never float16: Gemma-3 activations overflow it.
    dtype: str = MISSING
    # null: keep the tokenizer's template; "gemma3": attach the official Gemma-3 template
    # when the tokenizer has none (the GGUF base model ships without one).
    chat_template: Optional[str] = MISSING
    cache_dir: str = MISSING
    # false: training on CPU is refused with a hint (hours per epoch for the 1B)
    allow_cpu: bool = True
    # true: the output layer is restricted to the tokens of the data files (CPU studies; see train/trim.py)
    trim_vocab: bool = False
    tiny: dict[str, Any] = field(default_factory=dict)
    # source warmup: the overrides of `python -m train` that build the model (conf/model/*-chat.yaml)
    build: list[str] = field(default_factory=list)
    # token -> token: the first's embedding row (and output row) starts as a copy of the second's
    # (a base model's untrained chat-template tokens; see conf/experiment/warmup.yaml)
    token_init: dict[str, str] = field(default_factory=dict)

    def check(self, prefix: str = "model") -> None:
        """Raise :class:`ConfigError` naming the key for values the schema alone cannot catch."""
        if self.source not in MODEL_SOURCES:
            raise ConfigError(f"{prefix}.source: {self.source!r} is not one of {', '.join(MODEL_SOURCES)}")
        if self.dtype not in DTYPES:
            hint = " (Gemma-3 overflows in float16; use bfloat16)" if self.dtype in ("float16", "fp16", "half") else ""
            raise ConfigError(f"{prefix}.dtype: {self.dtype!r} is not one of {', '.join(DTYPES)}{hint}")
        if self.chat_template not in (None, "gemma3"):
            raise ConfigError(f"{prefix}.chat_template: {self.chat_template!r} is not null or 'gemma3'")
        if self.source == "warmup" and not self.path and not self.build:
            raise ConfigError(f"{prefix}.build: a warmup model needs the overrides that build it (or {prefix}.path)")

    def weights_at(self, path) -> ModelConfig:
        """This model with its weights read from ``path`` (a run's full fine-tuned weights)."""
        return dataclasses.replace(self, source="hub", path=str(path))


PEFT_KINDS = ("lora", "qlora", "none")
# A method is the stages its config fills in (conf/method/*.yaml), in this order; its name is a label.
STAGE_KINDS = ("sft", "dpo", "kto")
PREFERENCE_STAGES = ("dpo", "kto")  # trained against a reference (train/lineage.py records which)
# the stages of the methods the eval knows by name (eval/runs.py: the reference of sft_dpo is its SFT result)
STAGES_OF = {"sft": ["sft"], "dpo": ["dpo"], "sft_dpo": ["sft", "dpo"]}
DEVICES = ("auto", "cpu", "cuda")
ON_ERROR = ("fail", "skip")
# TRL 1.x DPOConfig.loss_type values (checked here so a typo fails before any model loads)
DPO_LOSSES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)
KTO_LOSSES = ("kto", "apo_zero_unpaired")  # TRL 1.x KTOConfig.loss_type
# train.report_to: transformers' integrations we document; each needs its package installed
TRACKERS = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb", "mlflow": "mlflow"}
SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
    "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay",
)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; other values as they are."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class PeftConfig:
    name: str = MISSING
    r: int = MISSING
    alpha: int = MISSING
    dropout: float = MISSING
    target_modules: Any = MISSING  # "all-linear" or a list of module names
    bits: Optional[int] = MISSING


@dataclass
class DataConfig:
    name: str = MISSING
    train: list[str] = MISSING
    test: list[str] = MISSING
    val: list[str] = MISSING
    val_fraction: float = MISSING
    columns: dict[str, str] = MISSING
    on_error: str = MISSING
    limit: Optional[int] = MISSING
    fraction: float = MISSING


@dataclass
class TrainConfig:
    epochs: float = MISSING
    max_steps: int = MISSING
    batch_size: int = MISSING
    grad_accum: int = MISSING
    max_length: int = MISSING
    lr_scheduler: str = MISSING
    warmup: float = MISSING
    weight_decay: float = MISSING
    max_grad_norm: float = MISSING
    logging_steps: int = MISSING
    eval_steps: int = MISSING
    save_steps: int = MISSING
    save_total_limit: Optional[int] = MISSING
    early_stopping_patience: Optional[int] = MISSING
    gradient_checkpointing: bool = MISSING
    group_by_length: bool = MISSING
    packing: bool = MISSING
    stop_at_step: Optional[int] = MISSING
    sigterm_grace_s: float = MISSING
    # Defaults here only so a run directory written before these keys existed still loads (eval reads
    # its config.yaml); the values every new run uses are in conf/config.yaml.
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    report_online: bool = False


@dataclass
class SFTStage:
    learning_rate: float = MISSING
    epochs: Optional[float] = MISSING


@dataclass
class DPOStage:
    learning_rate: float = MISSING
    epochs: Optional[float] = MISSING
    beta: float = MISSING
    loss_type: list[str] = MISSING
    loss_weights: Optional[list[float]] = None  # None in code only for run directories older than this key
    precompute_ref_log_probs: bool = MISSING


@dataclass
class KTOStage:
    learning_rate: float = MISSING
    epochs: Optional[float] = MISSING
    beta: float = MISSING
    loss_type: str = MISSING
    desirable_weight: float = MISSING
    undesirable_weight: float = MISSING
    precompute_ref_log_probs: bool = MISSING


@dataclass
class MethodConfig:
    name: str = MISSING
    sft: Optional[SFTStage] = MISSING
    dpo: Optional[DPOStage] = MISSING
    kto: Optional[KTOStage] = None  # optional so run directories written before KTO existed still load

    @property
    def stages(self) -> list[str]:
        return [s for s in STAGE_KINDS if getattr(self, s) is not None]


@dataclass
class LearningRates:
    sft: float = MISSING
    dpo: float = MISSING


@dataclass
class Config:
    model: ModelConfig = MISSING
    lr: LearningRates = MISSING
    method: MethodConfig = MISSING
    peft: PeftConfig = MISSING
    data: DataConfig = MISSING
    train: TrainConfig = MISSING
    name: str = MISSING
    out_dir: str = MISSING
    resume: Any = MISSING  # false | true | auto
    overwrite: bool = MISSING
    seed: int = MISSING
    device: str = MISSING

    @property
    def run_dir(self) -> str:
        return os.path.join(self.out_dir, self.name)

    def resolved_device(self) -> str:
        return resolve_device(self.device)

    def check(self) -> None:
        """Combinations the schema cannot express; raises :class:`ConfigError` naming the key."""
        self.model.check()
        one_of("peft.name", self.peft.name, PEFT_KINDS)
        one_of("data.on_error", self.data.on_error, ON_ERROR)
        one_of("device", self.device, DEVICES)
        one_of("train.lr_scheduler", self.train.lr_scheduler, SCHEDULERS)
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError(f"name: {self.name!r} is not a usable run directory name")
        if self.model.trim_vocab and self.peft.name != "lora":
            raise ConfigError(f"model.trim_vocab: the trimmed vocabulary is for LoRA runs (peft=lora), got peft={self.peft.name}")
        m = self.method
        stages = m.stages
        if not stages:
            raise ConfigError(f"method.{m.name}: no stage to train (method.sft, method.dpo and method.kto are all null)")
        if len([s for s in stages if s in PREFERENCE_STAGES]) > 1:
            raise ConfigError("method.kto: a method has one preference stage; set method.dpo or method.kto to null")
        for s in STAGES_OF.get(m.name, stages):
            if s not in stages:
                raise ConfigError(f"method.{s}: method {m.name} needs a{'n' if s == 'sft' else ''} {s.upper()} stage "
                                  f"(method.{s} is null)")
        for s in stages:
            if s not in STAGES_OF.get(m.name, stages):
                raise ConfigError(f"method.{s}: method {m.name} has no {s.upper()} stage; use method=sft_dpo to run both")
        if len(stages) > 1 and m.name != "sft_dpo":
            raise ConfigError(f"method.name: SFT then a preference stage is method sft_dpo (the eval takes the SFT result "
                              f"as the reference by that name), not {m.name!r}")
        for key in stages:
            stage = getattr(m, key)
            _positive(f"method.{key}.learning_rate", stage.learning_rate)
            if stage.epochs is not None:
                _positive(f"method.{key}.epochs", stage.epochs)
        if m.dpo is not None:
            _positive("method.dpo.beta", m.dpo.beta)
            if not m.dpo.loss_type:
                raise ConfigError("method.dpo.loss_type: empty; use e.g. [sigmoid]")
            for lt in m.dpo.loss_type:
                one_of("method.dpo.loss_type", lt, DPO_LOSSES)
            w = m.dpo.loss_weights
            if w is not None and len(w) != len(m.dpo.loss_type):
                raise ConfigError(f"method.dpo.loss_weights: {len(w)} weight(s) for {len(m.dpo.loss_type)} loss type(s) "
                                  f"{list(m.dpo.loss_type)}; give one per loss type, or null for 1 each")
        if m.kto is not None:
            _positive("method.kto.beta", m.kto.beta)
            one_of("method.kto.loss_type", m.kto.loss_type, KTO_LOSSES)
            for key in ("desirable_weight", "undesirable_weight"):
                _positive(f"method.kto.{key}", getattr(m.kto, key))
            if self.train.batch_size < 2 and m.kto.loss_type == "kto":
                raise ConfigError("train.batch_size: KTO estimates its KL term from the other rows of a batch; "
                                  "it needs train.batch_size >= 2")
            if self.train.group_by_length and m.kto.loss_type == "kto":
                raise ConfigError("train.group_by_length: KTO estimates its KL term against its neighbours in a "
                                  "fixed-order batch (TRL needs sequential sampling); set it to false")
        p = self.peft
        if p.name != "none":
            _positive("peft.r", p.r)
            _positive("peft.alpha", p.alpha)
            if not 0 <= p.dropout < 1:
                raise ConfigError(f"peft.dropout: {p.dropout} is not in [0, 1)")
        if p.name == "qlora" and p.bits != 4:
            raise ConfigError(f"peft.bits: qlora loads the base in 4 bits, got {p.bits}")
        if p.name != "qlora" and p.bits is not None:
            raise ConfigError(f"peft.bits: {p.bits}-bit loading is QLoRA; use peft=qlora")
        if p.name == "qlora" and self.resolved_device() != "cuda":
            raise ConfigError("peft.name: qlora needs a CUDA GPU (bitsandbytes 4-bit); use peft=lora on CPU")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("device: cuda asked for but no CUDA GPU is visible; use device=auto or cpu")
        gpus = _gpus_in_one_process() if self.resolved_device() == "cuda" else 0
        if gpus > 1:
            raise ConfigError(
                f"device: {gpus} GPUs are visible to one process, and TRL does not train through nn.DataParallel; "
                f"start one process per GPU with accelerate launch --config_file conf/accelerate/ddp.yaml "
                f"--num_processes {gpus} -m train ... (or pick one GPU: CUDA_VISIBLE_DEVICES=0)"
            )
        if self.resolved_device() == "cpu" and not self.model.allow_cpu:
            n = self.method.name
            cmd = (f'make {n.replace("_", "-")} ARGS="model=gemma3-270m"' if n in ("sft", "dpo", "sft_dpo")
                   else f"python -m train method={n} model=gemma3-270m")
            raise ConfigError(
                f"model.allow_cpu: {self.model.name} is meant for a GPU and none is visible; run the embedded "
                f"model instead: {cmd} (or set model.allow_cpu=true to train on CPU anyway)"
            )
        t = self.train
        if t.max_steps <= 0:
            _positive("train.epochs", t.epochs)
        for key in ("batch_size", "grad_accum", "logging_steps", "save_steps"):
            _positive(f"train.{key}", getattr(t, key))
        if t.max_length < 32:
            raise ConfigError(f"train.max_length: {t.max_length} is too short for a prompt and an answer (>= 32)")
        if t.eval_steps < 0:
            raise ConfigError(f"train.eval_steps: {t.eval_steps} is negative (0 = no evaluation)")
        if t.warmup < 0:
            raise ConfigError(f"train.warmup: {t.warmup} is negative")
        _positive("train.sigterm_grace_s", t.sigterm_grace_s)
        _trackers(t.report_to)
        for key in ("stop_at_step", "early_stopping_patience", "save_total_limit"):
            v = getattr(t, key)
            if v is not None:
                _positive(f"train.{key}", v)
        d = self.data
        if not d.train:
            raise ConfigError("data.train: no training files")
        if not 0 <= d.val_fraction < 1:
            raise ConfigError(f"data.val_fraction: {d.val_fraction} is not in [0, 1)")
        if not 0 < d.fraction <= 1:
            raise ConfigError(f"data.fraction: {d.fraction} is not in (0, 1]")
        if d.limit is not None:
            _positive("data.limit", d.limit)
        has_val = bool(d.val) or d.val_fraction > 0
        if t.early_stopping_patience is not None and not (has_val and t.eval_steps > 0):
            raise ConfigError(
                "train.early_stopping_patience: needs a validation set (data.val or data.val_fraction > 0) "
                "and train.eval_steps > 0"
            )
        if not (isinstance(self.resume, bool) or self.resume == "auto"):
            raise ConfigError(f"resume: {self.resume!r} is not one of false, true, auto")
        if self.resume and self.overwrite:
            raise ConfigError(f"resume: resume={str(self.resume).lower()} and overwrite=true contradict each other")


def _gpus_in_one_process() -> int:
    """How many GPUs this process would drive alone: the visible ones, unless a launcher
    (accelerate launch, torchrun) started it as one rank of several. accelerate tells a rank by
    LOCAL_RANK too; without it, transformers wraps the model in nn.DataParallel."""
    import torch

    return 0 if int(os.environ.get("LOCAL_RANK", -1)) != -1 else torch.cuda.device_count()


def one_of(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")


def _trackers(report_to: list[str]) -> None:
    """Each tool of ``train.report_to`` is one we document and its package is installed."""
    import importlib.util

    for name in report_to:
        one_of("train.report_to", name, TRACKERS)
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise ConfigError(f"train.report_to: {name} is not installed (pip install {TRACKERS[name]}), "
                              "or leave it out of the list ([] = no tracking)")


def _positive(key: str, value) -> None:
    if value is None or value <= 0:
        raise ConfigError(f"{key}: {value!r} must be > 0")


def structured(schema, cfg):
    """``cfg`` (a DictConfig or dict) as an instance of the dataclass ``schema``: unknown keys,
    wrong types and missing values raise :class:`ConfigError` with the key first."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        OmegaConf.resolve(merged)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"{missing[0]}: no value (set it in conf/ or on the command line)")
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(_omegaconf_message(e)) from None


def typed(cfg) -> Config:
    """A composed ``DictConfig`` -> checked :class:`Config`. Unknown keys, wrong types, missing
    values and impossible combinations raise :class:`ConfigError` with the key first."""
    # ${overrides:...} in run names (conf/config.yaml). At each call: Hydra's joblib launcher resets a
    # worker's resolvers to the launching process's before every job (Singleton.set_state).
    register()
    obj: Config = structured(Config, cfg)
    obj.check()
    return obj


def _omegaconf_message(e) -> str:
    key = getattr(e, "full_key", None) or ""
    msg = str(e).strip().splitlines()[0]
    if "not in" in msg and key:
        return f"{key}: unknown key (misspelled? see conf/)"
    return f"{key}: {msg}" if key else msg
