"""Repetition (seed 004): loops are degenerate; a style's tics, reduplicated words, anaphora
and refrains are not. Stanza, near-verbatim, alternating and cut-off loops are caught by the
piece detector (lines and sentences), each checked by hand. The standard numbers too."""

import pytest

from eval.metrics.repetition import (
    compression_ratio,
    consecutive_repeats,
    distinct_n,
    longest_repeat,
    loop_spans,
    piece_loops,
    repetition,
    seq_rep_n,
    without_loops,
)

LOOPS = {
    "line loop": "아침 버스 안에서 커피를 마신다\n창밖으로 희망이 지나간다\n" + "희망이 지나간다\n" * 7 + "희망이",
    "phrase loop": "가을이 되면 잎이 떨어진다. 잎이 떨어지고" + " 또 떨어지고" * 9,
    "tic far beyond speech": "그게요 " + "음음음~ " * 14 + "그래서요",
    "syllable run": "음" * 20,
    "sentence loop": "물고기가 빙글빙글 돈다. " + "빙글빙글 돈다. " * 8,
}

NOT_LOOPS = {
    "tics once or twice": "커피요? 음음음~ 저 지금 네 잔째거든요~ 네네네네~ 와~ 와~ 와와~ 그렇죠 그렇죠~ 또~ 또~",
    "reduplicated word": "물고기가 빙글빙글 돈다. 바람이 살랑살랑 분다.",
    "anaphora": "나는 바다를 보았다\n나는 별을 세었다\n나는 등대에 기대어 울었다\n나는 편지를 접었다",
    "refrain": ("그리운 바다여 돌아오라\n파도는 오늘도 모래를 쓸고\n그리운 바다여 돌아오라\n"
                "등대는 밤새 불을 켜 두고\n그리운 바다여 돌아오라"),
    "prose": "자정이 넘은 겨울밤, 나는 불도 켜지 않고 냄비에 물을 올린다. 엄마가 라면 하나를 더 꺼내 온다.",
    "a line said twice": "가자 가자\n저 언덕 너머로\n가자 가자",
}


@pytest.mark.parametrize("name", LOOPS)
def test_loops_are_degenerate(name):
    assert repetition(LOOPS[name])["degenerate"], name
    assert loop_spans(LOOPS[name])


@pytest.mark.parametrize("name", NOT_LOOPS)
def test_tics_and_literary_repetition_are_not(name):
    assert not repetition(NOT_LOOPS[name])["degenerate"], name
    assert loop_spans(NOT_LOOPS[name]) == []


STANZA = ("등대 불빛이 밤새 꺼지지 않고 바다 위를 돌고 또 돌았다\n나는 젖은 편지를 접어 주머니에 넣은 채 새벽이 오기를 기다렸다\n"
          "파도는 그 이름을 모래 위에 몇 번이고 썼다가 지웠다\n\n")
PIECE_LOOPS = {
    # a three-line stanza of 36 words said three times: too long a unit for the word-level search (30)
    "stanza": ("창밖에 비가 내린다\n" + STANZA * 3, "창밖에 비가 내린다\n", 3),
    # the same sentence with a word changed each time (sets share 7 of 8 words)
    "near-verbatim": ("새벽 바다에 앉아 편지를 쓴다.\n나는 오늘도 등대 아래에서 너를 기다리고 있었다.\n"
                      "나는 어제도 등대 아래에서 너를 기다리고 있었다.\n나는 오늘도 등대 옆에서 너를 기다리고 있었다.\n",
                      "새벽 바다에 앉아 편지를 쓴다.\n", 1),
    # A B A B A B, each a sentence
    "alternation": ("나는 웃었다. 너는 울었다. 나는 웃었다. 너는 울었다. 나는 웃었다. 너는 울었다.", "", 2),
    # two full copies of a three-line stanza and a third cut off by the length limit
    "cut off": ("첫눈이 내리던 밤이었다\n" + "오늘도 나는 엽서 속 항구로 돌아간다\n안개가 그 이름을 지운다\n등대만 혼자 깜박인다\n" * 2
                + "오늘도 나는 엽서 속", "첫눈이 내리던 밤이었다\n", 3),
}


@pytest.mark.parametrize("name", PIECE_LOOPS)
def test_stanza_near_alternating_and_cut_off_loops(name):
    text, before, period = PIECE_LOOPS[name]
    assert repetition(text)["degenerate"], name
    (loop,) = piece_loops(text)
    assert text[loop.start:] == text[len(before):].rstrip() or text[loop.start:loop.end] == text[len(before):].rstrip()
    assert text[loop.start:loop.first_end].count("\n") + text[loop.start:loop.first_end].count(". ") == period - 1


def test_a_stanza_said_twice_amid_new_lines_is_not_a_loop():
    # two copies of the stanza are under half of the text, and no third copy starts
    text = "바다를 처음 본 날을 기억한다\n" + STANZA * 2 + "그날 아버지는 말없이 웃었다\n어머니는 등을 돌려 부엌으로 갔다\n" * 1 + \
        "나는 그 뒤로 오랫동안 바다에 가지 않았다\n도시의 불빛은 등대보다 밝았지만 아무도 나를 기다리지 않았다\n" \
        "스무 해가 지나 다시 섬에 갔을 때 등대는 이미 무인 등대가 되어 있었고\n나는 계단에 앉아 주머니 속 편지를 오래 만지작거렸다\n" \
        "편지 봉투는 누렇게 바래 있었고 받는 사람의 이름은 반쯤 지워져 있었다\n그래도 나는 그 이름을 소리 내어 한 번 불러 보았다\n" \
        "대답 대신 갈매기 몇 마리가 방파제 끝으로 날아갔다\n해가 지기 전에 나는 편지를 바다에 띄워 보내고 마지막 배를 탔다"
    assert piece_loops(text) == [] and not repetition(text)["degenerate"]


def test_a_loop_leaves_nothing_for_the_style_to_count():
    text = "그게요 " + "음음음~ " * 6 + "그래서요"
    blank = without_loops(text)
    assert len(blank) == len(text) and blank.split() == ["그게요", "그래서요"]


def test_consecutive_repeats_finds_the_smallest_unit():
    assert consecutive_repeats("a b a b a b c".split()) == [(0, 2, 3)]
    assert consecutive_repeats("x y z".split()) == []
    assert consecutive_repeats("a a a a".split()) == [(0, 1, 4)]


def test_loop_span_covers_the_repeats():
    text = "시작 " + "희망이 지나간다 " * 5
    (a, b), = loop_spans(text)
    assert text[a:b] == ("희망이 지나간다 " * 5).strip()


def test_standard_numbers_by_hand():
    words = "a b c d a b c d".split()
    # 4-grams: abcd bcda cdab dabc abcd -> 5 total, 4 unique
    assert seq_rep_n(words, 4) == pytest.approx(1 - 4 / 5)
    # bigrams: ab bc cd da ab bc cd -> 7 total, 4 unique
    assert distinct_n(words, 2) == pytest.approx(4 / 7)
    assert longest_repeat(words) == 4  # "a b c d" occurs twice
    assert longest_repeat("a b c".split()) == 0
    assert seq_rep_n(["a"], 4) == 0.0 and distinct_n([], 2) == 1.0
    assert compression_ratio("") == 0.0
    assert compression_ratio("반복 " * 200) > 10 > compression_ratio(NOT_LOOPS["prose"])


def test_longest_repeat_search_agrees_with_the_pairs():
    """The O(n log n) search that long repetitive texts fall back to gives the same answer."""
    import random

    from eval.metrics.repetition import _longest_repeat_search

    rng = random.Random(0)
    for trial in range(3000):
        words = [rng.choice("ab" if trial % 2 else "abcdef") for _ in range(rng.randint(0, 40))]
        assert _longest_repeat_search(words) == longest_repeat(words), words


def test_long_repetitive_texts_stay_linear_ish():
    """20,000 words of a two-word loop: 100 million pairs of equal words, minutes for the pair
    recursion alone; the fallback answers it (and the whole row) within the test's budget."""
    words = "또 떨어지고".split() * 10_000
    assert longest_repeat(words) == 19_998
    row = repetition(" ".join(words))
    assert row["degenerate"] and row["longest_repeat"] == 19_998 and row["max_repeats"] == 10_000


def test_row_shape():
    row = repetition(LOOPS["line loop"])
    assert set(row) == {"degenerate", "max_repeats", "seq_rep_4", "distinct_2", "compression_ratio", "longest_repeat"}
    assert row["max_repeats"] == 8


def test_shipped_labelled_sets():
    """Loop detection on our labelled sets: every keyword-set loop negative is caught, no
    preferred text (literary or styled with tics) is flagged."""
    import json

    from conftest import ROOT

    def texts(path, key):
        return [json.loads(line) for line in open(ROOT / path, encoding="utf-8")]

    kw = texts("data/keywords/train.jsonl", None) + texts("data/keywords/test.jsonl", None)
    loops = [r["rejected"] for r in kw if r["metadata"]["rejected_kind"] == "loop"]
    clean = [r["chosen"] for r in kw] + [r["rejected"] for r in kw if r["metadata"]["rejected_kind"] != "loop"]
    style = texts("data/style/train.jsonl", None) + texts("data/style/test.jsonl", None)
    clean += [r["preferred_output"][0]["content"] for r in style]
    assert all(repetition(t)["degenerate"] for t in loops)
    assert not any(repetition(t)["degenerate"] for t in clean)


def test_real_generations_held_out_half():
    """data/labelled/real_loops.jsonl: 180 real generations of our runs labelled blind; the
    detector was tuned on the tune half only. On the held-out half: precision and recall >= 0.9."""
    from eval.check import loops

    c = loops("heldout")["real_loops.jsonl"]
    assert c["n"] == 90 and c["positives"] == 55
    assert c["precision"] >= 0.9 and c["recall"] >= 0.9, c


def test_independent_labelled_loops():
    """data/labelled/loops.jsonl (another writer, blind to the metric): every loop kind caught,
    no prose, poem, anaphora, refrain or style-tic text flagged."""
    import json

    from conftest import ROOT

    rows = [json.loads(line) for line in open(ROOT / "data/labelled/loops.jsonl", encoding="utf-8")]
    wrong = [(r["kind"], r["id"]) for r in rows if repetition(r["text"])["degenerate"] != bool(r["label"])]
    assert wrong == []
    assert {r["kind"] for r in rows if r["label"]} == {"line_loop", "phrase_loop", "sentence_loop", "tic_loop", "cycle_loop"}
