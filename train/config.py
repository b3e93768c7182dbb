"""Typed configuration objects. Values live in ``conf/``; these classes only give them a
schema so a misspelled key or a wrong type fails at start-up, naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

MODEL_SOURCES = ("hub", "gguf", "tiny")
DTYPES = ("auto", "bfloat16", "float32")


@dataclass
class ModelConfig:
    name: str = MISSING
    # hub: from_pretrained(path) — a hub id or a local directory
    # gguf: a PyPI package shipping a GGUF file, converted once into cache_dir
    # tiny: a random Gemma-3 built from ``tiny`` (tests)
    source: str = MISSING
    path: str = MISSING
    # auto = bfloat16 on CUDA, float32 on CPU. Never float16: Gemma-3 activations overflow it.
    dtype: str = MISSING
    # null: keep the tokenizer's template; "gemma3": attach the official Gemma-3 template
    # when the tokenizer has none (the GGUF base model ships without one).
    chat_template: Optional[str] = MISSING
    cache_dir: str = MISSING
    tiny: dict[str, Any] = field(default_factory=dict)

    def check(self, prefix: str = "model") -> None:
        """Raise ``ValueError`` naming the key for values the schema alone cannot catch."""
        if self.source not in MODEL_SOURCES:
            raise ValueError(f"{prefix}.source: {self.source!r} is not one of {', '.join(MODEL_SOURCES)}")
        if self.dtype not in DTYPES:
            hint = " (Gemma-3 overflows in float16; use bfloat16)" if self.dtype in ("float16", "fp16", "half") else ""
            raise ValueError(f"{prefix}.dtype: {self.dtype!r} is not one of {', '.join(DTYPES)}{hint}")
        if self.chat_template not in (None, "gemma3"):
            raise ValueError(f"{prefix}.chat_template: {self.chat_template!r} is not null or 'gemma3'")
