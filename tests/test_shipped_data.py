"""Quality gates for the shipped datasets: they fail if the data regress."""

import re
from collections import Counter
from itertools import chain

import pytest
from conftest import run_cli

from data.datasets import SHIPPED, STYLE_CORE, opening, read
from eval.metrics.keywords import has_keyword

FILES = [p for d in SHIPPED.values() for p in d.values()]
STYLE = {k: read(p) for k, p in SHIPPED["style"].items()}
KW = {k: read(p) for k, p in SHIPPED["keywords"].items()}
TICS = ["음음", "네네", "그렇죠 그렇죠", "아이고", "와~ 와~", "아휴", "그쵸 그쵸", "맞아요 맞아요", "어어어", "제가요?"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_validate_clean(path):
    r = run_cli("data", "validate", path, "--task", "dpo", "--max-tokens", "1024")
    assert r.returncode == 0
    assert r.stdout.strip() == f"{path}: {len(read(path))} valid, 0 errors, 0 warnings"


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
        meta = r["metadata"]
        assert sum(m in meta["markers"] for m in STYLE_CORE) >= 2, meta["id"]
        if "tilde" in meta["markers"]:  # (interjections carry tildes too, so not the converse)
            assert "~" in pref, meta["id"]
        assert pref.rstrip("~ ").endswith("?"), f"{meta['id']}: the rewrite must stay a question"
        if meta["negative"] == "plain":
            assert "~" not in r["non_preferred_output"][0]["content"], meta["id"]


def test_style_has_no_template():
    pref = [r["preferred_output"][0]["content"] for r in STYLE["train"] + STYLE["test"]]
    op, n = Counter(opening(t) for t in pref).most_common(1)[0]
    assert n / len(pref) <= 0.10, f"opening {op!r} in {n} rows"
    for tic in TICS:
        share = sum(tic in t for t in pref) / len(pref)
        assert share <= 1 / 3, f"tic {tic!r} in {share:.0%} of rows"


def test_style_hard_negatives_are_about_a_quarter():
    kinds = Counter(r["metadata"]["negative"] for r in STYLE["train"] + STYLE["test"])
    assert set(kinds) == {"plain", "answer", "flat"}
    assert 0.2 <= (kinds["answer"] + kinds["flat"]) / sum(kinds.values()) <= 0.3
    assert {r["metadata"]["negative"] for r in STYLE["test"]} == {"plain", "answer", "flat"}


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


def test_both_methods_read_the_keyword_file():
    from data import load

    sft = load(SHIPPED["keywords"]["train"], task="sft")
    dpo = load(SHIPPED["keywords"]["train"], task="dpo")
    assert len(sft) == len(dpo) == 140
    assert sft[0]["messages"][-1]["content"] == dpo[0]["chosen"][0]["content"]
    assert dpo[0]["keywords"] == KW["train"][0]["keywords"]
