"""``python -m data stats``: counts, lengths, duplicate prompts and DPO's length bias."""

from __future__ import annotations

import statistics
from collections import Counter

from .split import prompt_key
from .validate import Record


def percentiles(values: list[int], qs=(5, 50, 95, 100)) -> dict:
    """Nearest-rank percentiles (an actual value of the data; ties round down)."""
    if not values:
        return {}
    v = sorted(values)
    return {f"p{q}": v[min(len(v) - 1, int(q / 100 * (len(v) - 1)))] for q in qs}


def stats(records: list[Record], count=len, unit: str = "chars") -> dict:
    """Summary numbers; ``count`` measures a text (``len`` for characters or a tokenizer)."""
    pairs = [r.data for r in records if "chosen" in r.data]
    chats = [r.data for r in records if "messages" in r.data]
    unpaired = [r.data for r in records if "label" in r.data]
    texts = [r.data["text"] for r in records if "text" in r.data]
    text = lambda msgs: "\n".join(m["content"] for m in msgs)  # noqa: E731
    prompts = Counter(prompt_key(d) for d in pairs + unpaired + chats)
    out = {
        "records": len(records),
        "formats": dict(Counter(r.format for r in records)),
        "preference_pairs": len(pairs),
        "conversations": len(chats),
        "unit": unit,
        "duplicate_prompts": sum(n - 1 for n in prompts.values() if n > 1),
        "prompt_length": percentiles([count(text(d["prompt"])) for d in pairs + unpaired]
                              + [count(text([m for m in d["messages"] if m["role"] != "assistant"])) for d in chats]),
    }
    if unpaired:
        out["unpaired"] = {"label_true": sum(d["label"] for d in unpaired), "label_false": sum(not d["label"] for d in unpaired),
                           "completion_length": percentiles([count(text(d["completion"])) for d in unpaired])}
    if texts:
        out["texts"] = len(texts)
        out["text_length"] = percentiles([count(t) for t in texts])
    if pairs:
        cl = [count(text(d["chosen"])) for d in pairs]
        rl = [count(text(d["rejected"])) for d in pairs]
        ratios = sorted(c / max(r, 1) for c, r in zip(cl, rl))
        out["chosen_length"] = percentiles(cl)
        out["rejected_length"] = percentiles(rl)
        # DPO's known length bias: if chosen is nearly always longer, the model can learn "longer wins".
        out["chosen_rejected_ratio"] = {"median": round(statistics.median(ratios), 3),
                                        "mean": round(sum(ratios) / len(ratios), 3),
                                        "chosen_longer_share": round(sum(c > r for c, r in zip(cl, rl)) / len(pairs), 3),
                                        "length_baseline": length_figures(cl, rl)["length_baseline"]}
    if chats:
        out["assistant_length"] = percentiles([count(text([m for m in d["messages"] if m["role"] == "assistant"])) for d in chats])
        out["weight0_messages"] = sum(1 for d in chats for m in d["messages"] if m.get("weight") == 0)
    return out


def length_figures(chosen: list[int], rejected: list[int]) -> dict:
    """Chosen vs rejected lengths of preference pairs, and the trivial baseline "the longer
    answer wins" (ties count half): its accuracy is what a model can reach by length alone."""
    n = len(chosen)
    if not n:
        return {}
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected))
    return {"pairs": n, "chosen_mean": round(sum(chosen) / n, 1), "rejected_mean": round(sum(rejected) / n, 1),
            "chosen_longer_share": round(sum(c > r for c, r in zip(chosen, rejected)) / n, 3),
            "length_baseline": round(wins / n, 3)}
