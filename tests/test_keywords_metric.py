"""Keyword coverage: particles count, substrings do not (hand-checked)."""

import pytest

from eval.metrics.keywords import has_keyword, keyword_coverage


@pytest.mark.parametrize("text, kw", [
    ("바다를 보았다", "바다"), ("별들이 쏟아졌다", "별"), ("등대만이 남았다", "등대"),
    ("그것은 기억이었다", "기억"), ("바다.", "바다"), ("「바다」", "바다"), ("별, 달, 해", "별"),
    ("고양이에게서 배웠다", "고양이"), ("편지조차 없었다", "편지"),
])
def test_keyword_as_word_with_particles(text, kw):
    assert has_keyword(text, kw)


@pytest.mark.parametrize("text, kw", [
    ("특별한 날이었다", "별"), ("바닷가를 걸었다", "바다"), ("등대지기가 웃었다", "등대"),
    ("별빛이 쏟아졌다", "별"), ("", "별"), ("사진첩", "사진"),
])
def test_keyword_inside_another_word_does_not_count(text, kw):
    assert not has_keyword(text, kw)


def test_coverage_shape():
    assert keyword_coverage("바다를 보며 별을 센다", ["바다", "별", "등대"]) == {
        "hits": {"바다": True, "별": True, "등대": False}, "all_present": False, "coverage": 2 / 3}
