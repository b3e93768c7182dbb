"""``python -m data generate`` against a fake OpenAI-compatible server on 127.0.0.1.

The server lives in this file, runs in a daemon thread, answers from a script (one step per
request: a reply in one of the shapes models really return, an HTTP error, or a bounded
hang), and shuts itself down after 60 s whatever the test does.
"""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import ROOT, read_jsonl, run_cli

from data.__main__ import main
from data.generate import PLACEHOLDER, load_config, load_template, parse_records, resolve
from data.validate import validate_file

KEY = "sk-test-SECRET-7f3a9c"  # must never appear in any output
SYSTEM = "들어오는 문장을 조세호 스타일 답변으로 생성"
QUESTIONS = [f"테스트 질문 {i:02d}번은 뭐예요?" for i in range(1, 17)]


# --- replies in the shapes models return ------------------------------------------------------


def rec(q: str, nested: bool = False, identical: bool = False) -> dict:
    outs = {
        "preferred_output": [{"role": "assistant", "content": f"{q[:-1]}~? 아이고~ 저요~? 음음~"}],
        "non_preferred_output": [{"role": "assistant", "content": f"{q[:-1]}~? 아이고~ 저요~? 음음~" if identical else q}],
    }
    r = {"input": {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]}}
    (r["input"] if nested else r).update(outs)
    return r


def array(records, trailing_comma=False) -> str:
    body = ",\n".join("    " + json.dumps(r, ensure_ascii=False) for r in records)
    return "[\n" + body + (",\n" if trailing_comma else "\n") + "]"


def fenced(qs):  # seed 000's own layout: outputs inside "input", a trailing comma; in a fence
    return "```json\n" + array([rec(q, nested=True) for q in qs], trailing_comma=True) + "\n```"


def prose(qs):
    return "네, 요청하신 데이터입니다!\n\n" + array([rec(q) for q in qs]) + "\n\n도움이 되셨길 바랍니다."


def plain(qs):
    return json.dumps([rec(q) for q in qs], ensure_ascii=False)


def truncated(qs):  # cut off inside the last record, as a max_tokens limit does
    text = array([rec(q) for q in qs])
    return text[: text.rindex('"preferred_output"') + 30]


def bad(qs):  # one pair with identical outputs, one element that is not JSON
    broken = json.dumps(rec(qs[1]), ensure_ascii=False).replace('"role": "user", "content":', '"role": "user" "content":')
    return "[" + json.dumps(rec(qs[0], identical=True), ensure_ascii=False) + ",\n" + broken + "]"


def dupes(qs):  # the same pair twice, plus one already in the file (QUESTIONS[0], from call 1)
    return array([rec(qs[0]), rec(qs[0]), rec(QUESTIONS[0], nested=True)])


# --- the fake server --------------------------------------------------------------------------


def completion(text: str) -> dict:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000, "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140},
    }


class FakeOpenAI:
    """Scripted /v1/chat/completions. Steps: a reply function of the questions in the prompt,
    an int HTTP status (429 carries Retry-After when given as (429, seconds)), or ("hang", s).
    ``reads_only_max_tokens``: like llama.cpp's server, a request without ``max_tokens`` runs on
    well past the client's timeout (it ignores ``max_completion_tokens``)."""

    def __init__(self, script, reads_only_max_tokens=False):
        self.script = list(script)
        self.requests: list[dict] = []  # {"auth", "questions", "body"}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                qs = [q for q in QUESTIONS if q in prompt]
                fake.requests.append({"auth": self.headers.get("Authorization"), "questions": qs, "body": body,
                                      "path": self.path})
                step = fake.script.pop(0) if fake.script else 500
                if reads_only_max_tokens and "max_tokens" not in body:
                    step = ("hang", 1.5)  # generating thousands of tokens
                if isinstance(step, tuple) and step[0] == "hang":
                    time.sleep(step[1])  # bounded: the client has given up by then
                    step = plain
                if isinstance(step, tuple):
                    status, headers = step[0], {"Retry-After": str(step[1])}
                elif isinstance(step, int):
                    status, headers = step, {}
                else:
                    return self._send(200, completion(step(qs)))
                msg = {429: "Rate limit reached for requests", 500: "The server had an error",
                       401: f"Incorrect API key provided: {self.headers.get('Authorization', '')[7:]}"}.get(status, "error")
                self._send(status, {"error": {"message": msg, "type": "fake", "code": None}}, headers)

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.deadline = threading.Timer(60, self.server.shutdown)  # stops by itself
        self.deadline.daemon = True

    def __enter__(self):
        self.thread.start()
        self.deadline.start()
        return self

    def __exit__(self, *exc):
        self.deadline.cancel()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A questions file, a fast retry config, the API key in the environment."""
    qfile = tmp_path / "questions.txt"
    qfile.write_text("# test questions\n\n" + "\n".join(QUESTIONS) + "\n", encoding="utf-8")
    conf = tmp_path / "fast.yaml"
    conf.write_text("backoff_base_s: 0.01\nbackoff_max_s: 0.05\nmodel: fake-model\n", encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return tmp_path, qfile, conf


def argv(fake, tmp, qfile, conf, n, *extra):
    return ["generate", "--out", str(tmp / "out.jsonl"), "--n", str(n), "--questions", str(qfile),
            "--config", str(conf), "--base-url", fake.url, "--timeout", "0.5", "--max-retries", "1",
            "--questions-per-call", "2", "--no-progress", *extra]


# --- parse_records: every shape ----------------------------------------------------------------


def test_parse_each_shape():
    qs = QUESTIONS[:2]
    for text in (fenced(qs), prose(qs), plain(qs), "\n".join(json.dumps(rec(q), ensure_ascii=False) for q in qs)):
        records, problems = parse_records(text)
        assert problems == []
        assert [r["input"]["messages"][1]["content"] for r in records] == qs
        assert all("preferred_output" in r and "preferred_output" not in r["input"] for r in records)  # unnested


def test_parse_truncated_keeps_complete_records():
    records, problems = parse_records(truncated(QUESTIONS[:3]))
    assert len(records) == 2 and [p.kind for p in problems] == ["truncated"]
    assert "cut off inside record 3; kept the 2 complete record(s)" in problems[0].message
    # cut between records, after a comma: still the complete ones
    records, problems = parse_records(plain(QUESTIONS[:2])[:-1] + ",")
    assert len(records) == 2 and problems[0].kind == "truncated"


def test_parse_bad_element_does_not_lose_the_others():
    records, problems = parse_records(bad(QUESTIONS[:2]) + "\n" + "추가 설명입니다.")
    assert len(records) == 1 and problems[0].kind == "invalid"
    assert problems[0].message.startswith("record 2: invalid JSON: Expecting ',' delimiter")
    assert QUESTIONS[1] in problems[0].text


def test_parse_commas_and_brackets_inside_strings_are_text():
    r = {"input": {"messages": [{"role": "user", "content": "a, ] } [{ ,}"}]},
         "preferred_output": [{"role": "assistant", "content": "x\\\",]"}], "non_preferred_output": "y"}
    text = "[" + json.dumps(r) + ",]"
    records, problems = parse_records(text.replace('"y"}', '"y",}'))
    assert problems == [] and records == [r]
    # a raw newline inside a string (the seed asks for \n because models do this)
    records, _ = parse_records('[{"a": "line1\nline2"}]')
    assert records == [{"a": "line1\nline2"}]


def test_parse_nothing_usable():
    assert parse_records("죄송하지만 도와드릴 수 없습니다.")[1][0].kind == "no_json"
    assert parse_records("")[0] == []


def test_shipped_prompt_and_config():
    cfg = load_config()
    # no shipped base URL: the openai client's own default (OPENAI_BASE_URL, else OpenAI's API) applies
    assert cfg.base_url is None and cfg.api_key_env == "OPENAI_API_KEY" and cfg.questions_per_call >= 1
    template = load_template(resolve(cfg.prompt, "prompt"))
    assert template.count(PLACEHOLDER) == 1 and "조세호" in template and "non_preferred_output" in template
    qs = [x for x in resolve(cfg.questions, "questions").read_text(encoding="utf-8").splitlines() if x and not x.startswith("#")]
    assert len(qs) >= 20


# --- the command against the fake server -------------------------------------------------------


def test_generate_every_outcome_then_resume(setup):
    tmp, qfile, conf = setup
    script = [fenced, prose, 429, plain, 500, 500, truncated, ("hang", 1.5), ("hang", 1.5), bad, dupes]
    with FakeOpenAI(script) as fake:
        env = {**os.environ, "OPENAI_API_KEY": KEY}
        r = subprocess.run([sys.executable, "-m", "data", *argv(fake, tmp, qfile, conf, 16, "--json")], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 1, r.stderr
        s = json.loads(r.stdout)
        assert (s["requested"], s["already_done"], s["sent"], s["calls"], s["retries"]) == (16, 0, 16, 8, 3)
        assert (s["written"], s["duplicates"], s["missing"]) == (8, 2, 2)
        assert s["rejected"] == {"'preferred_output' and 'non_preferred_output' are identical": 1,
                                 "invalid JSON: Expecting ',' delimiter": 1}
        assert s["failed"] == {"HTTP 500: The server had an error; gave up after 2 attempt(s)": 2,
                               "no reply within 0.5 s (timeout); gave up after 2 attempt(s)": 2}
        assert s["tokens"] == {"prompt": 600, "completion": 240, "total": 840}  # 6 replies came back
        err = r.stderr
        assert "call 3: note: HTTP 429 (rate limited): Rate limit reached for requests; retry 1 of 1 in 0.01 s" in err
        assert f"{qfile}:10: error: call 4: HTTP 500" in err  # QUESTIONS[7] is on line 10
        assert f"{qfile}:12: error: call 5: no record came back for this question" in err
        assert f"{qfile}:16: error: call 7: record 2: invalid JSON" in err
        assert f"{qfile}:15: error: call 7: record rejected: 'preferred_output' and" in err
        assert len(fake.requests) == 11 and {q["auth"] for q in fake.requests} == {f"Bearer {KEY}"}
        assert {q["path"] for q in fake.requests} == {"/v1/chat/completions"}
        assert fake.requests[0]["body"]["model"] == "fake-model"

    out = tmp / "out.jsonl"
    rows = read_jsonl(out)
    assert len(rows) == 8 and all(set(r) == {"input", "preferred_output", "non_preferred_output"} for r in rows)
    written = {r["input"]["messages"][-1]["content"] for r in rows}
    assert written == {QUESTIONS[i] for i in (0, 1, 2, 3, 4, 5, 8, 14)}
    done = (tmp / "out.jsonl.done").read_text(encoding="utf-8").splitlines()
    assert set(done) == written | {QUESTIONS[0]} and len(done) == 8
    for text in (r.stdout, r.stderr, out.read_text(encoding="utf-8"), "\n".join(done)):
        assert KEY not in text

    # resume: only the 8 questions not done are sent, and everything ends up written once
    with FakeOpenAI([plain] * 4) as fake:
        assert main(argv(fake, tmp, qfile, conf, 16)) == 0
        sent = [q for req in fake.requests for q in req["questions"]]
        assert sent == [QUESTIONS[i] for i in (6, 7, 9, 10, 11, 12, 13, 15)]
    rep = validate_file(out, "dpo")
    assert (rep.valid, rep.errors, rep.warnings) == (16, 0, 0)
    assert sorted(r.data["prompt"][-1]["content"] for r in rep.records) == QUESTIONS

    # nothing left: no request at all
    with FakeOpenAI([]) as fake:
        assert main(argv(fake, tmp, qfile, conf, 16)) == 0
        assert fake.requests == []


def test_summary_lines_and_progress(setup, capsys):
    tmp, qfile, conf = setup
    with FakeOpenAI([plain, plain]) as fake:
        args = argv(fake, tmp, qfile, conf, 3)
        args.remove("--no-progress")
        assert main(args) == 0
    cap = capsys.readouterr()
    assert cap.out.splitlines() == [
        "requested: 3 questions; 0 already done, 3 sent in 2 call(s) (0 retries)",
        f"written: 3 -> {tmp / 'out.jsonl'}",
        "duplicates: 0 (same prompt and chosen as a record already there; not written)",
        "rejected: 0 record(s)",
        "missing: 0 question(s) the reply had no record for",
        "failed: 0 question(s)",
        "tokens: 200 prompt + 80 completion = 280",
    ]
    assert "generate: 100%" in cap.err and "3/3" in cap.err  # tqdm's bar


def test_backoff_doubles_and_honours_retry_after(setup):
    from data.generate import generate

    tmp, qfile, conf = setup
    cfg = load_config(conf, {"base_url": None, "questions": str(qfile), "max_retries": 3, "questions_per_call": 1})
    waits = []
    with FakeOpenAI([500, 500, (429, 0.03), plain]) as fake:
        cfg.base_url = fake.url
        s = generate(cfg, tmp / "o.jsonl", 1, KEY, log=lambda line: None, progress=False, sleep=waits.append)
    assert waits == [0.01, 0.02, 0.03]  # base * 2**k, then the server's Retry-After
    assert (s.written, s.retries) == (1, 3)
    with FakeOpenAI([(429, 9), plain]) as fake:
        cfg.base_url = fake.url
        generate(cfg, tmp / "o2.jsonl", 1, KEY, log=lambda line: None, progress=False, sleep=waits.append)
    assert waits[-1] == 0.05  # Retry-After capped at backoff_max_s


def test_wrong_key_stops_and_is_never_printed(setup, capsys):
    tmp, qfile, conf = setup
    with FakeOpenAI([401]) as fake:
        assert main(argv(fake, tmp, qfile, conf, 6)) == 1
        assert len(fake.requests) == 1  # not retried; the other two calls not sent
    cap = capsys.readouterr()
    assert KEY not in cap.out + cap.err
    assert "HTTP 401: Incorrect API key provided: *** (not retried)" in cap.err
    assert "error: stopping after call 1; 4 question(s) not sent" in cap.err


def test_usage_errors_exit_2(setup, capsys, monkeypatch):
    tmp, qfile, conf = setup
    with FakeOpenAI([]) as fake:
        assert main(argv(fake, tmp, qfile, conf, 17)) == 2  # only 16 questions
        bad_conf = tmp / "bad.yaml"
        bad_conf.write_text("timeout: 3\n")
        assert main(argv(fake, tmp, qfile, bad_conf, 1)) == 2
        (tmp / "out.jsonl").write_text('{"prompt": "q"}\n')
        assert main(argv(fake, tmp, qfile, conf, 1)) == 2  # a broken FILE is not appended to
        (tmp / "out.jsonl").unlink()
        monkeypatch.delenv("OPENAI_API_KEY")
        assert main(argv(fake, tmp, qfile, conf, 1)) == 2
        assert fake.requests == []
    err = capsys.readouterr().err.splitlines()
    assert f"python -m data generate: error: --n 17, but {qfile} has only 16 question(s)" in err
    assert any(e.startswith("python -m data generate: error: config error: Key 'timeout' not in 'GenerateConfig'") for e in err)
    assert f"{tmp / 'out.jsonl'}:1: error: missing key 'chosen'/'rejected' or 'completion' after 'prompt'" in err
    assert err[-1] == ("python -m data generate: error: no API key: set the environment variable OPENAI_API_KEY "
                       "(the key is read only from the environment, never from a file or flag)")
    r = run_cli("data", "generate", "--out", tmp / "x.jsonl", "--n", "0")
    assert r.returncode == 2 and "argument --n: must be at least 1, got 0" in r.stderr


# --- the endpoint, the length cap, what is never written ----------------------------------------


def test_openai_base_url_is_honoured_unless_a_flag_or_a_config_sets_one(setup, monkeypatch):
    tmp, qfile, conf = setup
    with FakeOpenAI([plain] * 3) as env_server, FakeOpenAI([plain]) as flag_server:
        monkeypatch.setenv("OPENAI_BASE_URL", env_server.url)
        args = argv(flag_server, tmp, qfile, conf, 1)
        without_flag = args[:args.index("--base-url")] + args[args.index("--base-url") + 2:]
        assert main(without_flag) == 0 and len(env_server.requests) == 1  # the shipped config names none
        assert main([*argv(flag_server, tmp, qfile, conf, 2)]) == 0 and len(flag_server.requests) == 1
        own = tmp / "own.yaml"
        own.write_text(conf.read_text() + f"base_url: {env_server.url}\n")
        assert main([*without_flag[:without_flag.index("--config")], "--config", str(own), "--n", "3"]) == 0
        assert len(env_server.requests) == 2 and len(flag_server.requests) == 1


def test_the_length_cap_reaches_a_server_that_reads_only_max_tokens(setup):
    import openai

    from data.generate import length_param

    tmp, qfile, conf = setup
    with FakeOpenAI([plain], reads_only_max_tokens=True) as fake:
        assert main(argv(fake, tmp, qfile, conf, 2, "--max-retries", "0")) == 0
        (body,) = [r["body"] for r in fake.requests]
        assert body["max_tokens"] == 4096 and "max_completion_tokens" not in body  # not an OpenAI URL: max_tokens
    forced = tmp / "forced.yaml"
    forced.write_text(conf.read_text() + "max_tokens_param: max_completion_tokens\n")
    with FakeOpenAI([plain], reads_only_max_tokens=True) as fake:
        args = argv(fake, tmp, qfile, forced, 4, "--max-retries", "0")
        args[args.index("--config") + 1] = str(forced)
        assert main(args) == 1  # the cap never reached the server: it ran past the timeout
        assert fake.requests[0]["body"]["max_completion_tokens"] == 4096
    cfg = load_config()
    assert length_param(cfg, openai.OpenAI(api_key="x", base_url="https://api.openai.com/v1")) == "max_completion_tokens"
    assert length_param(cfg, openai.OpenAI(api_key="x", base_url="http://localhost:8080/v1")) == "max_tokens"


PLACEHOLDERS = ("<사용자가 질문한 문장>", "<조세호 스타일>", "<일반적인 스타일>")


def echoed_example(qs):  # the template's own example record, copied back, then a good one
    junk = {"input": {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PLACEHOLDERS[0]}]},
            "preferred_output": [{"role": "assistant", "content": PLACEHOLDERS[1]}],
            "non_preferred_output": [{"role": "assistant", "content": PLACEHOLDERS[2]}]}
    return array([junk, rec(qs[1])])


def paraphrased(qs):  # the first question reworded by the model, the second as sent
    return array([rec(qs[0].replace("뭐예요", "무엇인가요")), rec(qs[1])])


def test_template_junk_is_never_written_and_paraphrases_only_when_asked(setup, capsys):
    tmp, qfile, conf = setup
    with FakeOpenAI([echoed_example, paraphrased]) as fake:
        assert main(argv(fake, tmp, qfile, conf, 4, "--json")) == 1
    s = json.loads(capsys.readouterr().out)
    assert s["rejected"] == {
        f"copies the prompt template's placeholder example ({', '.join(sorted(PLACEHOLDERS))})": 1,
        "its user turn is none of the questions sent (keep_paraphrases: true keeps such records)": 1}
    assert (s["written"], s["missing"]) == (2, 2)
    written = [r["input"]["messages"][-1]["content"] for r in read_jsonl(tmp / "out.jsonl")]
    assert written == [QUESTIONS[1], QUESTIONS[3]]

    with FakeOpenAI([echoed_example, paraphrased]) as fake:
        assert main([*argv(fake, tmp, qfile, conf, 4, "--json"), "--keep-paraphrases", "--out", str(tmp / "kept.jsonl")]) == 1
    s = json.loads(capsys.readouterr().out)
    assert list(s["rejected"]) == [f"copies the prompt template's placeholder example ({', '.join(sorted(PLACEHOLDERS))})"]
    kept = [r["input"]["messages"][-1]["content"] for r in read_jsonl(tmp / "kept.jsonl")]
    assert kept == [QUESTIONS[1], QUESTIONS[2].replace("뭐예요", "무엇인가요"), QUESTIONS[3]]
    assert not any(p in json.dumps(r, ensure_ascii=False) for r in read_jsonl(tmp / "kept.jsonl") for p in PLACEHOLDERS)
