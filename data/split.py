"""Deterministic train/validation split that keeps every record of one prompt on one side.

Seed 001 asks for a held-out set and validation loss; records that share a prompt
(several pairs for one question) would leak across a plain random split.
"""

from __future__ import annotations

import hashlib
import json


def prompt_key(row: dict) -> str:
    """The prompt of a row: DPO/KTO ``prompt``, an SFT conversation up to its last assistant turn,
    or a plain text (language modeling) as a whole."""
    if "prompt" in row:
        msgs = row["prompt"]
    elif row.get("messages") is None:
        return json.dumps(row["text"], ensure_ascii=False)
    else:
        msgs = row["messages"]
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        msgs = msgs[:last]
    return json.dumps([(m["role"], m["content"]) for m in msgs], ensure_ascii=False)


def split_indices(rows: list[dict], val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, validation) row indices. Prompt groups are ordered by a seeded hash and
    taken into validation until it holds round(val_fraction * N) rows (a group is never split)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(prompt_key(row), []).append(i)
    order = sorted(groups, key=lambda k: hashlib.sha256(f"{seed}\0{k}".encode()).hexdigest())
    target = round(val_fraction * len(rows))
    val: list[int] = []
    for k in order:
        if len(val) >= target:
            break
        val.extend(groups[k])
    vs = set(val)
    return [i for i in range(len(rows)) if i not in vs], sorted(val)


def train_val_split(ds, val_fraction: float, seed: int = 0):
    """``datasets.Dataset`` -> (train, validation) with :func:`split_indices`."""
    train, val = split_indices(ds.to_list(), val_fraction, seed)
    return ds.select(train), ds.select(val)
