"""Every input format and every record-level error, with hand-checked expectations."""

import json

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
    ({"chosen": "good", "rejected": "bad"},
     "missing key 'prompt': 'chosen' and 'rejected' share no text at the start to use as the prompt (implicit prompt)"),
])
def test_missing_keys(record, expected):
    assert err(record) == expected


def test_wrong_roles():
    assert err({"prompt": "q", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"}) == \
        "'chosen[0].role' is 'user'; outputs must be assistant messages"
    assert err({"prompt": [USER, {"role": "assistant", "content": "a"}], "chosen": "a", "rejected": "b"}) == \
        "'prompt' must end with a user turn, ends with assistant"
    assert err({"messages": [{"role": "robot", "content": "x"}]}) == \
        "'messages[0].role' is 'robot'; expected one of system, user, assistant"
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


# --- every example record of TRL's guide "Dataset formats and types" ---------------------------
# Copied verbatim from huggingface/trl docs/source/dataset_formats.md at commit
# 0087e4f5f389bf0fba0d8d5458e2243a11640f6c (the copy of the guide that has the Tool Calling and
# Harmony sections; the installed TRL is 1.16.0, whose wheel ships no docs). Later versions of the
# guide write the `tools` column as a JSON string (json.dumps([...])); both shapes are checked.
# Python literals as the guide prints them (True/False), which is what a dataset row holds.

messages = [
    {"role": "user", "content": "Turn on the living room lights."},
    {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {
            "name": "control_light",
            "arguments": {"room": "living room", "state": "on"}
        }}]
    },
    {"role": "tool", "name": "control_light", "content": "The lights in the living room are now on."},
    {"role": "assistant", "content": "Done!"}
]
json_schema = {
    "type": "function",
    "function": {
        "name": "control_light",
        "description": "Controls the lights in a room.",
        "parameters": {
            "type": "object",
            "properties": {
                "room": {"type": "string", "description": "The name of the room."},
                "state": {"type": "string", "description": 'The desired state of the light ("on" or "off").'},
            },
            "required": ["room", "state"],
        },
        "return": {"type": "string", "description": "str: A message indicating the new state of the lights."},
    },
}
chat = [
    {"role": "user", "content": "Hello, how are you?"},
    {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
    {"role": "user", "content": "I'd like to show off how chat templating works!"},
]

GUIDE = {
    "language modeling, standard": {"text": "The sky is blue."},
    "language modeling, conversational": {"messages": [{"role": "user", "content": "What color is the sky?"},
                                                       {"role": "assistant", "content": "It is blue."}]},
    "prompt-only, standard": {"prompt": "The sky is"},
    "prompt-only, conversational": {"prompt": [{"role": "user", "content": "What color is the sky?"}]},
    "prompt-completion, standard": {"prompt": "The sky is",
                                    "completion": " blue."},
    "prompt-completion, conversational": {"prompt": [{"role": "user", "content": "What color is the sky?"}],
                                          "completion": [{"role": "assistant", "content": "It is blue."}]},
    "preference, standard": {"prompt": "The sky is",
                             "chosen": " blue.",
                             "rejected": " green."},
    "preference, implicit prompt, standard": {"chosen": "The sky is blue.",
                                              "rejected": "The sky is green."},
    "preference, conversational": {"prompt": [{"role": "user", "content": "What color is the sky?"}],
                                   "chosen": [{"role": "assistant", "content": "It is blue."}],
                                   "rejected": [{"role": "assistant", "content": "It is green."}]},
    "preference, implicit prompt, conversational": {"chosen": [{"role": "user", "content": "What color is the sky?"},
                                                               {"role": "assistant", "content": "It is blue."}],
                                                    "rejected": [{"role": "user", "content": "What color is the sky?"},
                                                                 {"role": "assistant", "content": "It is green."}]},
    "unpaired preference, standard": {"prompt": "The sky is",
                                      "completion": " blue.",
                                      "label": True},
    "unpaired preference, conversational (overview table)": {"prompt": [{"role": "user", "content": "What color is the sky?"}],
                                                             "completion": [{"role": "assistant", "content": "It is green."}],
                                                             "label": False},
    "unpaired preference, conversational (types section)": {"prompt": [{"role": "user", "content": "What color is the sky?"}],
                                                            "completion": [{"role": "assistant", "content": "It is blue."}],
                                                            "label": True},
    "stepwise supervision (overview table)": {"prompt": "Which number is larger, 9.8 or 9.11?",
                                              "completions": ["The fractional part of 9.8 is 0.8.",
                                                              "The fractional part of 9.11 is 0.11.",
                                                              "0.11 is greater than 0.8.",
                                                              "Hence, 9.11 > 9.8."],
                                              "labels": [True, True, False, False]},
    "stepwise supervision (types section)": {
        "prompt": "Which number is larger, 9.8 or 9.11?",
        "completions": ["The fractional part of 9.8 is 0.8, while the fractional part of 9.11 is 0.11.", "Since 0.11 is greater than 0.8, the number 9.11 is larger than 9.8."],
        "labels": [True, False]
    },
    "conversational messages (formats section)": {"messages": chat},
    "tool calling": {"messages": messages},
    "tool calling with the tools column": {"messages": messages, "tools": [json_schema]},
    "tool calling, tools as a JSON string (later guide)": {"messages": messages, "tools": json.dumps([json_schema])},
    "harmony": {"messages": [
        {"role": "developer", "content": "Use a friendly tone."},
        {"role": "user", "content": "What is the meaning of life?"},
        {"role": "assistant", "thinking": "Deep reflection...", "content": "The final answer is..."},
    ]},
    # the guide shows only the content of a vision message; the record around it is ours
    "vision content": {"prompt": [{"role": "user", "content": [
        {"type": "image"},
        {"type": "text", "text": "What color is the sky in the image?"}
    ]}], "completion": [{"role": "assistant", "content": "It is blue."}]},
}

SKY_Q, BLUE, GREEN = U("What color is the sky?"), A("It is blue."), A("It is green.")
NO_PAIR = "record has no rejected output; --task dpo needs chosen/rejected pairs"
PROMPT_ONLY = "missing key 'chosen'/'rejected' or 'completion' after 'prompt'"
STEPWISE = ("stepwise supervision (prompt/completions/labels, TRL's type for process reward models) is not supported: "
            "neither SFT nor DPO learns from per-step labels; join the steps into one 'completion'")
UNPAIRED_DPO = ("unpaired preference record (prompt/completion/label): --task dpo needs a chosen and a rejected answer "
                "to the same prompt; train unpaired data with method=kto")
NO_TOOLS = ("tool calling is not supported: {}; Gemma-3's chat template renders no tool definitions, tool calls or "
            "tool results, so these turns cannot be trained on as written")
THINKING = ("'messages[2].thinking' is set: reasoning channels (Harmony) are not supported; Gemma-3's chat template has "
            "no place for them, and dropping them would train a different answer")
VISION = "'prompt[0].content' must be text, got a list of non-text parts"

# name: (TRL's is_conversational, outcome for --task sft, outcome for --task dpo); a str is the error
EXPECTED = {
    "language modeling, standard": (False, {"text": "The sky is blue."},
                                    "missing keys 'chosen' and 'rejected': a language-modeling 'text' record has no "
                                    "preference pair; --task dpo needs chosen/rejected pairs"),
    "language modeling, conversational": (True, {"messages": [SKY_Q, BLUE]}, "openai-chat " + NO_PAIR),
    "prompt-only, standard": (False, PROMPT_ONLY, PROMPT_ONLY),
    "prompt-only, conversational": (True, PROMPT_ONLY, PROMPT_ONLY),
    "prompt-completion, standard": (False, {"messages": [U("The sky is"), A(" blue.")]}, "prompt-completion " + NO_PAIR),
    "prompt-completion, conversational": (True, {"messages": [SKY_Q, BLUE]}, "prompt-completion " + NO_PAIR),
    "preference, standard": (False, {"messages": [U("The sky is"), A(" blue.")]},
                             {"prompt": [U("The sky is")], "chosen": [A(" blue.")], "rejected": [A(" green.")]}),
    # the prompt is the shared prefix, as trl.data_utils.extract_prompt cuts it (see below)
    "preference, implicit prompt, standard": (False, {"messages": [U("The sky is"), A(" blue.")]},
                                              {"prompt": [U("The sky is")], "chosen": [A(" blue.")], "rejected": [A(" green.")]}),
    "preference, conversational": (True, {"messages": [SKY_Q, BLUE]}, {"prompt": [SKY_Q], "chosen": [BLUE], "rejected": [GREEN]}),
    "preference, implicit prompt, conversational": (True, {"messages": [SKY_Q, BLUE]},
                                                    {"prompt": [SKY_Q], "chosen": [BLUE], "rejected": [GREEN]}),
    "unpaired preference, standard": (False, {"messages": [U("The sky is"), A(" blue.")]}, UNPAIRED_DPO),
    "unpaired preference, conversational (overview table)": (
        True, "'label' is false (not preferred): SFT trains only on completions labelled true (method=kto learns from both)",
        UNPAIRED_DPO),
    "unpaired preference, conversational (types section)": (True, {"messages": [SKY_Q, BLUE]}, UNPAIRED_DPO),
    "stepwise supervision (overview table)": (False, STEPWISE, STEPWISE),
    "stepwise supervision (types section)": (False, STEPWISE, STEPWISE),
    # a conversation that ends with the user: nothing after it to learn (our rule since seed 001)
    "conversational messages (formats section)": (True, "'messages' must end with an assistant turn, ends with user",
                                                  "'messages' must end with an assistant turn, ends with user"),
    "tool calling": (True, NO_TOOLS.format("'messages[1]' has 'tool_calls'"), NO_TOOLS.format("'messages[1]' has 'tool_calls'")),
    "tool calling with the tools column": (True, NO_TOOLS.format("the record has a 'tools' column"),
                                           NO_TOOLS.format("the record has a 'tools' column")),
    "tool calling, tools as a JSON string (later guide)": (True, NO_TOOLS.format("the record has a 'tools' column"),
                                                           NO_TOOLS.format("the record has a 'tools' column")),
    "harmony": (True, THINKING, THINKING),
    "vision content": (True, VISION, VISION),
}


def test_the_guide_table_is_complete():
    assert set(EXPECTED) == set(GUIDE)


@pytest.mark.parametrize("task", ["sft", "dpo"])
@pytest.mark.parametrize("name", list(GUIDE))
def test_trl_guide_record(name, task):
    from trl.data_utils import is_conversational

    record = GUIDE[name]
    conversational, *outcomes = EXPECTED[name]
    assert is_conversational(record) is conversational  # the guide's standard/conversational, by TRL's own helper
    want = outcomes[task == "dpo"]
    if isinstance(want, str):
        assert err(record, task) == want
    else:
        assert to_canonical(record, task)[1] == want


def test_trl_guide_records_through_the_cli(tmp_path, capsys):
    """What the issue ran: ``python -m data validate --task sft|dpo`` on every record of the guide."""
    from data.__main__ import main

    p = tmp_path / "guide.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in GUIDE.values()), encoding="utf-8")
    for task in ("sft", "dpo"):
        assert main(["validate", str(p), "--task", task]) == 1
        out = capsys.readouterr().out.splitlines()
        errors = [x for x in out if ": error: " in x]
        valid = sum(not isinstance(o[1 + (task == "dpo")], str) for o in EXPECTED.values())
        assert out[-1] == f"{p}: {valid} valid, {len(GUIDE) - valid} errors, 0 warnings"
        assert all(x.startswith(f"{p}:") for x in errors) and len(errors) == len(GUIDE) - valid
    assert valid == 4  # dpo: the four preference records


# --- implicit prompt with plain strings, side by side with TRL ----------------------------------

SPLITS = [  # chosen, rejected -> prompt, chosen answer, rejected answer (checked by hand)
    ("The sky is blue.", "The sky is green.", "The sky is", " blue.", " green."),
    ("The sky is blue.", "The sky is black.", "The sky is bl", "ue.", "ack."),  # TRL cuts inside a word too
    ("하늘은 파랗다.", "하늘은 초록색이다.", "하늘은", " 파랗다.", " 초록색이다."),
    ("Q:  yes", "Q:  no", "Q: ", " yes", " no"),  # one space stepped back over, not two
    ("Q?\nYes", "Q?\nNo", "Q?\n", "Yes", "No"),  # a newline stays with the prompt
]


@pytest.mark.parametrize("c, j, prompt, chosen, rejected", SPLITS)
def test_implicit_prompt_splits_as_trl_does(c, j, prompt, chosen, rejected):
    from trl.data_utils import maybe_extract_prompt

    ours = to_canonical({"chosen": c, "rejected": j}, "dpo")[1]
    trl = maybe_extract_prompt({"chosen": c, "rejected": j})
    assert (trl["prompt"], trl["chosen"], trl["rejected"]) == (prompt, chosen, rejected)
    assert ours == {"prompt": [U(prompt)], "chosen": [A(chosen)], "rejected": [A(rejected)]}


@pytest.mark.parametrize("c, j, trl_split, expected", [
    ("blue", "green", ("", "blue", "green"),
     "missing key 'prompt': 'chosen' and 'rejected' share no text at the start to use as the prompt (implicit prompt)"),
    (" blue", " green", ("", " blue", " green"),
     "missing key 'prompt': 'chosen' and 'rejected' share no text at the start to use as the prompt (implicit prompt)"),
    ("The sky is blue.", "The sky is blue. Really.", ("The sky is blue", ".", ". Really."),
     "'chosen' is the start of 'rejected': nothing of it is left after the shared prompt (implicit prompt)"),
    ("Yes. Sure", "Yes.", ("Yes", ". Sure", "."),
     "'rejected' is the start of 'chosen': nothing of it is left after the shared prompt (implicit prompt)"),
])
def test_implicit_prompt_refuses_where_trl_returns_a_broken_split(c, j, trl_split, expected):
    from trl.data_utils import maybe_extract_prompt

    trl = maybe_extract_prompt({"chosen": c, "rejected": j})
    assert (trl["prompt"], trl["chosen"], trl["rejected"]) == trl_split
    assert err({"chosen": c, "rejected": j}) == expected


def test_hh_transcripts_are_detected_before_the_plain_string_split():
    c = "\n\nHuman: Is the sky blue?\n\nAssistant: Yes, blue."
    j = "\n\nHuman: Is the sky blue?\n\nAssistant: Yes, black."
    _, rec = to_canonical({"chosen": c, "rejected": j})
    assert rec == {"prompt": [U("Is the sky blue?")], "chosen": [A("Yes, blue.")], "rejected": [A("Yes, black.")]}
    # one transcript and one plain string is a broken HH record, not a prefix split
    assert err({"chosen": c, "rejected": "Yes, black."}) == "'rejected' is not a Human:/Assistant: transcript"
    assert err({"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: hi there"}) == \
        "'chosen' is not a Human:/Assistant: transcript"


# --- unpaired preference -------------------------------------------------------------------------


@pytest.mark.parametrize("label, shown", [(1, "1"), (0, "0"), ("true", '"true"'), (None, "null"), ([True], "[true]")])
def test_label_must_be_a_boolean(label, shown):
    assert err({"prompt": "q", "completion": "a", "label": label}) == \
        f"'label' is {shown}; expected true or false (unpaired preference: is the completion preferred?)"


def test_unpaired_record_as_each_task_reads_it():
    r = {"prompt": [SYS, USER], "completion": "짜장면", "label": False}
    fmt, rec = to_canonical(r)
    assert fmt == "unpaired" and rec == {"prompt": [S(SYS["content"]), U("점심 뭐 먹지?")], "completion": [A("짜장면")], "label": False}
    assert to_canonical(r, "kto")[1] == rec
    assert to_canonical({**r, "label": True}, "sft")[1] == {"messages": [S(SYS["content"]), U("점심 뭐 먹지?"), A("짜장면")]}
    assert err(r, "sft").startswith("'label' is false (not preferred)")
    assert err(r, "dpo") == UNPAIRED_DPO


def test_kto_task_needs_a_label_or_a_pair():
    assert to_canonical({"prompt": "q", "chosen": "a", "rejected": "b"}, "kto")[1]["rejected"] == [A("b")]
    assert err({"prompt": "q", "completion": "a"}, "kto") == \
        "prompt-completion record has no label: --task kto needs prompt/completion/label records or chosen/rejected pairs"
    assert err({"text": "x"}, "kto").startswith("text record has no label")


# --- language modeling, tool calls, empty text ---------------------------------------------------


def test_text_record():
    assert to_canonical({"text": "바다는 푸르다"}) == ("text", {"text": "바다는 푸르다"})
    assert err({"text": "  "}) == "'text' is empty"
    assert err({"text": 3}) == "'text' must be text, got a number"


@pytest.mark.parametrize("message, where", [
    ({"role": "tool", "content": "42"}, "'messages[1].role' is 'tool'"),
    ({"role": "function", "name": "f", "content": "42"}, "'messages[1].role' is 'function'"),
    ({"role": "assistant", "content": "Calling it.", "tool_calls": []}, "'messages[1]' has 'tool_calls'"),
    ({"role": "assistant", "content": None, "function_call": {"name": "f"}}, "'messages[1]' has 'function_call'"),
])
def test_tool_turns_are_refused_with_the_reason(message, where):
    assert err({"messages": [USER, message, {"role": "assistant", "content": "네"}]}) == NO_TOOLS.format(where)
