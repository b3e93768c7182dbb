"""Held-out preference accuracy by one rule for every arm (the base model included).

From the log-probabilities of the chosen and the rejected answer under the model (``eval
preference`` computes them), per pair:

* (a) ``margin``: the summed log-prob margin, log π(chosen) − log π(rejected);
* (b) ``margin_per_token``: the same per token (each answer's mean log-prob);
* (c) ``implicit_margin``: DPO's implicit reward margin against the arm's *own* reference,
  β·[(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))]. The reference differs per arm
  (the start model for DPO, the SFT result for SFT→DPO), so (c) is never compared across arms.

(a) and (b) are what the report compares. Beside them, on the same pairs: the length-only
baseline ("the longer answer wins"; ties count half) and (a) and (b) on the length-matched pairs
(lengths within ``MATCHED_WITHIN``), where length cannot give the answer away. Summed log-probs
favour the shorter answer and per-token ones do not: a gap between (a) and (b) is a length effect.
"""

from __future__ import annotations

from .registry import register

MATCHED_WITHIN = 0.20  # the longer answer at most 20% longer than the shorter one


def pair_row(chosen_logp: float, chosen_tokens: int, rejected_logp: float, rejected_tokens: int,
             chosen_chars: int, rejected_chars: int, implicit_margin: float | None = None) -> dict:
    """The per-pair fields that the summary aggregates (see :data:`SUMMARY`)."""
    margin = chosen_logp - rejected_logp
    per_token = chosen_logp / max(1, chosen_tokens) - rejected_logp / max(1, rejected_tokens)
    short, long_ = sorted((chosen_chars, rejected_chars))
    matched = long_ <= (1 + MATCHED_WITHIN) * short
    row = {
        "margin": round(margin, 5), "correct": margin > 0,
        "margin_per_token": round(per_token, 5), "correct_per_token": per_token > 0,
        "nll": round(-chosen_logp / max(1, chosen_tokens), 5),
        "chosen_chars": chosen_chars, "rejected_chars": rejected_chars,
        "length_baseline": 1.0 if chosen_chars > rejected_chars else 0.0 if chosen_chars < rejected_chars else 0.5,
        "length_matched": matched,
        "correct_matched": (margin > 0) if matched else None,
        "correct_per_token_matched": (per_token > 0) if matched else None,
    }
    if implicit_margin is not None:
        row["implicit_margin"] = round(implicit_margin, 5)
        row["implicit_correct"] = implicit_margin > 0
    return row


# preference.json key -> (row field, direction, aggregation, description, compared across arms)
# (the length-matched ones are computed on a subset of the pairs: registered with subset=True)
SUMMARY = {
    "accuracy": ("correct", "higher", "rate", "(a) held-out pairs ranked right by the summed log-prob margin", True),
    "margin": ("margin", "higher", "mean", "(a) summed log-prob margin log π(chosen) − log π(rejected), nats", True),
    "accuracy_per_token": ("correct_per_token", "higher", "rate", "(b) pairs ranked right by the per-token log-prob margin", True),
    "margin_per_token": ("margin_per_token", "higher", "mean", "(b) per-token log-prob margin, nats per token", True),
    "length_matched_accuracy": ("correct_matched", "higher", "rate",
                                "(a) on the pairs whose lengths are within 20% (n = those pairs)", True),
    "length_matched_accuracy_per_token": ("correct_per_token_matched", "higher", "rate",
                                          "(b) on the pairs whose lengths are within 20%", True),
    "length_baseline": ("length_baseline", None, "rate", "trivial baseline: the longer answer wins (ties half)", True),
    "heldout_nll": ("nll", "lower", "mean", "per-token NLL of the held-out chosen answers", True),
    "implicit_accuracy": ("implicit_correct", "higher", "rate",
                          "(c) pairs ranked right by DPO's implicit reward vs the arm's own reference", False),
    "implicit_margin": ("implicit_margin", "higher", "mean", "(c) implicit reward margin vs the arm's own reference", False),
}
for _key, (_field, _direction, _aggregation, _description, _comparable) in SUMMARY.items():
    register(f"preference.{_key}", _direction, _aggregation, _description, _comparable,
             subset=_key.startswith("length_matched"))
