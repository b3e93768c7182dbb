"""SFT examples with per-message weights (seed 001's OpenAI ``weight`` 0/1).

TRL's ``assistant_only_loss`` masks everything but assistant turns, but it has no notion of a
weight-0 assistant turn (context the model reads but must not learn to say). So we tokenize
with TRL's Gemma-3 training template — the one with ``{% generation %}`` markers — ask
transformers for the assistant mask, and zero the spans of weight-0 turns. SFTTrainer takes
the resulting ``input_ids`` / ``assistant_masks`` columns as they are (a pre-tokenized dataset).

A language-modeling record (``text``, no turns) is tokenized as TRL's SFT tokenizes its ``text``
type, and every token is a target.
"""

from __future__ import annotations


def training_template(tok) -> str:
    """The tokenizer's template with generation markers (TRL's patched copy when it lacks them)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tok.chat_template):
        return tok.chat_template
    patched = get_training_chat_template(tok)
    if patched is None:
        raise ValueError("the chat template has no {% generation %} markers and TRL has no training variant of it")
    return patched


def tokenize_weighted(tok, messages: list[dict], template: str, max_length: int | None = None) -> dict:
    """``{"input_ids", "assistant_masks"}`` with weight-0 assistant turns masked out."""
    out = tok.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages],
        chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
    )
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    weights = [m.get("weight", 1) for m in messages if m["role"] == "assistant"]
    # the k-th run of 1s in the mask is the k-th assistant turn (turns alternate, so runs never touch)
    k, prev = -1, 0
    for i, bit in enumerate(mask):
        if bit and not prev:
            k += 1
        if bit and k < len(weights) and weights[k] == 0:
            mask[i] = 0
        prev = bit
    if k + 1 != len(weights):
        raise ValueError(f"found {k + 1} assistant spans for {len(weights)} assistant messages")
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return {"input_ids": ids, "assistant_masks": mask}


def tokenize_text(tok, text: str, max_length: int | None = None) -> dict:
    """``{"input_ids", "assistant_masks"}`` for a plain text: all of it is trained on.

    As TRL's SFTTrainer does for its language-modeling type (``add_eos``, then the tokenizer's
    plain call, which adds BOS): we pre-tokenize, so TRL no longer does it for us.
    """
    if not text.endswith(tok.eos_token):
        text += tok.eos_token
    ids = list(tok(text)["input_ids"])
    if max_length is not None:
        ids = ids[:max_length]
    return {"input_ids": ids, "assistant_masks": [1] * len(ids)}
