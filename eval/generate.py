"""Batched generation on the held-out prompts of a run's dataset -> ``<run>/generations.jsonl``
(``id``, ``prompt``, ``text``, ``keywords`` when the task has them, ``reference`` = the
preferred answer, for the report's side-by-side view) and ``<run>/scores.json`` (as
``python -m eval score`` writes it)."""

from __future__ import annotations

import json
import logging

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

    from train.models import encode_chat, generation_tokenizer

    t = target(cfg)
    records = heldout(t, cfg.limit)
    device = cfg.resolved_device()
    tok, model = load_policy(t, device)
    tok = generation_tokenizer(tok)
    g = cfg.generate
    kwargs = dict(max_new_tokens=g.max_new_tokens, do_sample=g.do_sample, repetition_penalty=g.repetition_penalty)
    if g.do_sample:
        kwargs.update(temperature=g.temperature, top_p=g.top_p)
    torch.manual_seed(cfg.seed)
    out_path = t.path / "generations.jsonl"
    rows = []
    for i in tqdm(range(0, len(records), g.batch_size), desc=f"generate {t.path.name}", unit="batch"):
        batch = records[i:i + g.batch_size]
        ids = [encode_chat(tok, r["prompt"]) for r in batch]
        enc = tok.pad({"input_ids": ids}, return_tensors="pt").to(device)
        with torch.no_grad():
            gen = model.generate(**enc, **kwargs)
        for r, seq in zip(batch, gen[:, enc["input_ids"].shape[1]:]):
            row = {"id": r["id"], "prompt": r["prompt"][-1]["content"], "text": tok.decode(seq, skip_special_tokens=True).strip()}
            if r["keywords"]:
                row["keywords"] = r["keywords"]
            if r["chosen"]:
                row["reference"] = r["chosen"][-1]["content"]
            rows.append(row)
    with open(out_path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    # scored at once (cheap), so a run directory always has both
    from .score import score_rows

    scores = score_rows([{"id": r["id"], "text": r["text"], "keywords": r.get("keywords")} for r in rows])
    (t.path / "scores.json").write_text(json.dumps(scores, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    log.info("generations: %s (%d rows), scores.json beside it", out_path, len(rows))
    return str(out_path)
