"""Typed config of ``python -m eval generate|preference`` (values in conf/eval.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from train.config import ConfigError, DataConfig, ModelConfig


@dataclass
class GenerateConfig:
    max_new_tokens: int = MISSING
    batch_size: int = MISSING
    do_sample: bool = MISSING
    temperature: float = MISSING
    top_p: float = MISSING
    repetition_penalty: float = MISSING


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

    def check(self) -> None:
        try:
            self.model.check()
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device: {self.device!r} is not one of auto, cpu, cuda")
        for key in ("max_new_tokens", "batch_size"):
            if getattr(self.generate, key) <= 0:
                raise ConfigError(f"generate.{key}: must be > 0")
        if self.generate.do_sample and not (self.generate.temperature > 0 and 0 < self.generate.top_p <= 1):
            raise ConfigError("generate.temperature: sampling needs temperature > 0 and 0 < top_p <= 1")
        if self.preference.batch_size <= 0:
            raise ConfigError("preference.batch_size: must be > 0")
        if self.limit is not None and self.limit <= 0:
            raise ConfigError(f"limit: {self.limit} must be > 0")


def typed(cfg) -> EvalConfig:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from train.config import _omegaconf_message

    try:
        merged = OmegaConf.merge(OmegaConf.structured(EvalConfig), cfg)
        OmegaConf.resolve(merged)
        obj: EvalConfig = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(_omegaconf_message(e)) from None
    obj.check()
    return obj
