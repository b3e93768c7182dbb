"""Decoding for ``eval generate``: the levers that make it fast on a CPU, each a config switch
(``conf/eval.yaml``, measured by ``make bench``'s generate section).

* :func:`decode`: a batched decode loop in which **finished sequences leave the batch**.
  transformers' ``generate`` keeps every row until the longest one ends, so a row that said
  ``<end_of_turn>`` after 40 tokens is computed (as padding) for the other 340; with sampled
  answers of very different lengths that is most of the work. Written by hand for that reason
  only: each step is transformers' own forward with a ``DynamicCache`` (its
  ``batch_select_indices`` drops the finished rows) and its own logits warpers (temperature,
  top-k, top-p), so greedy decoding gives the tokens ``generate`` gives (tested).
* :func:`sample_top_k`: sampling with top-k (Gemma-3's 64) among the k candidates only, the
  distribution of transformers' warpers without their sort of the whole vocabulary (tested).
* :func:`prepare`: the LoRA adapter merged into the weights for generation (peft's
  ``merge_and_unload``: one matrix per layer instead of three), and int8 dynamic quantisation of
  the Linear layers (approximate; off by default).
"""

from __future__ import annotations

import logging

log = logging.getLogger("sftdpo")


def prepare(model, merge_adapter: bool, quantize: str | None):
    """The model ``eval generate`` decodes with: adapter merged in, optionally int8 Linear layers."""
    import torch

    if merge_adapter and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()  # the run's adapter on disk is untouched
    if quantize == "int8":
        # approximate: weights rounded to 8 bits per output channel, activations quantised on the fly
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model.eval()


def warpers(do_sample: bool, temperature: float, top_k: int | None, top_p: float):
    """transformers' sampling warpers, in the order ``generate`` applies them."""
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    out = LogitsProcessorList()
    if do_sample:
        if temperature != 1.0:
            out.append(TemperatureLogitsWarper(temperature))
        if top_k:
            out.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            out.append(TopPLogitsWarper(top_p))
    return out


def decode(model, input_ids, attention_mask, max_new_tokens: int, stops: set[int], do_sample: bool = False,
           temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0, generator=None) -> list[list[int]]:
    """New tokens of each row (up to and including its stop token, or ``max_new_tokens``).

    ``input_ids`` / ``attention_mask``: a left-padded batch. A row that emits a stop token leaves
    the batch: its cache rows, mask and position go, and the next step computes only the rest."""
    import torch
    from transformers import DynamicCache

    warp = warpers(do_sample, temperature, top_k, top_p)
    shortlist = do_sample and bool(top_k)  # sample among the top-k only (sample_top_k)
    stop = torch.tensor(sorted(stops), device=input_ids.device)
    n = input_ids.shape[0]
    out: list[list[int]] = [[] for _ in range(n)]
    rows = torch.arange(n, device=input_ids.device)  # batch row -> original row
    mask = attention_mask
    # as generate does for a left-padded batch: positions count the real tokens only
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
    cache = {_cache_kwarg(model): DynamicCache(config=model.config)}
    seen = input_ids  # what repetition-aware warpers would see; the warpers used here ignore it
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                       logits_to_keep=1, **cache).logits[:, -1].float()
        for _ in range(max_new_tokens):
            if shortlist:
                nxt = sample_top_k(logits, temperature, top_k, top_p, generator)
            elif do_sample:
                nxt = torch.multinomial(torch.softmax(warp(seen, logits), dim=-1), 1, generator=generator).squeeze(1)
            else:
                nxt = warp(seen, logits).argmax(-1)
            for r, t in zip(rows.tolist(), nxt.tolist()):
                out[r].append(t)
            live = ~torch.isin(nxt, stop)
            if not bool(live.any()):
                break
            if not bool(live.all()):  # finished rows leave the batch
                keep = live.nonzero().squeeze(1)
                next(iter(cache.values())).batch_select_indices(keep)
                rows, nxt, mask = rows[keep], nxt[keep], mask[keep]
            if len(out[int(rows[0])]) == max_new_tokens:
                break
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            positions = mask.long().sum(-1, keepdim=True) - 1
            logits = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=positions, use_cache=True,
                           **cache).logits[:, -1].float()
    return out


def top_k_distribution(logits, temperature: float, top_k: int, top_p: float):
    """``(ids, probs)``: the distribution that transformers' temperature, top-k and top-p warpers
    and a softmax give, on the ``top_k`` candidates only (every other token has probability 0).

    The warpers sort all 262,144 logits for top-p at every step and softmax the whole vocabulary;
    on this CPU that cost more than the model's forward. After top-k only k tokens are left, so
    top-p is the same rule on k sorted values. HF keeps a token when the ascending cumulative
    probability, itself included, is above 1 − top_p: in descending order, when the probability
    of the tokens before it is below top_p (the most likely one is always kept). Differences:
    float rounding at the cut, and a tie at the k-th logit keeps k tokens here (HF keeps all tied)."""
    import torch

    vals, ids = (logits / temperature).topk(top_k, dim=-1)  # descending
    probs = torch.softmax(vals, dim=-1)
    if top_p < 1.0:
        before = probs.cumsum(-1) - probs
        probs = probs.masked_fill(before >= top_p, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return ids, probs


def sample_top_k(logits, temperature: float, top_k: int, top_p: float, generator=None):
    """One token per row from :func:`top_k_distribution`."""
    import torch

    ids, probs = top_k_distribution(logits, temperature, top_k, top_p)
    pick = torch.multinomial(probs, 1, generator=generator)
    return ids.gather(-1, pick).squeeze(1)


def _cache_kwarg(model) -> str:
    """The forward's name for the KV cache: ``cache`` from transformers 5.2x, ``past_key_values`` before."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PeftModel passes **kwargs on
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"
