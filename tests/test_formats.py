"""Every input format and every record-level error, with hand-checked expectations."""

import pytest

from data.formats import RecordError, to_canonical

SYS = {"role": "system", "content": "들어오는 문장을 조세호 스타일 답변으로 생성"}
USER = {"role": "user", "content": "점심 뭐 먹지?"}


def U(text):
    return {"role": "user", "content": text, "weight": None}


def A(text, w=1):
    return {"role": "assistant", "content": text, "weight": w}


def S(text):
    return {"role": "system", "content": text, "weight": None}


def err(record, task=None, columns=None) -> str:
    with pytest.raises(RecordError) as e:
        to_canonical(record, task, columns)
    return str(e.value)


# --- formats ------------------------------------------------------------------------------------


def test_openai_dpo_top_level():
    r = {"input": {"messages": [SYS, USER]},
         "preferred_output": [{"role": "assistant", "content": "점심을요~ 제가요?"}],
         "non_preferred_output": [{"role": "assistant", "content": "점심으로 무엇을 먹을까요?"}]}
    fmt, rec = to_canonical(r)
    assert fmt == "openai-dpo"
    assert rec == {"prompt": [S(SYS["content"]), U("점심 뭐 먹지?")],
                   "chosen": [A("점심을요~ 제가요?")], "rejected": [A("점심으로 무엇을 먹을까요?")]}


def test_openai_dpo_seed000_variant_outputs_inside_input():
    r = {"input": {"messages": [SYS, USER],
                   "preferred_output": [{"role": "assistant", "content": "좋아요~"}],
                   "non_preferred_output": [{"role": "assistant", "content": "좋습니다."}]}}
    fmt, rec = to_canonical(r)
    assert fmt == "openai-dpo"
    assert rec["chosen"] == [A("좋아요~")] and rec["rejected"] == [A("좋습니다.")]


def test_openai_chat_keeps_weights():
    r = {"messages": [USER, {"role": "assistant", "content": "네, 바로 알려드리겠습니다.", "weight": 0.0},
                      {"role": "user", "content": "기다리고 있어."},
                      {"role": "assistant", "content": "print()를 쓰세요.", "weight": 1}]}
    fmt, rec = to_canonical(r)
    assert fmt == "openai-chat"
    assert [m["weight"] for m in rec["messages"]] == [None, 0, None, 1]


def test_openai_content_parts_are_joined():
    r = {"messages": [{"role": "user", "content": [{"type": "text", "text": "안녕"}, {"type": "text", "text": "하세요"}]},
                      {"role": "assistant", "content": "네"}]}
    assert to_canonical(r)[1]["messages"][0]["content"] == "안녕하세요"


def test_developer_role_is_system():
    r = {"messages": [{"role": "developer", "content": "규칙"}, USER, {"role": "assistant", "content": "네"}]}
    assert to_canonical(r)[1]["messages"][0]["role"] == "system"


def test_trl_strings_and_message_lists():
    fmt, rec = to_canonical({"prompt": "Q?", "chosen": "good", "rejected": "bad"})
    assert fmt == "trl" and rec == {"prompt": [U("Q?")], "chosen": [A("good")], "rejected": [A("bad")]}
    fmt, rec = to_canonical({"prompt": [SYS, USER], "chosen": [{"role": "assistant", "content": "a"}],
                             "rejected": [{"role": "assistant", "content": "b"}]})
    assert rec["prompt"][0]["role"] == "system" and rec["chosen"] == [A("a")]


def test_implicit_prompt_message_lists():
    c = [USER, {"role": "assistant", "content": "짜장면"}]
    j = [USER, {"role": "assistant", "content": "몰라"}]
    fmt, rec = to_canonical({"chosen": c, "rejected": j})
    assert fmt == "hh/implicit"
    assert rec == {"prompt": [U("점심 뭐 먹지?")], "chosen": [A("짜장면")], "rejected": [A("몰라")]}


def test_hh_transcript():
    c = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: a joke?\n\nAssistant: Why did the chicken..."
    j = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: a joke?\n\nAssistant: No."
    fmt, rec = to_canonical({"chosen": c, "rejected": j})
    assert fmt == "hh/implicit"
    assert rec["prompt"] == [U("hi"), A("hello"), U("a joke?")]
    assert rec["chosen"] == [A("Why did the chicken...")] and rec["rejected"] == [A("No.")]


def test_prompt_completion_and_input_output():
    fmt, rec = to_canonical({"prompt": "키워드: 바다", "completion": "바다는 푸르다"})
    assert fmt == "prompt-completion" and rec == {"messages": [U("키워드: 바다"), A("바다는 푸르다")]}
    fmt, rec = to_canonical({"input": "키워드: 별", "output": "별이 빛난다"})
    assert fmt == "input-output" and rec == {"messages": [U("키워드: 별"), A("별이 빛난다")]}
    fmt, rec = to_canonical({"instruction": "번역해", "input": "cat", "output": "고양이"})
    assert rec["messages"][0] == U("번역해\n\ncat")


def test_sft_task_turns_pair_into_prompt_plus_chosen():
    _, rec = to_canonical({"prompt": "Q?", "chosen": "good", "rejected": "bad"}, task="sft")
    assert rec == {"messages": [U("Q?"), A("good")]}


def test_column_map():
    _, rec = to_canonical({"chosen": "\n\nHuman: q\n\nAssistant: a", "거부됨": "\n\nHuman: q\n\nAssistant: b"},
                          columns={"거부됨": "rejected"})
    assert rec["rejected"] == [A("b")]


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ([1, 2], "record is a list of non-text parts, expected a JSON object"),
    ("text", "record is a string, expected a JSON object"),
    (3, "record is a number, expected a JSON object"),
])
def test_not_an_object(value, expected):
    assert err(value) == expected


def test_no_known_format_names_keys():
    m = err({"question": "q", "answer": "a"})
    assert m.startswith("no known format") and "'question', 'answer'" in m


@pytest.mark.parametrize("record, expected", [
    ({"chosen": "x"}, "missing key 'rejected' (preference record)"),
    ({"rejected": "x"}, "missing key 'chosen' (preference record)"),
    ({"input": {"messages": [USER]}, "preferred_output": [A("a")]}, "missing key 'non_preferred_output' (OpenAI DPO format)"),
    ({"input": {"messages": [USER], "preferred_output": [A("a")]}}, "missing key 'input.non_preferred_output' (OpenAI DPO format)"),
    ({"input": {"msgs": []}}, "missing key 'input.messages' (OpenAI DPO format)"),
    ({"completion": "x"}, "missing key 'prompt' (prompt/completion record)"),
    ({"output": "x"}, "missing key 'input' (input/output record)"),
    ({"input": "x"}, "missing key 'output' (input/output record)"),
    ({"chosen": "good", "rejected": "bad"}, "missing key 'prompt': 'chosen' is a plain string and not a Human:/Assistant: transcript"),
])
def test_missing_keys(record, expected):
    assert err(record) == expected


def test_wrong_roles():
    assert err({"prompt": "q", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"}) == \
        "'chosen[0].role' is 'user'; outputs must be assistant messages"
    assert err({"prompt": [USER, {"role": "assistant", "content": "a"}], "chosen": "a", "rejected": "b"}) == \
        "'prompt' must end with a user turn, ends with assistant"
    assert err({"messages": [{"role": "tool", "content": "x"}]}) == \
        "'messages[0].role' is 'tool'; expected one of system, user, assistant"
    assert err({"messages": [USER]}) == "'messages' must end with an assistant turn, ends with user"


def test_content_not_text_and_empty():
    assert err({"prompt": "q", "chosen": 5, "rejected": "b"}) == "'chosen' must be a list of messages, got a number"
    assert err({"prompt": "q", "chosen": [{"role": "assistant", "content": None}], "rejected": "b"}) == \
        "'chosen[0].content' must be text, got null"
    assert err({"prompt": "q", "chosen": [{"role": "assistant", "content": [{"type": "image_url"}]}], "rejected": "b"}) == \
        "'chosen[0].content' must be text, got a list of non-text parts"
    assert err({"prompt": "  ", "chosen": "a", "rejected": "b"}) == "'prompt' is empty"
    assert err({"prompt": "q", "chosen": [{"role": "assistant"}], "rejected": "b"}) == "'chosen[0].content' is missing"


def test_identical_chosen_rejected():
    assert err({"prompt": "q", "chosen": "same", "rejected": "same"}) == "'chosen' and 'rejected' are identical"
    assert err({"input": {"messages": [USER]}, "preferred_output": [A("x")], "non_preferred_output": [A("x")]}) == \
        "'preferred_output' and 'non_preferred_output' are identical"


def test_hh_errors():
    assert err({"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: b\n\nAssistant: y"}) == \
        "HH transcript: the prompt before the last 'Assistant:' differs between 'chosen' and 'rejected'"
    assert err({"chosen": "\n\nHuman: a\n\nAssistant:", "rejected": "\n\nHuman: a\n\nAssistant: y"}) == \
        "HH transcript: the final 'Assistant:' response in 'chosen' is empty"
    assert err({"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: a\n\nAssistant:  "}) == \
        "HH transcript: the final 'Assistant:' response in 'rejected' is empty"


@pytest.mark.parametrize("w", [0.5, 2, -1, "1", True])
def test_weight_must_be_0_or_1(w):
    m = err({"messages": [USER, {"role": "assistant", "content": "a", "weight": w}]})
    assert m == f"'messages[1].weight' is {w!r}; expected 0 or 1"


def test_weight_on_user_message_and_all_zero():
    assert err({"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "a"}]}) == \
        "'messages[0].weight' is set on a user message; only assistant messages take a weight"
    assert err({"messages": [USER, {"role": "assistant", "content": "a", "weight": 0}]}) == \
        "'messages' has no assistant message with weight 1: nothing to train on"


def test_dpo_task_needs_pairs():
    assert err({"input": "q", "output": "a"}, task="dpo") == \
        "input-output record has no rejected output; --task dpo needs chosen/rejected pairs"
