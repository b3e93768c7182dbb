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
    # a text with no marker scores the bias alone: 1 / (1 + e^3.43) = 0.031
    assert s["score"] > 0.9 and p["score"] == pytest.approx(0.031, abs=0.001)
    assert s["markers"]["tilde"] >= 5 and s["markers"]["tmi"] >= 1


def test_a_tilde_or_two_alone_is_not_the_style():
    # seed 000's "flat" imitation: polite question + a tilde, none of the character
    assert not style("택배가 분실되면 누구한테 말해야 돼요~?")["present"]


def test_spans_point_at_the_markers():
    text = "와~ 음음음~"
    spans = marker_spans(text)
    assert (0, 2, "interjection") in spans and any(text[a:b].startswith("음음음") for a, b, c in spans if c == "tic")
    assert all(0 <= a < b <= len(text) for a, b, _ in spans)


TILDE_ONLY = "네~ 보조배터리는 위탁 수하물로는 안 되고요~ 기내에 들고 타셔야 해요~ 용량도 확인해 보세요~"
NO_TILDE = ("네네네네, 여권이요. 제가 여권 사진을 찍었는데 얼굴이 너무 억울하게 나왔거든요. 아이고. "
            "여권 재발급은 어디 가서 신청하면 되는 건가요?")


def test_tildes_alone_are_not_the_style_however_many():
    # a plain answer whose endings carry tildes: the tilde family (tildes, sung endings) is one trait
    s = style(TILDE_ONLY)
    assert s["markers"]["tilde"] == 4 and s["markers"]["rhythm"] >= 1
    assert sum(v for k, v in s["markers"].items() if k not in ("tilde", "rhythm")) == 0
    assert not s["present"]
    assert not style("운전면허 갱신은 3~4일 걸리나요~? 주말~에도~ 되나요~?")["present"]


def test_the_style_without_a_single_tilde_is_the_style():
    s = style(NO_TILDE)
    assert "~" not in NO_TILDE and s["markers"]["tilde"] == 0
    assert s["markers"]["tic"] >= 1 and s["markers"]["tmi"] >= 1 and s["markers"]["interjection"] >= 1
    assert s["present"]


def test_one_category_alone_never_decides():
    from eval.metrics.style import style_score, two_traits

    many_tics = {c: 0 for c in CATEGORIES} | {"tic": 9}
    assert not two_traits(many_tics)  # nine tics, nothing else
    assert not two_traits({c: 0 for c in CATEGORIES} | {"tilde": 9, "rhythm": 9})
    assert two_traits({c: 0 for c in CATEGORIES} | {"tilde": 1, "tic": 1})
    assert two_traits({c: 0 for c in CATEGORIES} | {"tmi": 1, "aggrieved": 1})
    assert style_score(many_tics) > 0.5  # the score alone would have called it the style


def test_a_loop_is_not_the_persona():
    # "라면이요~" four times: before, tilde 4 + tic 2 (a word said twice, twice); now a loop, counted for nothing
    looped = "라면이요~ 라면이요~ 라면이요~ 라면이요~"
    assert style(looped)["markers"] == {c: 0 for c in CATEGORIES}
    # one styled line said seven times: the line's markers are inside the loop
    line = "아이고 제가요~\n" * 7
    assert not style(line)["present"] and style(line)["markers"]["interjection"] == 0
    # the persona before the loop still counts, as a reader judges the part before it
    before = NO_TILDE + " " + "그게 또 그게 또 " * 5
    assert style(before)["present"] and style(before)["markers"]["tmi"] >= 1


def test_labelled_sets_held_out_half():
    """data/labelled/: the weights were fitted on the tune half; on the held-out half of the
    written set every non-style text stays out (tilde-only, numeric tildes, tilde loops) and the
    style is found with and without tildes; on real generations the ranking holds."""
    from eval.check import style_figures

    figures = style_figures("heldout")
    written, real = figures["style.jsonl"], figures["real_loops.jsonl"]
    assert written["auc"] >= 0.98 and written["precision"] == 1.0 and written["recall"] >= 0.9
    for kind in ("tilde_only", "numeric_tilde", "tilde_loop", "plain", "flat", "answer", "other_voice"):
        assert written["present_rate"][kind].startswith("0/"), (kind, written["present_rate"])
    assert written["present_rate"]["style_no_tilde"] in ("7/8", "8/8")
    assert real["auc"] >= 0.9 and real["recall"] >= 0.7 and real["n"] == 43
