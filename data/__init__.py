"""Read, validate and split fine-tuning data in the formats people actually have.

    from data import load
    ds = load(["train.jsonl"], task="dpo")   # prompt / chosen / rejected (TRL conversational)
    ds = load(["train.jsonl"], task="sft")   # messages (prompt + chosen), per-message weight kept
    ds = load(["train.jsonl"], task="kto")   # prompt / completion / label (a pair gives two rows)
"""

from .formats import RecordError, to_canonical
from .loader import DataError, LoadReport, load, read, to_rows
from .split import split_indices, train_val_split
from .validate import Issue, validate_file

__all__ = [
    "DataError", "Issue", "LoadReport", "RecordError", "load", "read", "split_indices",
    "to_canonical", "to_rows", "train_val_split", "validate_file",
]
