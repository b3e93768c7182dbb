"""``data.load`` and the split: TRL's conversational format for both methods from one file."""

import pytest
from conftest import write_jsonl

from data import DataError, load, split_indices, train_val_split

SYS = {"role": "system", "content": "들어오는 문장을 조세호 스타일 답변으로 생성"}


def pair(q, good="좋아요~", bad="좋습니다.", **extra):
    return {"input": {"messages": [SYS, {"role": "user", "content": q}]},
            "preferred_output": [{"role": "assistant", "content": good}],
            "non_preferred_output": [{"role": "assistant", "content": bad}], **extra}


def test_dpo_rows(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [pair("점심 뭐 먹지?", metadata={"id": "s-1", "negative": "plain"}),
                                           {"prompt": "키워드: 별", "chosen": "별이 빛난다", "rejected": "별", "keywords": ["별"]}])
    ds = load(p, task="dpo")
    assert ds.column_names == ["prompt", "chosen", "rejected", "id", "source", "keywords", "metadata"]
    assert ds[0]["prompt"] == [{"role": "system", "content": SYS["content"], "weight": None},
                               {"role": "user", "content": "점심 뭐 먹지?", "weight": None}]
    assert ds[0]["chosen"] == [{"role": "assistant", "content": "좋아요~", "weight": 1}]
    assert ds[0]["id"] == "s-1" and ds[1]["id"] == "d.jsonl:2"
    assert ds[1]["keywords"] == ["별"] and ds[1]["source"] == f"{p}:2"


def test_sft_rows_from_the_same_file_and_weights_kept(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [
        pair("점심 뭐 먹지?"),
        {"messages": [{"role": "user", "content": "코드?"}, {"role": "assistant", "content": "네", "weight": 0},
                      {"role": "user", "content": "빨리"}, {"role": "assistant", "content": "print()"}]},
    ])
    ds = load(p, task="sft")
    assert ds.column_names[0] == "messages"
    assert [m["role"] for m in ds[0]["messages"]] == ["system", "user", "assistant"]
    assert ds[0]["messages"][-1]["content"] == "좋아요~"
    assert [m["weight"] for m in ds[1]["messages"]] == [None, 0, None, 1]


def test_on_error_fail_reports_every_line_and_loads_nothing(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [pair("a"), "{bad", pair("b", good="x", bad="x")])
    seen = []
    with pytest.raises(DataError) as e:
        load(p, task="dpo", emit=seen.append)
    assert [str(i) for i in seen] == [
        f"{p}:2: error: invalid JSON: Expecting property name enclosed in double quotes at column 2",
        f"{p}:3: error: 'preferred_output' and 'non_preferred_output' are identical",
    ]
    assert "2 bad record(s)" in str(e.value) and "data.on_error=skip" in str(e.value)


def test_on_error_skip_keeps_valid_and_lists_rejected(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [pair("a"), "{bad", pair("b")])
    ds, rep = load(p, task="dpo", on_error="skip", return_report=True, emit=lambda i: None)
    assert len(ds) == 2
    assert rep.rejected() == [{"path": str(p), "line": 2, "error": "invalid JSON: Expecting property name enclosed in double quotes at column 2", "raw": None}]
    s = rep.summary()
    assert s["records"] == 2 and s["rejected"] == 1 and len(s["files"][0]["sha256"]) == 64


def test_no_valid_records_is_an_error(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [])
    with pytest.raises(DataError, match="no valid records"):
        load(p, task="dpo")


def test_split_keeps_a_prompt_on_one_side_and_is_deterministic():
    rows = [{"prompt": [{"role": "user", "content": f"q{i // 3}"}], "chosen": [], "rejected": []} for i in range(60)]
    tr, va = split_indices(rows, 0.2, seed=0)
    assert len(va) == 12 and len(tr) == 48  # 20 prompts x 3 rows, 4 whole prompts
    assert {i // 3 for i in tr}.isdisjoint({i // 3 for i in va})
    assert split_indices(rows, 0.2, seed=0) == (tr, va)
    assert split_indices(rows, 0.2, seed=1) != (tr, va)


def test_train_val_split_on_dataset(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [pair(f"질문 {i}") for i in range(10)])
    tr, va = train_val_split(load(p, task="sft"), 0.3, seed=0)
    assert (len(tr), len(va)) == (7, 3)
    assert not {r["messages"][1]["content"] for r in tr} & {r["messages"][1]["content"] for r in va}


# --- unpaired preference, language modeling ------------------------------------------------------

UNPAIRED = [
    {"prompt": "키워드: 별", "completion": "별이 빛난다", "label": True},
    {"prompt": "키워드: 별", "completion": "별", "label": False},
    {"text": "바다는 푸르다. 파도가 친다."},
    {"messages": [{"role": "user", "content": "코드?"}, {"role": "assistant", "content": "print()"}]},
]


def test_sft_never_trains_on_label_false_and_says_so(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", UNPAIRED)
    seen = []
    with pytest.raises(DataError, match="1 bad record"):
        load(p, task="sft", emit=seen.append)
    reason = "'label' is false (not preferred): SFT trains only on completions labelled true (method=kto learns from both)"
    assert [str(i) for i in seen] == [f"{p}:2: error: {reason}"]
    ds, rep = load(p, task="sft", on_error="skip", return_report=True, emit=lambda i: None)
    assert rep.summary()["records"] == 3 and rep.summary()["rejected"] == 1
    assert rep.rejected() == [{"path": str(p), "line": 2, "error": reason, "raw": UNPAIRED[1]}]
    assert "별" not in [m["content"] for r in ds for m in (r["messages"] or [])]  # the false one is nowhere
    # a text record: its own column, no messages; a chat row: no text
    assert ds.column_names[:2] == ["messages", "text"]
    assert [r["text"] for r in ds] == [None, "바다는 푸르다. 파도가 친다.", None]
    assert ds[0]["messages"][-1] == {"role": "assistant", "content": "별이 빛난다", "weight": 1} and ds[1]["messages"] is None
    tr, va = train_val_split(ds, 0.34, seed=0)  # the text is a prompt group of its own
    assert len(tr) + len(va) == 3 and len(va) == 1


def test_no_text_column_without_text_records(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [pair("a")])
    assert "text" not in load(p, task="sft").column_names


def test_dpo_refuses_unpaired_and_text(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", UNPAIRED[:3])
    seen = []
    with pytest.raises(DataError):
        load(p, task="dpo", emit=seen.append)
    assert [str(i).split(": error: ")[1][:40] for i in seen] == [
        "unpaired preference record (prompt/compl", "unpaired preference record (prompt/compl",
        "missing keys 'chosen' and 'rejected': a ",
    ]


def test_kto_rows_from_unpaired_records_and_from_pairs(tmp_path):
    from datasets import Dataset
    from trl.data_utils import unpair_preference_dataset

    pairs = [{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},
             {"prompt": "The sun is", "chosen": " in the sky.", "rejected": " in the sea."}]
    p = write_jsonl(tmp_path / "d.jsonl", UNPAIRED[:2] + pairs)
    ds = load(p, task="kto")
    assert ds.column_names[:3] == ["prompt", "completion", "label"]
    text = lambda msgs: msgs[-1]["content"]  # noqa: E731
    rows = [(text(r["prompt"]), text(r["completion"]), r["label"]) for r in ds]
    assert rows[:2] == [("키워드: 별", "별이 빛난다", True), ("키워드: 별", "별", False)]
    # the pairs unpaired as TRL unpairs them (same rows; TRL orders a batch's chosen before its rejected)
    trl = unpair_preference_dataset(Dataset.from_list(pairs))
    assert sorted(rows[2:]) == sorted((r["prompt"], r["completion"], r["label"]) for r in trl)
    assert [r["source"] for r in ds][2:4] == [f"{p}:3", f"{p}:3"]
    # nothing to label: an error, as for DPO
    q = write_jsonl(tmp_path / "e.jsonl", UNPAIRED[2:])
    with pytest.raises(DataError, match="2 bad record"):
        load(q, task="kto", emit=lambda i: None)
