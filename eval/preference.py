"""Held-out preference accuracy: does the model prefer the chosen answer to the rejected one?

* runs trained with DPO (``dpo``, ``sft_dpo``): the implicit DPO reward against the run's own
  reference, ``beta * [(log π(c) - log π_ref(c)) - (log π(r) - log π_ref(r))]`` — what DPO
  optimised;
* base and SFT runs: the length-normalised log-probability (mean per token) of chosen minus
  rejected.

Also the held-out NLL per token of the chosen answers, a validation loss that every run,
base included, has on the same footing. Writes ``<run>/preference.json``.
"""

from __future__ import annotations

import json
import logging

from .config import EvalConfig
from .generate import heldout
from .runs import load_policy, reference, target
from .stats import bootstrap

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
    if t.beta is not None:
        with reference(t, model, device, dtype="float32") as ref:
            rc, _ = sequence_logps(ref, tok, chosen, B, device)
            rr, _ = sequence_logps(ref, tok, rejected, B, device)
        method = "implicit_reward"
        margins = [t.beta * ((a - b) - (c - d)) for a, b, c, d in zip(pc, rc, pr, rr)]
    else:
        method = "length_normalised_logprob"
        margins = [a / max(1, n) - c / max(1, m) for a, n, c, m in zip(pc, nc, pr, nr)]
    nll = [-a / max(1, n) for a, n in zip(pc, nc)]
    result = {
        "accuracy": {**bootstrap([m > 0 for m in margins]), "direction": "higher", "aggregation": "rate"},
        "margin": {**bootstrap(margins), "direction": "higher", "aggregation": "mean"},
        "heldout_nll": {**bootstrap(nll), "direction": "lower", "aggregation": "mean"},
        "method": method, "beta": t.beta, "n": len(pairs),
        "rows": [{"id": r["id"], "margin": round(m, 5), "correct": m > 0, "nll": round(x, 5)}
                 for r, m, x in zip(pairs, margins, nll)],
    }
    out = t.path / "preference.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    log.info("preference: %s accuracy %.3f (%s, n=%d)", out, result["accuracy"]["value"], method, len(pairs))
    return str(out)
