"""Style markers (seed 000): hand-checked counts per category, and a real style rewrite
scores above a plain rewrite of the same question."""

import pytest

from eval.metrics.style import CATEGORIES, marker_counts, marker_spans, style

PLAIN = "자취를 시작할 때 반드시 사야 하는 물건에는 어떤 것들이 있나요?"
STYLED = ("자취 시작하시는구나~ 와~ 와~ 설레시겠다~ 저는 처음 자취할 때 냄비가 없어서 라면을 전기포트에 끓여 "
          "먹었어요~ 네네, 그런 시절이 있었죠~ 그러니까 자취 시작할 때 이건 꼭 사야 된다~ 하는 물건, 뭐가 있어요~?")


@pytest.mark.parametrize("text,category,count", [
    ("예쁘~게 대~단하다", "tilde", 2),           # stretched inside a word
    ("진짜 대단해요~~~~", "tilde", 1),          # one run of tildes
    ("좋아요. 그렇군요.", "tilde", 0),
    ("음음음~ 네네네네~", "tic", 2),
    ("그렇죠 그렇죠~", "tic", 1),              # a short word said twice
    ("점점 추워진다", "tic", 0),                # 점 is not a tic syllable: a plain word
    ("제가요? 그걸 또 왜 저한테~", "aggrieved", 3),
    ("아휴~ 그거는요~", "aggrieved", 1),
    ("그때 그랬죠~ 음음~", "rhythm", 1),
    ("아이고~ 와~ 어머나", "interjection", 3),
    ("저는 어릴 때 그거 먹다가 체했거든요", "tmi", 1),
    ("그 사람은 어제 왔다", "tmi", 0),           # third person: no aside
    ("아리가또~ 스미마셍", "japanese", 2),
])
def test_marker_counts(text, category, count):
    assert marker_counts(text)[category] == count


def test_every_category_is_counted_and_a_plain_text_has_none():
    assert set(marker_counts(PLAIN)) == set(CATEGORIES)
    assert sum(marker_counts(PLAIN).values()) == 0


def test_a_style_rewrite_scores_above_the_plain_rewrite_of_the_same_question():
    s, p = style(STYLED), style(PLAIN)
    assert s["present"] and not p["present"]
    assert s["score"] > 0.9 and p["score"] < 0.01
    assert s["markers"]["tilde"] >= 5 and s["markers"]["tmi"] >= 1


def test_a_tilde_or_two_alone_is_not_the_style():
    # seed 000's "flat" imitation: polite question + a tilde, none of the character
    assert not style("택배가 분실되면 누구한테 말해야 돼요~?")["present"]


def test_spans_point_at_the_markers():
    text = "와~ 음음음~"
    spans = marker_spans(text)
    assert (0, 2, "interjection") in spans and any(text[a:b].startswith("음음음") for a, b, c in spans if c == "tic")
    assert all(0 <= a < b <= len(text) for a, b, _ in spans)


def test_held_out_auc_on_the_shipped_pairs_is_high():
    from eval.metrics.style import _pairs, auc, marker_counts, style_score

    pos, neg = _pairs("data/style/test.jsonl")  # not used to fit the weights
    assert auc([style_score(marker_counts(t)) for t in pos], [style_score(marker_counts(t)) for t in neg]) > 0.95


def test_independent_labelled_set():
    """data/labelled/style.jsonl: written by another writer who saw neither the metric nor the
    training data. Ranking is perfect; at 0.5 nothing that is not the style is called the style,
    and the style is found in at least 3 of 4 rewrites (the misses are the subtle ones)."""
    import json

    from conftest import ROOT

    from eval.metrics.style import auc

    rows = [json.loads(line) for line in open(ROOT / "data/labelled/style.jsonl", encoding="utf-8")]
    pos = [style(r["text"]) for r in rows if r["label"] == 1]
    neg = [style(r["text"]) for r in rows if r["label"] == 0]
    assert auc([s["score"] for s in pos], [s["score"] for s in neg]) >= 0.98
    assert not any(s["present"] for s in neg)
    assert sum(s["present"] for s in pos) / len(pos) >= 0.75
