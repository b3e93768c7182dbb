"""Quality gates for the shipped datasets: they fail if the data regress."""

import re
from collections import Counter
from itertools import chain

import pytest
from conftest import run_cli

from data.datasets import SHIPPED, STYLE_CORE, opening, read
from eval.metrics.keywords import has_keyword
from eval.metrics.repetition import repetition

FILES = [p for name in ("style", "keywords") for p in SHIPPED[name].values()]  # preference pairs
STYLE = {k: read(p) for k, p in SHIPPED["style"].items()}
KW = {k: read(p) for k, p in SHIPPED["keywords"].items()}
TICS = ["음음", "네네", "그렇죠 그렇죠", "아이고", "와~ 와~", "아휴", "그쵸 그쵸", "맞아요 맞아요", "어어어", "제가요?"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_validate_clean(path):
    r = run_cli("data", "validate", path, "--task", "dpo", "--max-tokens", "1024")
    assert r.returncode == 0
    assert r.stdout.strip() == f"{path}: {len(read(path))} valid, 0 errors, 0 warnings"


def test_warmup_validates_clean_for_sft():
    path = SHIPPED["warmup"]["train"]
    r = run_cli("data", "validate", path, "--task", "sft", "--max-tokens", "1024")
    assert r.returncode == 0 and r.stdout.strip() == f"{path}: {len(read(path))} valid, 0 errors, 0 warnings"


def test_sizes_and_splits():
    assert (len(STYLE["train"]), len(STYLE["test"])) == (200, 40)
    assert (len(KW["train"]), len(KW["test"])) == (140, 35)


def test_style_rows():
    rows = STYLE["train"] + STYLE["test"]
    system = {r["input"]["messages"][0]["content"] for r in rows}
    assert system == {"들어오는 문장을 조세호 스타일 답변으로 생성"}
    assert len({r["input"]["messages"][1]["content"] for r in rows}) == len(rows)  # no repeated question
    for r in rows:
        pref = r["preferred_output"][0]["content"]
        rej = r["non_preferred_output"][0]["content"]
        meta = r["metadata"]
        assert sum(m in meta["markers"] for m in STYLE_CORE) >= 2, meta["id"]
        if "tilde" in meta["markers"]:  # (interjections carry tildes too, so not the converse)
            assert "~" in pref, meta["id"]
        if meta.get("chosen") == "no_tilde":  # the persona without a tilde
            assert "~" not in pref and "tilde" not in meta["markers"], meta["id"]
        assert pref.rstrip("~ ").endswith("?"), f"{meta['id']}: the rewrite must stay a question"
        if meta["negative"] in ("plain", "plain_long"):
            assert "~" not in rej, meta["id"]
        if meta["negative"] in ("plain", "plain_long", "wrong_question", "tilde_only"):  # re-asking, wrongly
            assert rej.rstrip("~ ").endswith("?"), meta["id"]
        if meta["negative"] in ("tilde_only", "answer_style", "wrong_question", "loop"):  # tildes that are not the style
            assert "~" in rej, meta["id"]


def test_style_has_no_template():
    pref = [r["preferred_output"][0]["content"] for r in STYLE["train"] + STYLE["test"]]
    op, n = Counter(opening(t) for t in pref).most_common(1)[0]
    assert n / len(pref) <= 0.10, f"opening {op!r} in {n} rows"
    for tic in TICS:
        share = sum(tic in t for t in pref) / len(pref)
        assert share <= 1 / 3, f"tic {tic!r} in {share:.0%} of rows"


STYLE_KINDS = {"plain", "answer", "flat", "plain_long", "tilde_only", "answer_style", "wrong_question", "loop"}


def test_style_rejected_kinds():
    for split, rows in STYLE.items():
        kinds = Counter(r["metadata"]["negative"] for r in rows)
        assert set(kinds) == STYLE_KINDS, split  # every kind in train and in test
    loops = [r["non_preferred_output"][0]["content"] for r in STYLE["train"] + STYLE["test"]
             if r["metadata"]["negative"] == "loop"]
    assert all(repetition(t)["degenerate"] for t in loops)


# Length must not give the answer away (issue #15): per file, the chosen answer is the longer one in
# 35-65% of the pairs, "the longer answer wins" scores <= 65%, the mean lengths are within 0.8-1.25 of
# each other, no rejected kind is over 40% of the file; and a logistic regression on length,
# punctuation and tilde counts, fitted on train, scores <= 65% on the held-out pairs.
@pytest.mark.parametrize("name", ["style", "keywords"])
def test_length_and_surface_do_not_give_the_answer_away(name):
    from data.datasets import balance_figures

    figures = balance_figures()[name]
    for split in ("train", "test"):
        b = figures[split]
        assert 0.35 <= b["chosen_longer_share"] <= 0.65, (split, b)
        assert b["length_baseline"] <= 0.65, (split, b)
        assert 0.8 <= b["mean_ratio"] <= 1.25, (split, b)
        assert b["top_rejected_kind_share"] <= 0.40, (split, b)
    assert figures["surface_classifier_heldout"] <= 0.65, figures


def test_keyword_rows():
    for r in KW["train"] + KW["test"]:
        kws, meta = r["keywords"], r["metadata"]
        assert len(kws) == 3 and r["prompt"].endswith("키워드: " + ", ".join(kws)), meta["id"]
        assert all(has_keyword(r["chosen"], k) for k in kws), f"{meta['id']}: chosen misses a keyword"
        if meta["rejected_kind"] == "missing_keyword":
            assert not all(has_keyword(r["rejected"], k) for k in kws), f"{meta['id']}: nothing missing"
        if meta["rejected_kind"] == "loop":
            sents = [s.strip() for s in re.split(r"[.\n]", r["rejected"]) if s.strip()]
            words = r["rejected"].split()
            grams = Counter(tuple(words[i:i + 2]) for i in range(len(words) - 1))
            assert Counter(sents).most_common(1)[0][1] >= 4 or grams.most_common(1)[0][1] >= 5, meta["id"]


def test_keyword_triples_unique_and_test_keywords_unseen():
    triples = [frozenset(r["keywords"]) for r in KW["train"] + KW["test"]]
    assert len(set(triples)) == len(triples)
    train_words = set(chain.from_iterable(r["keywords"] for r in KW["train"]))
    test_words = set(chain.from_iterable(r["keywords"] for r in KW["test"]))
    assert not train_words & test_words


def test_keyword_rejected_mix():
    kinds = Counter(r["metadata"]["rejected_kind"] for r in KW["train"] + KW["test"])
    assert kinds == {"missing_keyword": 62, "loop": 53, "flat_list": 35, "off_task": 25}
    long_ = Counter(r["metadata"]["rejected_kind"] for r in KW["train"] + KW["test"] if r["metadata"].get("rejected_length") == "long")
    assert long_ == {"missing_keyword": 44, "loop": 42, "off_task": 15}  # as long as the chosen text, or longer
    for r in KW["train"] + KW["test"]:
        if r["metadata"].get("missing"):  # a long text that misses exactly that keyword (absent, or only inside a word)
            assert not has_keyword(r["rejected"], r["metadata"]["missing"]), r["metadata"]["id"]
            assert sum(has_keyword(r["rejected"], k) for k in r["keywords"]) == 2, r["metadata"]["id"]


def test_both_methods_read_the_keyword_file():
    from data import load

    sft = load(SHIPPED["keywords"]["train"], task="sft")
    dpo = load(SHIPPED["keywords"]["train"], task="dpo")
    assert len(sft) == len(dpo) == 140
    assert sft[0]["messages"][-1]["content"] == dpo[0]["chosen"][0]["content"]
    assert dpo[0]["keywords"] == KW["train"][0]["keywords"]


WARMUP = read(SHIPPED["warmup"]["train"])


def test_warmup_set():
    """data/warmup: single-turn answers that end, no persona, nothing of the held-out keyword task."""
    from eval.metrics.style import style

    assert len(WARMUP) >= 300
    users = [r["messages"][0]["content"] for r in WARMUP]
    answers = [r["messages"][1]["content"] for r in WARMUP]
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in WARMUP)
    assert len(set(users)) == len(users) and len({opening(u) for u in users}) >= 250  # not templated
    assert sum(style(a)["present"] for a in answers) <= 0.02 * len(answers)
    assert not any("~" in a for a in answers)
    assert all(a.rstrip()[-1] in ".!다요" or "\n" in a for a in answers)  # a finished sentence (or a poem's line)
    # answers of several lines that end: without them the start model never stopped once it broke a line
    assert sum("\n" in a for a in answers) >= 80 and all(len(a) <= 300 for a in answers)
    kw = KW["train"] + KW["test"]
    assert not set(users) & {r["prompt"] for r in kw}
    assert not any("키워드" in u for u in users)
    triples = [r["keywords"] for r in kw]
    assert not [u for u in users for t in triples if all(k in u for k in t)]  # no keyword triple asked for
