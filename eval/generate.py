"""Batched generation on the held-out prompts of a run's dataset -> ``<run>/generations.jsonl``
and ``<run>/scores.json`` (as ``python -m eval score`` writes it).

One row per generated answer, the schema every eval reader shares: ``id`` (the prompt's id,
or ``<prompt id>/<sample>`` when ``generate.num_samples`` > 1), ``prompt_id``, ``sample``
(0-based), ``prompt`` (the last user turn), ``text``, ``stopped`` (the model ended the answer
itself, before ``max_new_tokens``), ``new_tokens`` (generated, up to and including the stop
token), ``keywords`` when the task has them and ``reference`` (the preferred answer, for the
report's side-by-side view). The samples of one prompt are one cluster for every interval."""

from __future__ import annotations

import json
import logging
import time

from data import read

from .config import EvalConfig
from .runs import Target, load_policy, target

log = logging.getLogger("sftdpo")


def heldout(t: Target, limit: int | None = None) -> list[dict]:
    """The held-out records of the run's data (``data.test``) as prompt / chosen / rejected."""
    if not t.data.test:
        raise ValueError(f"data.test: the run's data '{t.data.name}' has no held-out files")
    records, report = read(t.data.test, None, dict(t.data.columns), emit=lambda issue: None)
    if report.errors:
        raise ValueError(f"data.test: {report.errors} bad record(s) in {', '.join(t.data.test)} (python -m data validate)")
    out = []
    for r in records:
        d = r.data
        if "text" in d:
            raise ValueError(f"data.test: {r.path}:{r.line} is a language-modeling 'text' record: no prompt to generate from")
        if "label" in d:  # unpaired: a reference only when the completion is the preferred one; never a pair
            prompt, chosen, rejected = d["prompt"], d["completion"] if d["label"] else None, None
        elif "prompt" in d:
            prompt, chosen, rejected = d["prompt"], d["chosen"], d["rejected"]
        else:  # a chat record: everything before the last assistant turn is the prompt
            last = max(i for i, m in enumerate(d["messages"]) if m["role"] == "assistant")
            prompt, chosen, rejected = d["messages"][:last], d["messages"][last:last + 1], None
        out.append({"id": r.extra.get("id", f"{r.path}:{r.line}"), "prompt": prompt, "chosen": chosen,
                    "rejected": rejected, "keywords": r.extra.get("keywords", [])})
    return out[:limit] if limit else out


def generate(cfg: EvalConfig) -> str:
    import torch
    from tqdm import tqdm

    from train.models import encode_chat, generation_tokenizer, stop_token_ids

    from .decode import decode, prepare

    t = target(cfg)
    records = heldout(t, cfg.limit)
    device = cfg.resolved_device()
    g = cfg.generate
    if g.threads:
        torch.set_num_threads(g.threads)
    tok, model = load_policy(t, device)
    model = prepare(model, g.merge_adapter, g.quantize)
    tok = generation_tokenizer(tok)
    stops = set(stop_token_ids(tok))
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    out_path = t.path / "generations.jsonl"
    jobs = [(r, k) for r in records for k in range(g.num_samples)]  # the samples of a prompt side by side
    ids = [encode_chat(tok, r["prompt"]) for r, _ in jobs]
    # similar lengths in one batch: less left padding to compute
    order = sorted(range(len(jobs)), key=lambda j: len(ids[j])) if g.sort_by_length else list(range(len(jobs)))
    if g.engine == "hf" and g.compile:
        model.forward = torch.compile(model.forward)
    done: dict[int, list[int]] = {}
    started = time.perf_counter()
    for i in tqdm(range(0, len(order), g.batch_size), desc=f"generate {t.path.name}", unit="batch"):
        batch = order[i:i + g.batch_size]
        enc = tok.pad({"input_ids": [ids[j] for j in batch]}, return_tensors="pt").to(device)
        if g.engine == "loop":
            new = decode(model, enc["input_ids"], enc["attention_mask"], g.max_new_tokens, stops, g.do_sample,
                         g.temperature, g.top_k, g.top_p, generator)
        else:
            new = _hf_generate(model, enc, g)
        done.update(zip(batch, new))
    seconds = time.perf_counter() - started
    rows = [_row(r, k, g.num_samples, done[j], stops, tok) for j, (r, k) in enumerate(jobs)]
    with open(out_path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    # scored at once (cheap), so a run directory always has both
    from .score import score_rows

    scores = score_rows(rows)
    (t.path / "scores.json").write_text(json.dumps(scores, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tokens = sum(r["new_tokens"] for r in rows)
    log.info("generations: %s (%d rows, %d new tokens in %.1f s of decoding: %.1f tokens/s), scores.json beside it",
             out_path, len(rows), tokens, seconds, tokens / max(seconds, 1e-9))
    return str(out_path)


def _hf_generate(model, enc, g) -> list[list[int]]:
    """transformers' own ``generate`` (static cache, compile and repetition penalty live here)."""
    import torch

    kwargs = dict(max_new_tokens=g.max_new_tokens, do_sample=g.do_sample, repetition_penalty=g.repetition_penalty)
    if g.do_sample:
        kwargs.update(temperature=g.temperature, top_p=g.top_p, top_k=g.top_k)
    if g.static_cache:
        kwargs["cache_implementation"] = "static"
    with torch.no_grad():
        gen = model.generate(**enc, **kwargs)
    return gen[:, enc["input_ids"].shape[1]:].tolist()


def _row(r: dict, sample: int, num_samples: int, seq: list[int], stops: set[int], tok) -> dict:
    """One generated answer in the shared row schema (see the module docstring)."""
    end = next((i for i, t in enumerate(seq) if t in stops), None)
    new_tokens = len(seq) if end is None else end + 1
    row = {"id": r["id"] if num_samples == 1 else f"{r['id']}/{sample}", "prompt_id": r["id"], "sample": sample,
           "prompt": r["prompt"][-1]["content"],
           "text": tok.decode(seq[:new_tokens], skip_special_tokens=True).strip(),
           "stopped": end is not None, "new_tokens": new_tokens}  # no stop token: cut at max_new_tokens
    if r["keywords"]:
        row["keywords"] = r["keywords"]
    if r["chosen"]:  # an unpaired record labelled false has no preferred answer to show
        row["reference"] = r["chosen"][-1]["content"]
    return row
