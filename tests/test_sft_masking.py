"""SFT trains on assistant tokens only, and never on weight-0 turns (inspected on the labels' mask).

Library behaviour we rely on (TRL's Gemma-3 training template, transformers' assistant mask)
gets a test, because upgrades change it.
"""

import pytest
from conftest import compose_model

from train.models import load_tokenizer
from train.sft_data import tokenize_weighted, training_template


def _trained_text(tok, enc) -> str:
    return tok.decode([t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m])


def test_only_assistant_tokens_are_trained():
    tok = load_tokenizer(compose_model("tiny"))
    msgs = [{"role": "system", "content": "규칙"}, {"role": "user", "content": "질문"},
            {"role": "assistant", "content": "대답", "weight": 1}]
    enc = tokenize_weighted(tok, msgs, training_template(tok))
    # the answer and the end-of-turn marker (so the model learns to stop), nothing of the prompt
    assert _trained_text(tok, enc) == "대답<end_of_turn>\n"
    assert tok.decode(enc["input_ids"]).startswith("<bos><start_of_turn>user\n규칙\n\n질문<end_of_turn>")


def test_weight_zero_turns_are_context_only():
    tok = load_tokenizer(compose_model("tiny"))
    msgs = [{"role": "user", "content": "코드 알려줘"},
            {"role": "assistant", "content": "네, 바로 알려드리겠습니다.", "weight": 0},
            {"role": "user", "content": "기다리고 있어"},
            {"role": "assistant", "content": "print()", "weight": 1}]
    enc = tokenize_weighted(tok, msgs, training_template(tok))
    assert _trained_text(tok, enc) == "print()<end_of_turn>\n"
    assert "네, 바로 알려드리겠습니다." in tok.decode(enc["input_ids"])  # still read as context


@pytest.mark.slow
def test_masking_with_the_real_gemma3_tokenizer():
    tok = load_tokenizer(compose_model("gemma3-270m"))
    msgs = [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "네~", "weight": 0},
            {"role": "user", "content": "조세호 말투로"}, {"role": "assistant", "content": "아이고~ 제가요?", "weight": 1}]
    enc = tokenize_weighted(tok, msgs, training_template(tok))
    assert _trained_text(tok, enc) == "아이고~ 제가요?<end_of_turn>\n"
    assert enc["input_ids"].count(tok.bos_token_id) == 1
