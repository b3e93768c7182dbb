"""Held-out preference accuracy by one rule for every arm -> ``<run>/preference.json``.

The rule and its fields are defined in :mod:`eval.metrics.preference`: (a) the summed and
(b) the per-token log-prob margin of chosen over rejected under the model, compared across
arms; (c) the implicit DPO reward against the arm's own reference (the start model for
``dpo``, the SFT result for ``sft_dpo``), reported per arm and never compared; the length-only
baseline and the accuracy on the length-matched pairs beside them. Also the held-out NLL per
token of the chosen answers, a validation loss every run has on the same footing.
"""

from __future__ import annotations

import json
import logging

from .config import EvalConfig
from .generate import heldout
from .metrics.preference import SUMMARY, pair_row
from .runs import load_policy, reference, target
from .stats import summary_entry

log = logging.getLogger("sftdpo")


def completion_tokens(tok, prompt: list[dict], answer: list[dict], max_length: int) -> tuple[list[int], int]:
    """(ids of prompt + answer as the chat template writes them, index where the answer starts)."""
    from train.models import encode_chat

    p = encode_chat(tok, prompt, add_generation_prompt=True)
    full = encode_chat(tok, prompt + answer, add_generation_prompt=False)
    if full[:len(p)] != p:  # the template must write the prompt the same way in both
        raise ValueError("the chat template renders the prompt differently with an answer appended")
    return full[:max_length], min(len(p), max_length)


def sequence_logps(model, tok, items: list[tuple[list[int], int]], batch_size: int, device: str):
    """Sum of log-probabilities and token count of each answer (right-padded batches)."""
    import torch

    sums, counts = [], []
    for i in range(0, len(items), batch_size):
        batch = items[i:i + batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        target = torch.zeros_like(ids, dtype=torch.bool)
        for j, (seq, start) in enumerate(batch):
            ids[j, :len(seq)] = torch.tensor(seq)
            mask[j, :len(seq)] = 1
            target[j, start:len(seq)] = True
        ids, mask, target = ids.to(device), mask.to(device), target.to(device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        t = target[:, 1:]
        sums += (logp * t).sum(-1).tolist()
        counts += t.sum(-1).tolist()
    return sums, counts


def preference(cfg: EvalConfig) -> str:

    t = target(cfg)
    pairs = [r for r in heldout(t, cfg.limit) if r["rejected"] is not None]
    if not pairs:
        raise ValueError(f"data.test: no preference pairs in {', '.join(t.data.test)}")
    device = cfg.resolved_device()
    tok, model = load_policy(t, device, dtype="float32")  # bf16 logits would make GPU and CPU scores differ
    L, B = cfg.preference.max_length, cfg.preference.batch_size
    chosen = [completion_tokens(tok, r["prompt"], r["chosen"], L) for r in pairs]
    rejected = [completion_tokens(tok, r["prompt"], r["rejected"], L) for r in pairs]
    pc, nc = sequence_logps(model, tok, chosen, B, device)
    pr, nr = sequence_logps(model, tok, rejected, B, device)
    implicit, reference_name = [None] * len(pairs), None
    if t.beta is not None:
        with reference(t, model, device, dtype="float32") as ref:
            rc, _ = sequence_logps(ref, tok, chosen, B, device)
            rr, _ = sequence_logps(ref, tok, rejected, B, device)
        implicit = [t.beta * ((a - b) - (c - d)) for a, b, c, d in zip(pc, rc, pr, rr)]
        reference_name = "SFT result" if t.method == "sft_dpo" else "start model"
    rows = [{"id": r["id"], **pair_row(a, n, c, m, _chars(r["chosen"]), _chars(r["rejected"]), x)}
            for r, a, n, c, m, x in zip(pairs, pc, nc, pr, nr, implicit)]
    result = summarize(rows)
    result.update({"method": "summed_logprob", "implicit_reference": reference_name, "beta": t.beta,
                   "n": len(pairs), "n_length_matched": sum(r["length_matched"] for r in rows), "rows": rows})
    out = t.path / "preference.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    log.info("preference: %s accuracy %.3f (summed log-prob; length-only baseline %.3f; n=%d)", out,
             result["accuracy"]["value"], result["length_baseline"]["value"], len(pairs))
    return str(out)


def _chars(messages: list[dict]) -> int:
    return sum(len(m.get("content") or "") for m in messages)


def summarize(rows: list[dict]) -> dict:
    """``{key: {"value", "low", "high", "n", "direction", "aggregation"}}`` for every
    :data:`SUMMARY` field the rows have (rates with their Wilson interval too)."""
    out = {}
    for key, (field, direction, aggregation, _, _) in SUMMARY.items():
        values = [r[field] for r in rows if r.get(field) is not None]
        if values:
            out[key] = summary_entry(values, direction, aggregation)
    return out
