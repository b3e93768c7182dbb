"""Typed config of ``python -m eval generate|preference`` (values in conf/eval.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from train.config import (
    DEVICES,
    ConfigError,
    DataConfig,
    ModelConfig,
    one_of,
    resolve_device,
    structured,
)

ENGINES = ("loop", "hf")
QUANTIZE = ("int8",)


@dataclass
class GenerateConfig:
    max_new_tokens: int = MISSING
    batch_size: int = MISSING
    do_sample: bool = MISSING
    temperature: float = MISSING
    top_p: float = MISSING
    top_k: Optional[int] = MISSING
    num_samples: int = MISSING
    repetition_penalty: float = MISSING
    engine: str = MISSING
    sort_by_length: bool = MISSING
    merge_adapter: bool = MISSING
    static_cache: bool = MISSING
    compile: bool = MISSING
    threads: Optional[int] = MISSING
    quantize: Optional[str] = MISSING


@dataclass
class PreferenceConfig:
    batch_size: int = MISSING
    max_length: int = MISSING


@dataclass
class EvalConfig:
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    run: Optional[str] = MISSING
    out_dir: str = MISSING
    limit: Optional[int] = MISSING
    seed: int = MISSING
    device: str = MISSING
    generate: GenerateConfig = MISSING
    preference: PreferenceConfig = MISSING

    def resolved_device(self) -> str:
        return resolve_device(self.device)

    def check(self) -> None:
        self.model.check()
        one_of("device", self.device, DEVICES)
        for key in ("max_new_tokens", "batch_size", "num_samples"):
            if getattr(self.generate, key) <= 0:
                raise ConfigError(f"generate.{key}: must be > 0")
        if self.generate.do_sample and not (self.generate.temperature > 0 and 0 < self.generate.top_p <= 1):
            raise ConfigError("generate.temperature: sampling needs temperature > 0 and 0 < top_p <= 1")
        if self.generate.top_k is not None and self.generate.top_k <= 0:
            raise ConfigError(f"generate.top_k: {self.generate.top_k} must be > 0 (null = no top-k cut)")
        g = self.generate
        one_of("generate.engine", g.engine, ENGINES)
        if g.quantize is not None:
            one_of("generate.quantize", g.quantize, QUANTIZE)
        if g.engine == "loop":
            for key in ("static_cache", "compile"):
                if getattr(g, key):
                    raise ConfigError(f"generate.{key}: a transformers generate option; set generate.engine=hf")
            if g.repetition_penalty != 1.0:
                raise ConfigError("generate.repetition_penalty: the loop engine has none; set generate.engine=hf")
        if g.threads is not None and g.threads <= 0:
            raise ConfigError(f"generate.threads: {g.threads} must be > 0 (null = torch's default)")
        if self.generate.num_samples > 1 and not self.generate.do_sample:
            raise ConfigError("generate.num_samples: several samples per prompt need generate.do_sample=true "
                              "(greedy decoding gives the same answer every time)")
        if self.preference.batch_size <= 0:
            raise ConfigError("preference.batch_size: must be > 0")
        if self.limit is not None and self.limit <= 0:
            raise ConfigError(f"limit: {self.limit} must be > 0")


def typed(cfg) -> EvalConfig:
    obj: EvalConfig = structured(EvalConfig, cfg)
    obj.check()
    return obj
