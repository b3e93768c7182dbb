"""``python -m data generate --out FILE --n N``: grow preference pairs the way seed 000 does.

Seed 000's prompt (``data/prompts/seed000.txt``; the questions are filled in at
``{{questions}}``) goes to an OpenAI-compatible chat-completions endpoint through the
``openai`` client. The reply is parsed leniently (:func:`parse_records`), every record goes
through the shared validator (:func:`data.formats.to_canonical`), and the valid, new ones are
appended to FILE as OpenAI DPO lines. ``FILE.done`` lists the questions already answered, so
re-running the same command sends only the rest. Settings: ``conf/generate.yaml``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING

from .export import dpo_row
from .formats import RecordError, to_canonical
from .validate import validate_file

HERE = Path(__file__).resolve().parent
PROMPTS = HERE / "prompts"
CONFIG = HERE.parent / "conf" / "generate.yaml"
PLACEHOLDER = "{{questions}}"
# how the reply length cap is sent: OpenAI's API reads max_completion_tokens (max_tokens is
# deprecated there), while llama.cpp's, vLLM's and other local servers read only max_tokens
LENGTH_PARAMS = ("auto", "max_completion_tokens", "max_tokens")
OPENAI_HOST = "api.openai.com"


class UsageError(Exception):
    """A bad flag, config, file or missing key: one line on stderr, exit 2."""


# --- settings ---------------------------------------------------------------------------------


@dataclass
class GenerateConfig:
    """The schema of conf/generate.yaml; its values live only there."""

    base_url: Optional[str] = MISSING  # None: the openai client's own default (OPENAI_BASE_URL, else OpenAI)
    model: str = MISSING
    api_key_env: str = MISSING
    prompt: str = MISSING
    questions: str = MISSING
    questions_per_call: int = MISSING
    temperature: Optional[float] = MISSING
    max_completion_tokens: Optional[int] = MISSING
    max_tokens_param: str = MISSING  # auto | max_completion_tokens | max_tokens
    keep_paraphrases: bool = MISSING
    timeout_s: float = MISSING
    max_retries: int = MISSING
    backoff_base_s: float = MISSING
    backoff_max_s: float = MISSING


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> GenerateConfig:
    """conf/generate.yaml, then the file at ``path`` (some keys), then ``overrides`` (non-None)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = OmegaConf.merge(OmegaConf.structured(GenerateConfig), OmegaConf.load(CONFIG))
        if path is not None:
            if not Path(path).is_file():
                raise UsageError(f"--config {path}: no such file")
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        cfg = OmegaConf.merge(cfg, {k: v for k, v in (overrides or {}).items() if v is not None})
        c: GenerateConfig = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise UsageError(f"config error: {str(e).splitlines()[0]}") from None
    for key, low in (("questions_per_call", 1), ("timeout_s", 1e-9), ("max_retries", 0), ("backoff_base_s", 0), ("backoff_max_s", 0)):
        if getattr(c, key) < low:
            raise UsageError(f"config error: {key} is {getattr(c, key)}; it must be {'positive' if low else '>= 0'}")
    if c.max_tokens_param not in LENGTH_PARAMS:
        raise UsageError(f"config error: max_tokens_param is {c.max_tokens_param!r}; it must be one of {', '.join(LENGTH_PARAMS)}")
    return c


# --- the prompt and the questions -------------------------------------------------------------


def resolve(value: str, what: str) -> Path:
    """A path, or a name in data/prompts/ (``seed000`` -> data/prompts/seed000.txt)."""
    p = Path(value)
    if p.is_file():
        return p
    named = PROMPTS / f"{value}.txt"
    if "/" not in value and named.is_file():
        try:
            return named.relative_to(Path.cwd())  # shorter file:line messages
        except ValueError:
            return named
    names = ", ".join(sorted(x.stem for x in PROMPTS.glob("*.txt")))
    raise UsageError(f"{what} {value!r}: no such file and no data/prompts/{value}.txt (names: {names})")


def load_template(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start + 1})") from None
    if PLACEHOLDER not in text:
        raise UsageError(f"{path}: the prompt template has no {PLACEHOLDER} placeholder")
    return text


def placeholders(template: str) -> set[str]:
    """The ``"<...>"`` strings of the template's example record (seed 000: ``"<조세호 스타일>"``):
    a reply that copies one of them is the example echoed back, never a pair."""
    return set(re.findall(r'"(<[^"<>\n]{1,80}>)"', template))


def build_prompt(template: str, questions: list[str]) -> str:
    return template.replace(PLACEHOLDER, "\n".join(questions))


def norm(text: str) -> str:
    """How questions are compared: NFC, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


@dataclass
class Question:
    line: int
    text: str


def read_questions(path: Path, warn: Callable[[str], None]) -> list[Question]:
    """One question per line; blank lines and ``#`` lines skipped; a repeated question is asked once."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start + 1})") from None
    out, seen = [], {}
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if norm(text) in seen:
            warn(f"{path}:{n}: warning: same question as line {seen[norm(text)]}; asked once")
            continue
        seen[norm(text)] = n
        out.append(Question(n, text))
    return out


# --- reading what models return ---------------------------------------------------------------

FENCE = re.compile(r"```[\w-]*[^\n]*\n?(.*?)(?:```|\Z)", re.S)
ARRAY_START = re.compile(r"\[\s*\{")
NEXT_LINE_OBJECT = re.compile(r"\n\s*\{")
OUTPUTS = ("preferred_output", "non_preferred_output")


@dataclass
class Problem:
    kind: str  # "invalid" (a record that is not JSON), "truncated", "no_json"
    message: str
    text: str = ""  # the unreadable record's text, to tell which question it was for


def parse_records(text: str) -> tuple[list[Any], list[Problem]]:
    """The records in a model's reply, and what could not be read.

    Tolerates a code fence, prose before or after, trailing commas, JSON lines or a wrapper
    object instead of an array, a reply cut off mid-array (the complete records are kept) and
    seed 000's layout with both outputs nested inside ``input`` (moved to the top level).
    """
    fenced = FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    start, obj = ARRAY_START.search(text), text.find("{")
    if start is None and obj < 0:
        return [], [Problem("no_json", "no JSON array or object in the reply")]
    in_array = start is not None and (obj < 0 or start.start() < obj)
    pos = start.start() + 1 if in_array else obj
    records: list[Any] = []
    problems: list[Problem] = []
    n, k = len(text), 0
    while True:
        while pos < n and (text[pos].isspace() or text[pos] == ","):
            pos += 1
        if pos >= n:
            if in_array:
                problems.append(Problem("truncated", f"the reply ends before the array is closed; kept the {len(records)} complete record(s)"))
            break
        if in_array and text[pos] == "]":
            break
        if not in_array and text[pos] != "{":  # JSON lines: skip prose up to the next line opening an object
            m = NEXT_LINE_OBJECT.search(text, pos)
            if not m:
                break
            pos = m.end() - 1
        k += 1
        end = _value_end(text, pos)
        if end is None:
            problems.append(Problem("truncated", f"the reply is cut off inside record {k}; kept the {len(records)} complete record(s) before it"))
            break
        try:
            value = json.loads(_drop_trailing_commas(text[pos:end]), strict=False)
            records.extend(_unnest(v) for v in (_unwrap(value) if not in_array else [value]))
        except json.JSONDecodeError as e:
            problems.append(Problem("invalid", f"record {k}: invalid JSON: {e.msg}", text[pos:end]))
        except RecursionError:
            problems.append(Problem("invalid", f"record {k}: invalid JSON: nested too deeply", text[pos:end]))
        pos = end
    return records, problems


def _value_end(text: str, i: int) -> int | None:
    """Index just past the JSON value starting at ``i`` (brackets balanced, strings skipped);
    None when the text ends first."""
    n = len(text)
    if text[i] not in "{[":
        j = i + 1
        if text[i] == '"':
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            return j + 1 if j < n else None
        while j < n and text[j] not in ",]}\n":
            j += 1
        return j if j < n else None
    depth = 0
    for j, c in _outside_strings(text, i):
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return j + 1
    return None


def _outside_strings(s: str, start: int = 0):
    """(index, character) of the characters of ``s`` outside JSON strings, from ``start``."""
    in_str = esc = False
    for j in range(start, len(s)):
        c = s[j]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
            continue
        if c == '"':
            in_str = True
        yield j, c


def _drop_trailing_commas(s: str) -> str:
    r"""Remove commas directly before ``}`` or ``]`` outside strings (seed 000's example has one).

    By hand, not json-repair: json-repair 0.64 mends a trailing comma but also changes the text
    of a string that holds an escaped backslash before an escaped quote (the JSON ``"x\",]"``
    comes back as ``x",]``), and it would "repair" a record with a missing delimiter or one cut
    off mid-string, which must be reported and asked again instead (tests/test_generate.py)."""
    drop = {j for j, c in _outside_strings(s) if c == "," and s[j + 1:].lstrip()[:1] in ("}", "]")}
    return "".join(c for j, c in enumerate(s) if j not in drop) if drop else s


def _unwrap(value: Any) -> list:
    """``{"pairs": [...]}`` (a wrapper object some models add) -> its records."""
    if isinstance(value, dict) and len(value) == 1:
        inner = next(iter(value.values()))
        if isinstance(inner, list) and inner and all(isinstance(v, dict) for v in inner):
            return inner
    return [value]


def _unnest(value: Any) -> Any:
    """Seed 000's example nests both outputs inside ``input``; OpenAI wants them at the top."""
    if isinstance(value, dict) and isinstance(value.get("input"), dict):
        for k in OUTPUTS:
            if k in value["input"] and k not in value:
                value[k] = value["input"].pop(k)
    return value


def question_of(raw: Any) -> str | None:
    """The last user message of a raw record, if it has that shape."""
    try:
        msgs = [m for m in raw["input"]["messages"] if m.get("role") == "user"]
        return msgs[-1]["content"] if isinstance(msgs[-1]["content"], str) else None
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


# --- calling the endpoint ---------------------------------------------------------------------

RETRY_STATUS = (408, 409, 429)
FATAL_STATUS = (401, 403, 404)  # wrong key, no access, wrong URL or model: no point going on


class CallFailed(Exception):
    def __init__(self, reason: str, fatal: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal


def _describe(e: Exception, timeout_s: float) -> tuple[str, bool, bool]:
    """(reason, retry?, fatal?) for an error from the openai client."""
    import openai

    if isinstance(e, openai.APITimeoutError):
        return f"no reply within {timeout_s:g} s (timeout)", True, False
    if isinstance(e, openai.APIConnectionError):
        cause = e.__cause__ or e.__context__
        return f"connection failed ({type(cause).__name__ if cause else e})", True, False
    if isinstance(e, openai.APIStatusError):
        code = e.status_code
        body = e.body.get("message") if isinstance(e.body, dict) else None
        reason = f"HTTP {code}" + (" (rate limited)" if code == 429 else "") + (f": {str(body)[:200]}" if body else "")
        return reason, code in RETRY_STATUS or code >= 500, code in FATAL_STATUS
    return f"{type(e).__name__}: {str(e)[:200]}", False, False


def _retry_after(e: BaseException) -> float | None:
    """The server's Retry-After, in seconds, when the error response carries one."""
    try:
        return float(getattr(e, "response", None).headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None


def length_param(cfg: GenerateConfig, client) -> str:
    """The request parameter that caps the reply's length (``max_tokens_param``; auto: OpenAI's
    own name for OpenAI's API, ``max_tokens`` for every other server)."""
    if cfg.max_tokens_param != "auto":
        return cfg.max_tokens_param
    return "max_completion_tokens" if client.base_url.host == OPENAI_HOST else "max_tokens"


def call_with_retries(client, cfg: GenerateConfig, prompt: str, on_retry: Callable[[str], None],
                      sleep: Callable[[float], None] = time.sleep):
    """One chat completion; tenacity retries it on 429/408/409/5xx, timeouts and lost connections,
    waiting backoff_base_s × 2^(k-1), or the server's Retry-After, capped at backoff_max_s."""
    import openai
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

    extra = {}
    if cfg.temperature is not None:
        extra["temperature"] = cfg.temperature
    if cfg.max_completion_tokens is not None:
        extra[length_param(cfg, client)] = cfg.max_completion_tokens
    backoff = wait_exponential(multiplier=cfg.backoff_base_s, max=cfg.backoff_max_s)

    def wait(state) -> float:
        after = _retry_after(state.outcome.exception())
        return max(0.0, min(cfg.backoff_max_s, after)) if after is not None else backoff(state)

    def retryable(e: BaseException) -> bool:
        return isinstance(e, openai.OpenAIError) and _describe(e, cfg.timeout_s)[1]

    def before_sleep(state) -> None:
        reason = _describe(state.outcome.exception(), cfg.timeout_s)[0]
        on_retry(f"{reason}; retry {state.attempt_number} of {cfg.max_retries} in {state.next_action.sleep:.2f} s")

    attempts = cfg.max_retries + 1
    retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait, retry=retry_if_exception(retryable),
                        sleep=sleep, before_sleep=before_sleep, reraise=True)
    try:
        return retrying(client.chat.completions.create, model=cfg.model,
                        messages=[{"role": "user", "content": prompt}], timeout=cfg.timeout_s, **extra)
    except openai.OpenAIError as e:
        reason, retry, fatal = _describe(e, cfg.timeout_s)
        if not retry:
            raise CallFailed(reason + " (not retried)", fatal) from None
        raise CallFailed(f"{reason}; gave up after {attempts} attempt(s)") from None


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Summary:
    out: str
    requested: int = 0
    already_done: int = 0
    sent: int = 0
    calls: int = 0
    retries: int = 0
    written: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> records
    missing: int = 0  # questions the reply had no record for
    failed: Counter = field(default_factory=Counter)  # reason -> questions
    tokens: Counter = field(default_factory=Counter)  # prompt / completion / total

    @property
    def ok(self) -> bool:
        return not (self.rejected or self.missing or self.failed)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["rejected"], d["failed"], d["tokens"] = dict(self.rejected), dict(self.failed), dict(self.tokens)
        return d

    def lines(self) -> list[str]:
        return [
            f"requested: {self.requested} questions; {self.already_done} already done, {self.sent} sent in {self.calls} call(s) ({self.retries} retries)",
            f"written: {self.written} -> {self.out}",
            f"duplicates: {self.duplicates} (same prompt and chosen as a record already there; not written)",
            f"rejected: {sum(self.rejected.values())} record(s)",
            *[f"  {n} x {reason}" for reason, n in self.rejected.most_common()],
            f"missing: {self.missing} question(s) the reply had no record for",
            f"failed: {sum(self.failed.values())} question(s)",
            *[f"  {n} x {reason}" for reason, n in self.failed.most_common()],
            f"tokens: {self.tokens['prompt']} prompt + {self.tokens['completion']} completion = {self.tokens['total']}",
        ]


def _dup_key(rec: dict) -> tuple:
    return tuple(m["content"] for m in rec["prompt"]), tuple(m["content"] for m in rec["chosen"])


def _existing(out: Path, log: Callable[[str], None]) -> tuple[set, set]:
    """(dedup keys, done questions) from FILE and FILE.done; a broken FILE is a usage error."""
    keys, done = set(), set()
    if out.exists():
        rep = validate_file(out, "dpo", emit=lambda i: log(str(i)) if i.level == "error" else None)
        if rep.fatal or rep.errors:
            raise UsageError(f"{out}: {rep.fatal or f'{rep.errors} bad record(s)'}; fix or move it before appending to it")
        for r in rep.records:
            keys.add(_dup_key(r.data))
            done.add(norm(r.data["prompt"][-1]["content"]))
    done_file = Path(f"{out}.done")
    if done_file.exists():
        done |= {norm(q) for q in done_file.read_text(encoding="utf-8").splitlines() if q.strip()}
    return keys, done


def generate(cfg: GenerateConfig, out: str | Path, n: int, api_key: str, *, log: Callable[[str], None],
             progress: bool = True, sleep: Callable[[float], None] = time.sleep) -> Summary:
    """Ask for pairs for the first ``n`` questions not yet done; append the valid new ones to ``out``."""
    import openai
    from tqdm import tqdm

    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory")
    if n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    qpath = resolve(cfg.questions, "questions")
    template = load_template(resolve(cfg.prompt, "prompt"))
    junk = placeholders(template)
    questions = read_questions(qpath, log)
    if n > len(questions):
        raise UsageError(f"--n {n}, but {qpath} has only {len(questions)} question(s)")
    keys, done = _existing(out, log)
    wanted = questions[:n]
    todo = [q for q in wanted if norm(q.text) not in done]
    s = Summary(str(out), requested=n, already_done=n - len(todo), sent=len(todo))
    batches = [todo[i:i + cfg.questions_per_call] for i in range(0, len(todo), cfg.questions_per_call)]
    client = openai.OpenAI(api_key=api_key, base_url=cfg.base_url, max_retries=0, timeout=cfg.timeout_s)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f, open(f"{out}.done", "a", encoding="utf-8") as d, \
            tqdm(total=len(todo), unit="q", desc="generate", file=sys.stderr, disable=not progress) as bar:
        for c, batch in enumerate(batches, 1):
            s.calls += 1

            def retried(msg: str, c=c) -> None:
                s.retries += 1
                log(f"call {c}: note: {msg}")

            try:
                resp = call_with_retries(client, cfg, build_prompt(template, [q.text for q in batch]), retried, sleep)
                text = _reply_text(resp, s, log, c)
            except CallFailed as e:
                for q in batch:
                    log(f"{qpath}:{q.line}: error: call {c}: {e.reason}")
                s.failed[e.reason] += len(batch)
                bar.update(len(batch))
                rest = sum(len(b) for b in batches[c:])
                if e.fatal and rest:
                    log(f"error: stopping after call {c}; {rest} question(s) not sent")
                    s.failed[f"not sent: the run stopped after {e.reason}"] += rest
                    break
                continue
            _take(text, batch, qpath, c, s, keys, f, d, log, junk, cfg.keep_paraphrases)
            bar.update(len(batch))
            bar.set_postfix(written=s.written, rejected=sum(s.rejected.values()), failed=sum(s.failed.values()))
    return s


def _reply_text(resp, s: Summary, log, c: int) -> str:
    """The reply's text; counts its tokens. No text at all fails the call."""
    usage = getattr(resp, "usage", None)
    for k in ("prompt", "completion", "total"):
        s.tokens[k] += getattr(usage, f"{k}_tokens", 0) or 0
    choices = getattr(resp, "choices", None) or []
    msg = getattr(choices[0], "message", None) if choices else None
    text = getattr(msg, "content", None)
    if not isinstance(text, str) or not text.strip():
        raise CallFailed("the reply has no message content")
    if getattr(choices[0], "finish_reason", None) == "length":
        log(f"call {c}: warning: the reply stopped at the token limit (finish_reason=length)")
    return text


def _take(text: str, batch: list[Question], qpath: Path, c: int, s: Summary, keys: set, f, d, log,
          junk: set[str], keep_paraphrases: bool) -> None:
    """Parse one reply, validate each record, append the new valid ones; each question sent
    ends up written, duplicate, rejected or missing (with a line saying which). Never written:
    a record that copies the template's placeholder example (``junk``), and unless
    ``keep_paraphrases``, one whose user turn is none of the questions sent."""
    asked = {norm(q.text): q for q in batch}
    settled: set[str] = set()  # questions that got a record (good or bad)
    marked: set[str] = set()  # questions with a valid record: written to FILE.done

    def at(q: Question | None) -> str:
        return f"{qpath}:{q.line}: error: call {c}: " if q else f"call {c}: error: "

    records, problems = parse_records(text)
    for p in problems:
        if p.kind == "invalid":
            q = next((q for q in batch if q.text in p.text and norm(q.text) not in settled), None)
            if q:
                settled.add(norm(q.text))
            s.rejected[p.message.split(": ", 1)[1]] += 1
            log(at(q) + p.message)
        else:
            log(f"call {c}: {'warning' if p.kind == 'truncated' else 'error'}: {p.message}")
    for raw in records:
        text_q = question_of(raw)
        q = asked.get(norm(text_q)) if text_q else None
        try:
            _, rec = to_canonical(raw, "dpo")
            if _dup_key(rec) not in keys:  # a duplicate is not written either way: counted as such
                _check_origin(rec, q, junk, keep_paraphrases)
        except RecordError as e:
            s.rejected[str(e)] += 1
            log(at(q) + f"record {'' if q else 'for ' + _quote(text_q) + ' '}rejected: {e}")
            if q:
                settled.add(norm(q.text))
            continue
        if _dup_key(rec) in keys:
            s.duplicates += 1
            log(f"call {c}: note: the record for {_quote(text_q)} duplicates one already written; not written")
        else:
            keys.add(_dup_key(rec))
            f.write(json.dumps(dpo_row(rec), ensure_ascii=False) + "\n")
            f.flush()
            s.written += 1
            if q is None:  # keep_paraphrases
                log(f"call {c}: warning: the record for {_quote(text_q)} (written: keep_paraphrases) is not for a question sent in this call")
        if q is not None and norm(q.text) not in marked:
            settled.add(norm(q.text))
            marked.add(norm(q.text))
            d.write(q.text + "\n")
            d.flush()
    for q in batch:
        if norm(q.text) not in settled:
            s.missing += 1
            log(f"{qpath}:{q.line}: error: call {c}: no record came back for this question")


def _check_origin(rec: dict, q: Question | None, junk: set[str], keep_paraphrases: bool) -> None:
    """A valid record that is not a pair for a question sent raises :class:`RecordError`."""
    texts = [m["content"] for key in ("prompt", "chosen", "rejected") for m in rec[key]]
    copied = sorted({p for p in junk for t in texts if p in t})
    if copied:
        raise RecordError(f"copies the prompt template's placeholder example ({', '.join(copied)})")
    if q is None and not keep_paraphrases:
        raise RecordError("its user turn is none of the questions sent (keep_paraphrases: true keeps such records)")


def _quote(q: str | None) -> str:
    if q is None:
        return "an unknown question"
    return json.dumps(q[:60] + ("…" if len(q) > 60 else ""), ensure_ascii=False)


def run_cli(a) -> int:
    """``python -m data generate`` with parsed args; returns the exit code."""
    from tqdm import tqdm

    key_holder = {"key": ""}

    def redact(line: str) -> str:
        k = key_holder["key"]
        return line.replace(k, "***") if len(k) >= 6 else line

    def log(line: str) -> None:
        tqdm.write(redact(line), file=sys.stderr)

    try:
        cfg = load_config(a.config, {
            "base_url": a.base_url, "model": a.model, "prompt": a.prompt, "questions": a.questions,
            "questions_per_call": a.questions_per_call, "temperature": a.temperature,
            "timeout_s": a.timeout, "max_retries": a.max_retries, "keep_paraphrases": a.keep_paraphrases or None,
        })
        key = os.environ.get(cfg.api_key_env, "").strip()
        if not key:
            raise UsageError(f"no API key: set the environment variable {cfg.api_key_env} "
                             "(the key is read only from the environment, never from a file or flag)")
        key_holder["key"] = key
        s = generate(cfg, a.out, a.n, key, log=log, progress=not a.no_progress)
    except UsageError as e:
        print(f"python -m data generate: error: {redact(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable FILE, an unreadable questions file
        print(f"python -m data generate: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    if a.json:
        print(redact(json.dumps(s.as_dict(), ensure_ascii=False, indent=2)))
    else:
        for line in s.lines():
            print(redact(line))
    return 0 if s.ok else 1
