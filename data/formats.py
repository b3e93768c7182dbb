"""One small function per input format: raw JSON object -> canonical record.

The canonical record is what the trainers need (TRL's conversational format):

    {"prompt": [messages...], "chosen": [assistant msg], "rejected": [assistant msg]}   # preference
    {"messages": [messages...]}                                                          # chat / SFT only
    {"prompt": [messages...], "completion": [assistant msg], "label": true|false}       # unpaired (KTO)
    {"text": "..."}                                                                      # language modeling, SFT only

Messages are ``{"role", "content", "weight"}``; ``weight`` is 1 or 0 on assistant
messages (seed 001: weight-0 replies are context, never trained on) and None elsewhere.
Every problem raises :class:`RecordError` naming the key at fault; the caller adds
``file:line``.  Detection is per record, so one file may mix formats.
"""

from __future__ import annotations

import json
import os
from typing import Any

ROLES = ("system", "user", "assistant")
# OpenAI's newer name for the system role; Gemma-3 only knows "system".
ROLE_ALIASES = {"developer": "system"}
HH_HUMAN = "\n\nHuman:"
HH_ASSISTANT = "\n\nAssistant:"
# Gemma-3's chat template renders none of these (no tool list, no call, no result turn, no
# reasoning channel), so a record using them cannot be trained on as written: refused, not dropped.
TOOL_ROLES = ("tool", "function", "ipython")
TOOL_KEYS = ("tool_calls", "function_call")
NO_TOOLS = ("tool calling is not supported: {}; Gemma-3's chat template renders no tool definitions, "
            "tool calls or tool results, so these turns cannot be trained on as written")


class RecordError(ValueError):
    """A record that cannot be used; ``str()`` is the message printed after ``file:line: error:``."""


def _text(value: Any, key: str) -> str:
    """Content as text. OpenAI also allows a list of ``{"type": "text", "text": ...}`` parts."""
    if type(value) is str:  # the hot path: validate must read >= 50,000 records/s
        if value and not value.isspace():
            return value
        raise RecordError(f"'{key}' is empty")
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and value and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value
    ):
        text = "".join(p["text"] for p in value)
    else:
        raise RecordError(f"'{key}' must be text, got {_kind(value)}")
    if not text.strip():
        raise RecordError(f"'{key}' is empty")
    return text


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list of non-text parts" if value else "an empty list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _message(m: Any, key: str, i: int | None = None) -> dict:
    # The key path ("chosen[0]") is only formatted on the error path: validate must read
    # >= 50,000 records/s and building it for every message costs a third of that.
    if not isinstance(m, dict):
        raise RecordError(f"'{_at(key, i)}' must be a message object, got {_kind(m)}")
    role = m.get("role")
    if role not in ROLES:
        role = ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
        if role in TOOL_ROLES:
            raise RecordError(NO_TOOLS.format(f"'{_at(key, i)}.role' is {role!r}"))
        if role not in ROLES:
            raise RecordError(f"'{_at(key, i)}.role' is {role!r}; expected one of system, user, assistant")
    content = m.get("content", _ABSENT)
    if len(m) > 2 or content is _ABSENT:  # only then can a key other than role + content be there
        _extra_keys(m, key, i)
    if type(content) is str and content and not content.isspace():
        pass
    elif content is _ABSENT:
        raise RecordError(f"'{_at(key, i)}.content' is missing")
    else:
        content = _text(content, f"{_at(key, i)}.content")
    weight = m.get("weight")
    if weight is not None:  # null = absent (our own exported rows carry it)
        if isinstance(weight, bool) or weight not in (0, 1):
            raise RecordError(f"'{_at(key, i)}.weight' is {weight!r}; expected 0 or 1")
        if role != "assistant":
            raise RecordError(f"'{_at(key, i)}.weight' is set on a {role} message; only assistant messages take a weight")
        weight = int(weight)
    elif role == "assistant":
        weight = 1
    return {"role": role, "content": content, "weight": weight}


def _extra_keys(m: dict, key: str, i: int | None) -> None:
    """Refuse what Gemma-3's template cannot render, before a "content is missing" hides the cause."""
    for k in TOOL_KEYS:
        if k in m:
            raise RecordError(NO_TOOLS.format(f"'{_at(key, i)}' has '{k}'"))
    if "thinking" in m:
        raise RecordError(f"'{_at(key, i)}.thinking' is set: reasoning channels (Harmony) are not supported; "
                          "Gemma-3's chat template has no place for them, and dropping them would train a different answer")


def _at(key: str, i: int | None) -> str:
    return key if i is None else f"{key}[{i}]"


_ABSENT = object()


def _messages(value: Any, key: str) -> list[dict]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RecordError(f"'{key}' must be a list of messages, got {_kind(value)}")
    if not value:
        raise RecordError(f"'{key}' is empty")
    return [_message(m, key, i) for i, m in enumerate(value)]


def _prompt(value: Any, key: str) -> list[dict]:
    """A prompt as messages: a string becomes one user turn; it must end with a user turn."""
    if isinstance(value, str):
        return [{"role": "user", "content": _text(value, key), "weight": None}]
    msgs = _messages(value, key)
    if msgs[-1]["role"] != "user":
        raise RecordError(f"'{key}' must end with a user turn, ends with {msgs[-1]['role']}")
    return msgs


def _output(value: Any, key: str) -> list[dict]:
    """A completion as messages: a string becomes one assistant turn; every turn must be assistant."""
    if isinstance(value, str):
        return [{"role": "assistant", "content": _text(value, key), "weight": 1}]
    msgs = _messages(value, key)
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            where = key if len(msgs) == 1 and not isinstance(value, list) else f"{key}[{i}]"
            raise RecordError(f"'{where}.role' is {m['role']!r}; outputs must be assistant messages")
    return msgs


def _pair(prompt: list[dict], chosen: list[dict], rejected: list[dict], keys: tuple[str, str]) -> dict:
    if [m["content"] for m in chosen] == [m["content"] for m in rejected]:
        raise RecordError(f"'{keys[0]}' and '{keys[1]}' are identical")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


# --- the formats ------------------------------------------------------------------------------


def openai_dpo(r: dict) -> dict:
    """OpenAI DPO: ``input.messages`` + ``preferred_output`` / ``non_preferred_output``.

    Seed 000's variant nests the two outputs inside ``input``; both layouts are read.
    """
    inp = r["input"]
    src = r if ("preferred_output" in r or "non_preferred_output" in r) else inp
    where = "" if src is r else "input."
    for k in ("preferred_output", "non_preferred_output"):
        if k not in src:
            raise RecordError(f"missing key '{where}{k}' (OpenAI DPO format)")
    prompt = _prompt(inp["messages"], "input.messages")
    return _pair(
        prompt,
        _output(src["preferred_output"], f"{where}preferred_output"),
        _output(src["non_preferred_output"], f"{where}non_preferred_output"),
        (f"{where}preferred_output", f"{where}non_preferred_output"),
    )


def openai_chat(r: dict) -> dict:
    """OpenAI chat SFT: ``messages`` with optional per-assistant ``weight`` 0/1 (seed 001)."""
    msgs = _messages(r["messages"], "messages")
    if msgs[-1]["role"] != "assistant":
        raise RecordError(f"'messages' must end with an assistant turn, ends with {msgs[-1]['role']}")
    if not any(m["weight"] for m in msgs if m["role"] == "assistant"):
        raise RecordError("'messages' has no assistant message with weight 1: nothing to train on")
    return {"messages": msgs}


def trl_explicit(r: dict) -> dict:
    """TRL ``prompt`` / ``chosen`` / ``rejected``, each a string or a message list."""
    return _pair(_prompt(r["prompt"], "prompt"), _output(r["chosen"], "chosen"), _output(r["rejected"], "rejected"), ("chosen", "rejected"))


def hh_transcript(text: str, key: str) -> list[dict]:
    """``\\n\\nHuman: ...\\n\\nAssistant: ...`` -> messages (HH-RLHF)."""
    msgs: list[dict] = []
    pos = 0
    while pos < len(text):
        h = text.find(HH_HUMAN, pos)
        a = text.find(HH_ASSISTANT, pos)
        nxt = min(x for x in (h, a) if x >= 0) if (h >= 0 or a >= 0) else -1
        if nxt < 0:
            break
        if not msgs and text[pos:nxt].strip():
            raise RecordError(f"'{key}' has text before the first Human:/Assistant: turn")
        if msgs:
            msgs[-1]["content"] += text[pos:nxt]
        role, marker = ("user", HH_HUMAN) if nxt == h else ("assistant", HH_ASSISTANT)
        msgs.append({"role": role, "content": "", "weight": 1 if role == "assistant" else None})
        pos = nxt + len(marker)
    if msgs:
        msgs[-1]["content"] += text[pos:]
    for m in msgs:
        m["content"] = m["content"].strip()
    return msgs


def hh_pair(c: str, j: str) -> dict:
    """Two HH-RLHF transcripts: the prompt is everything before the last ``Assistant:``, which must match."""
    if HH_ASSISTANT not in c:
        raise RecordError("'chosen' is not a Human:/Assistant: transcript")
    if HH_ASSISTANT not in j:
        raise RecordError("'rejected' is not a Human:/Assistant: transcript")
    cp, _, cr = c.rpartition(HH_ASSISTANT)
    jp, _, jr = j.rpartition(HH_ASSISTANT)
    if cp.strip() != jp.strip():
        raise RecordError("HH transcript: the prompt before the last 'Assistant:' differs between 'chosen' and 'rejected'")
    if not cr.strip():
        raise RecordError("HH transcript: the final 'Assistant:' response in 'chosen' is empty")
    if not jr.strip():
        raise RecordError("HH transcript: the final 'Assistant:' response in 'rejected' is empty")
    prompt = hh_transcript(cp, "chosen")
    if not prompt:
        raise RecordError("HH transcript: no 'Human:' turn before the last 'Assistant:'")
    if prompt[-1]["role"] != "user":
        raise RecordError("HH transcript: the prompt must end with a 'Human:' turn")
    return _pair(
        prompt,
        [{"role": "assistant", "content": cr.strip(), "weight": 1}],
        [{"role": "assistant", "content": jr.strip(), "weight": 1}],
        ("chosen", "rejected"),
    )


def shared_prefix_pair(c: str, j: str) -> dict:
    """Two plain strings split where TRL's ``extract_prompt`` splits them: at the first differing
    character, one step back when the character before it is a space (the space starts the answers).

    By hand rather than calling TRL: where TRL would return an empty prompt, or cut inside the
    shorter string when one string is the start of the other, this raises instead; and importing
    TRL (torch, transformers) would cost the validator seconds. tests/test_formats.py runs both
    side by side.
    """
    n = len(os.path.commonprefix([c, j]))
    if n == len(c) == len(j):
        raise RecordError("'chosen' and 'rejected' are identical")
    if n == min(len(c), len(j)):
        short, long = ("chosen", "rejected") if n == len(c) else ("rejected", "chosen")
        raise RecordError(f"'{short}' is the start of '{long}': nothing of it is left after the shared prompt (implicit prompt)")
    if n and c[n - 1] == " ":
        n -= 1
    if not c[:n].strip():
        raise RecordError("missing key 'prompt': 'chosen' and 'rejected' share no text at the start to use as the prompt (implicit prompt)")
    return _pair([{"role": "user", "content": c[:n], "weight": None}], _output(c[n:], "chosen"), _output(j[n:], "rejected"),
                 ("chosen", "rejected"))


def implicit_prompt(r: dict) -> dict:
    """``chosen`` / ``rejected`` only: HH-RLHF transcripts, two plain strings or two message lists
    sharing a prefix (the prompt)."""
    c, j = r["chosen"], r["rejected"]
    if isinstance(c, str) and isinstance(j, str):
        # HH-RLHF first: its transcripts share a prefix too, but its prompt must end at a turn.
        if any(marker in s for s in (c, j) for marker in (HH_HUMAN, HH_ASSISTANT)):
            return hh_pair(c, j)
        return shared_prefix_pair(c, j)
    if isinstance(c, list) and isinstance(j, list):
        cm, jm = _messages(c, "chosen"), _messages(j, "rejected")
        n = 0
        while n < min(len(cm), len(jm)) and cm[n] == jm[n]:
            n += 1
        if n == 0:
            raise RecordError("missing key 'prompt': 'chosen' and 'rejected' share no leading messages to use as the prompt")
        prompt = cm[:n]
        if prompt[-1]["role"] != "user":
            raise RecordError("the shared prompt of 'chosen' and 'rejected' must end with a user turn")
        for key, rest in (("chosen", cm[n:]), ("rejected", jm[n:])):
            if not rest:
                raise RecordError(f"'{key}' has no response after the shared prompt")
            for m in rest:
                if m["role"] != "assistant":
                    raise RecordError(f"'{key}' continues with a {m['role']} message; responses must be assistant messages")
        return _pair(prompt, cm[n:], jm[n:], ("chosen", "rejected"))
    raise RecordError(f"'chosen' and 'rejected' must both be strings or both message lists, got {_kind(c)} and {_kind(j)}")


def prompt_completion(r: dict) -> dict:
    """``prompt`` / ``completion`` (TRL) -> one SFT conversation."""
    return {"messages": _prompt(r["prompt"], "prompt") + _output(r["completion"], "completion")}


def input_output(r: dict) -> dict:
    """``input`` / ``output`` (seed 004's SFT data; Alpaca's ``instruction`` is prepended when present)."""
    user = _text(r["input"], "input") if "input" in r and r["input"] != "" else None
    if "instruction" in r:
        inst = _text(r["instruction"], "instruction")
        user = inst if user is None else f"{inst}\n\n{user}"
    if user is None:
        raise RecordError("'input' is empty")
    return {"messages": [{"role": "user", "content": user, "weight": None}] + _output(r["output"], "output")}


def unpaired(r: dict) -> dict:
    """TRL's unpaired preference (KTO): ``prompt`` / ``completion`` / boolean ``label``."""
    label = r["label"]
    if type(label) is not bool:
        shown = json.dumps(label, ensure_ascii=False)
        raise RecordError(f"'label' is {shown[:40]}; expected true or false (unpaired preference: is the completion preferred?)")
    return {"prompt": _prompt(r["prompt"], "prompt"), "completion": _output(r["completion"], "completion"), "label": label}


def language_modeling(r: dict) -> dict:
    """TRL's language-modeling type: one ``text``, all of it the training target (SFT only)."""
    return {"text": _text(r["text"], "text")}


FORMATS = ("openai-dpo", "openai-chat", "trl", "hh/implicit", "prompt-completion", "input-output", "unpaired", "text")


def detect(r: dict) -> str:
    """Name of the format of one record, or raise naming what is missing."""
    if "tools" in r:
        raise RecordError(NO_TOOLS.format("the record has a 'tools' column"))
    if isinstance(r.get("input"), dict):
        if "messages" not in r["input"]:
            raise RecordError("missing key 'input.messages' (OpenAI DPO format)")
        return "openai-dpo"
    if "chosen" in r or "rejected" in r:
        for k in ("chosen", "rejected"):
            if k not in r:
                raise RecordError(f"missing key '{k}' (preference record)")
        return "trl" if "prompt" in r else "hh/implicit"
    if "messages" in r:
        return "openai-chat"
    if "completions" in r or "labels" in r:
        raise RecordError("stepwise supervision (prompt/completions/labels, TRL's type for process reward models) is not "
                          "supported: neither SFT nor DPO learns from per-step labels; join the steps into one 'completion'")
    if "completion" in r:
        if "prompt" not in r:
            raise RecordError("missing key 'prompt' (prompt/completion record)")
        return "unpaired" if "label" in r else "prompt-completion"
    if "output" in r:
        if "input" not in r and "instruction" not in r:
            raise RecordError("missing key 'input' (input/output record)")
        return "input-output"
    if "text" in r:
        return "text"
    if "prompt" in r:
        # TRL's prompt-only type (online methods such as GRPO): no answer to learn from
        raise RecordError("missing key 'chosen'/'rejected' or 'completion' after 'prompt'")
    if "input" in r:
        raise RecordError("missing key 'output' (input/output record)")
    found = ", ".join(repr(k) for k in list(r)[:6]) or "none"
    raise RecordError(
        "no known format: expected input.messages+preferred_output (OpenAI DPO), messages (OpenAI chat), "
        "prompt/chosen/rejected (TRL), chosen/rejected (implicit prompt, HH-RLHF), prompt/completion(/label), "
        f"input/output or text; keys found: {found}"
    )


_CONVERTERS = {
    "openai-dpo": openai_dpo,
    "openai-chat": openai_chat,
    "trl": trl_explicit,
    "hh/implicit": implicit_prompt,
    "prompt-completion": prompt_completion,
    "input-output": input_output,
    "unpaired": unpaired,
    "text": language_modeling,
}


# --- what each task reads ---------------------------------------------------------------------


def for_sft(fmt: str, rec: dict) -> dict:
    """A conversation (a pair gives prompt + chosen) or a plain text; never a completion labelled false."""
    if "chosen" in rec:
        return {"messages": rec["prompt"] + rec["chosen"]}
    if "label" in rec:
        # Our rule, not TRL's (its SFT ignores 'label'): training on an answer marked "not
        # preferred" is never what a user means. With data.on_error=skip it is a listed rejection.
        if not rec["label"]:
            raise RecordError("'label' is false (not preferred): SFT trains only on completions labelled true "
                              "(method=kto learns from both)")
        return {"messages": rec["prompt"] + rec["completion"]}
    return rec


def for_dpo(fmt: str, rec: dict) -> dict:
    """A chosen/rejected pair for one prompt."""
    if "chosen" in rec:
        return rec
    if "label" in rec:
        raise RecordError("unpaired preference record (prompt/completion/label): --task dpo needs a chosen and a rejected "
                          "answer to the same prompt; train unpaired data with method=kto")
    if "text" in rec:
        raise RecordError("missing keys 'chosen' and 'rejected': a language-modeling 'text' record has no preference pair; "
                          "--task dpo needs chosen/rejected pairs")
    raise RecordError(f"{fmt} record has no rejected output; --task dpo needs chosen/rejected pairs")


def for_kto(fmt: str, rec: dict) -> dict:
    """Unpaired rows as they are, or a pair (the loader's ``to_rows`` unpairs it: chosen true, rejected false)."""
    if "chosen" in rec or "label" in rec:
        return rec
    raise RecordError(f"{fmt} record has no label: --task kto needs prompt/completion/label records or chosen/rejected pairs")


FOR_TASK = {"sft": for_sft, "dpo": for_dpo, "kto": for_kto}


def to_canonical(r: Any, task: str | None = None, columns: dict[str, str] | None = None) -> tuple[str, dict]:
    """(format name, canonical record) for one raw JSON value; raises :class:`RecordError`.

    ``task`` shapes the record for one method (:data:`FOR_TASK`): ``"dpo"`` requires a pair,
    ``"sft"`` turns a pair into prompt + chosen, so both methods read the same file.
    """
    if not isinstance(r, dict):
        raise RecordError(f"record is {_kind(r) if not isinstance(r, str) else 'a string'}, expected a JSON object")
    if columns:
        r = {columns.get(k, k): v for k, v in r.items()}
    fmt = detect(r)
    rec = _CONVERTERS[fmt](r)
    return fmt, (FOR_TASK[task](fmt, rec) if task else rec)


def conversations(rec: dict) -> list[list[dict]]:
    """Every whole conversation in a canonical record (none in a plain text)."""
    if "messages" in rec:
        return [rec["messages"]]
    if "chosen" in rec:
        return [rec["prompt"] + rec["chosen"], rec["prompt"] + rec["rejected"]]
    if "completion" in rec:
        return [rec["prompt"] + rec["completion"]]
    return []


def alternates(msgs: list[dict]) -> bool:
    """Gemma-3's chat template raises unless turns alternate user/assistant after one optional system turn."""
    body = msgs[1:] if msgs and msgs[0]["role"] == "system" else msgs
    return all(m["role"] == ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(body))
