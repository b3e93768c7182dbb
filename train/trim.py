"""CPU levers on the output layer, which dominates a Gemma-3 step on CPU (262,144 tokens × 640).

TRL 1.x computes every loss through its fused LM head (``add_fused_lm_head``: the log-prob of
each label without materialising the logits). On a device without Triton its torch fallback
scores *every* position, padding and prompt included, and discards most of them afterwards.
Two levers, both written by hand because neither TRL nor transformers offers them:

1. **Compact scoring on CPU** (always on, exact): only positions with a label are scored, as
   TRL already does on CUDA. The loss, the gradients and the logged metrics are unchanged.
2. **Trimmed vocabulary** (opt-in, ``model.trim_vocab=true``): the output layer is restricted
   to the tokens that the configured data files (train, validation and held-out, prompts and
   answers, rendered through the chat template) use, plus the special tokens. Training scores
   labels against the kept rows only, and generation / preference scoring see ``-inf`` for
   every other token, so the model is one over a smaller vocabulary everywhere it is used,
   base included. The kept ids are written to ``vocab.json`` in the run directory and the
   report says the vocabulary was trimmed. Meant for CPU studies; the saved adapter is an
   ordinary one (LoRA never touches the embedding).

Both work by replacing two private names of ``trl.trainer.utils`` (``_use_triton`` and
``_ChunkedLogProbFunction``); :func:`install` checks that they exist, so a TRL that renames
them fails at start-up with one line instead of silently losing the lever.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

_ATTR = "_sftdpo_keep"  # a _Kept, set on the output layer and on its weight


class TrimError(RuntimeError):
    """A configuration or label the trimmed vocabulary cannot serve."""


# --- which tokens ------------------------------------------------------------------------------


def data_files(data) -> list[str]:
    """Every file of a data config: train, validation and held-out (independent of limit/fraction,
    so runs on 50% and 100% of the data share one vocabulary)."""
    files = list(data.train) + list(data.val or []) + list(data.test or [])
    return list(dict.fromkeys(files))


def vocabulary(tok, files: list[str], columns=None) -> list[int]:
    """Sorted token ids used by the files' conversations, as TRL tokenizes them, plus specials."""
    from data.formats import conversations
    from data.loader import read

    records, report = read(files, None, dict(columns or {}), emit=lambda issue: None)
    if not records:
        raise TrimError(f"model.trim_vocab: no valid records in {', '.join(files)}")
    ids: set[int] = set(tok.all_special_ids)
    for name in ("<start_of_turn>", "<end_of_turn>", "<eos>", "<bos>", "<pad>"):
        i = tok.convert_tokens_to_ids(name)
        if isinstance(i, int) and i >= 0 and i != tok.unk_token_id:
            ids.add(i)

    def add(messages: list[dict], generation_prompt: bool = False) -> None:
        out = tok.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in messages],
                                      tokenize=True, add_generation_prompt=generation_prompt, return_dict=True)
        ids.update(out["input_ids"])

    for r in records:
        d = r.data
        if "text" in d:  # language modeling: the text as TRL's SFT tokenizes it (sft_data.tokenize_text)
            ids.update(tok(d["text"])["input_ids"])
            continue
        convs = conversations(d)
        prompt = d["prompt"] if "prompt" in d else [m for m in d["messages"] if m["role"] != "assistant"]
        add(prompt, generation_prompt=True)
        for conv in convs:
            add(conv)
            for m in conv:  # a turn tokenized alone (TRL's DPO tokenizes prompt and answer apart)
                ids.update(tok(m["content"], add_special_tokens=False)["input_ids"])
    return sorted(ids)


def write(path: Path, keep: list[int], vocab_size: int, files: list[str]) -> None:
    path.write_text(json.dumps({"kept": len(keep), "of": vocab_size, "files": files, "ids": keep}) + "\n",
                    encoding="utf-8")


def read_ids(path: Path) -> list[int]:
    return json.loads(path.read_text(encoding="utf-8"))["ids"]


# --- the model -----------------------------------------------------------------------------------


class _Kept:
    """The kept ids and the map original id -> kept index, made on each device they are used on.
    ``restrict`` runs on the CPU model; the Trainer moves it to the GPU afterwards."""

    def __init__(self, ids: list[int], vocab: int):
        self.ids, self.vocab, self._on = sorted(set(ids)), vocab, {}

    def on(self, device):
        """(kept ids, lookup) as tensors on ``device``."""
        import torch

        if device not in self._on:
            kept = torch.tensor(self.ids, dtype=torch.long, device=device)
            lookup = torch.full((self.vocab,), -1, dtype=torch.long, device=device)
            self._on[device] = kept, lookup.index_copy(0, kept, torch.arange(kept.numel(), device=device))
        return self._on[device]


def restrict(model, keep: list[int]) -> None:
    """Restrict ``model``'s output layer to ``keep`` (training through TRL and plain forwards)."""
    import torch

    head = model.get_output_embeddings()
    vocab = head.weight.shape[0]
    state = _Kept(keep, vocab)
    if not state.ids or state.ids[-1] >= vocab:
        raise TrimError(f"model.trim_vocab: kept ids do not fit the model's {vocab}-token output layer")
    setattr(head, _ATTR, state)
    setattr(head.weight, _ATTR, state)

    def forward(self, hidden):  # logits over the kept rows; every other token gets -inf
        kept, _ = state.on(self.weight.device)
        w = self.weight.index_select(0, kept)
        small = torch.nn.functional.linear(hidden, w, None if self.bias is None else self.bias[kept])
        full = small.new_full((*small.shape[:-1], vocab), float("-inf"))
        return full.index_copy(-1, kept, small)

    def _apply(self, fn, *args, **kwargs):
        # a move to another kind of device (meta, say) gives the layer a new weight Parameter;
        # TRL's fused head sees only the weight, so the mark goes onto the new one
        out = type(self)._apply(self, fn, *args, **kwargs)
        setattr(self.weight, _ATTR, state)
        return out

    head.forward = types.MethodType(forward, head)
    head._apply = types.MethodType(_apply, head)


def kept_of(model) -> int | None:
    """How many tokens the output layer is restricted to (None: not trimmed)."""
    found = getattr(model.get_output_embeddings(), _ATTR, None)
    return None if found is None else len(found.ids)


# --- TRL's fused LM head ------------------------------------------------------------------------


class _TrimmedLogProb:
    """Stands in for TRL's ``_ChunkedLogProbFunction``: the same function over the kept rows."""

    original = None

    @classmethod
    def apply(cls, hidden, weight, bias, targets, *rest):
        found = getattr(weight, _ATTR, None)
        if found is None:
            return cls.original.apply(hidden, weight, bias, targets, *rest)
        kept, lookup = found.on(weight.device)
        local = lookup[targets]
        if bool((local < 0).any()):
            bad = sorted(set(targets[local < 0].tolist()))[:5]
            raise TrimError(f"model.trim_vocab: label token id(s) {bad} are not in the trimmed vocabulary "
                            "(the data changed since the vocabulary was built?)")
        return cls.original.apply(hidden, weight.index_select(0, kept),
                                  None if bias is None else bias[kept], local, *rest)


def install() -> None:
    """Patch TRL's fused LM head: compact scoring everywhere, trimmed rows where restricted."""
    import trl.trainer.utils as tu

    missing = [n for n in ("_use_triton", "_ChunkedLogProbFunction") if not hasattr(tu, n)]
    if missing:
        raise TrimError(f"this TRL ({_trl_version()}) has no {', '.join(missing)} in trl.trainer.utils; "
                        "the CPU levers need TRL's fused LM head (trl 1.16)")
    if _TrimmedLogProb.original is None:
        _TrimmedLogProb.original = tu._ChunkedLogProbFunction
        tu._ChunkedLogProbFunction = _TrimmedLogProb
        # `compact = _use_triton(device)` picks "score only labelled positions"; the kernel module
        # keeps its own `_use_triton`, so CPU still runs the torch tiles, just on fewer rows.
        tu._use_triton = lambda device: True


def _trl_version() -> str:
    import trl

    return getattr(trl, "__version__", "?")
