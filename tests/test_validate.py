"""``python -m data validate``: the public contract (line numbers, messages, summary, exit codes)."""

import gzip
import json

from conftest import run_cli, write_jsonl

GOOD = {"prompt": "Q?", "chosen": "good", "rejected": "bad"}


def lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line]


def test_every_bad_line_reported_with_its_physical_line(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [
        GOOD,                                        # 1
        "",                                          # 2 blank lines are not records
        '{"prompt": "Q?", "chosen": "a",',           # 3 invalid JSON
        "[1, 2]",                                    # 4 not an object
        {"prompt": "Q?", "chosen": "x", "rejected": "x"},  # 5 identical
        {"foo": 1},                                  # 6 no known format
        {"prompt": "Q2?", "chosen": "good", "rejected": "bad"},  # 7 ok
        GOOD,                                        # 8 duplicate of line 1 (warning)
    ])
    r = run_cli("data", "validate", p)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    out = lines(r.stdout)
    assert out[0] == f"{p}:3: error: invalid JSON: Expecting property name enclosed in double quotes at column 32"
    assert out[1] == f"{p}:4: error: record is a list of non-text parts, expected a JSON object"
    assert out[2] == f"{p}:5: error: 'chosen' and 'rejected' are identical"
    assert out[3].startswith(f"{p}:6: error: no known format")
    assert out[4] == f"{p}:8: warning: duplicate of the record on line 1"
    assert out[5] == f"{p}: 3 valid, 4 errors, 1 warnings"


def test_exit_codes(tmp_path):
    ok = write_jsonl(tmp_path / "ok.jsonl", [GOOD])
    assert run_cli("data", "validate", ok).returncode == 0
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    r = run_cli("data", "validate", empty)
    assert r.returncode == 1 and lines(r.stdout) == [f"{empty}: 0 valid, 0 errors, 0 warnings"]
    r = run_cli("data", "validate", tmp_path / "missing.jsonl")
    assert r.returncode == 2 and f"{tmp_path / 'missing.jsonl'}: error: no such file" in r.stderr
    r = run_cli("data", "validate", ok, "--task", "ppo")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = run_cli("data", "validate", ok, "--map", "nonsense")
    assert r.returncode == 2 and "SRC=DST" in r.stderr


def test_task_dpo_rejects_sft_records(tmp_path):
    p = write_jsonl(tmp_path / "sft.jsonl", [{"input": "q", "output": "a"}])
    assert run_cli("data", "validate", p, "--task", "sft").returncode == 0
    r = run_cli("data", "validate", p, "--task", "dpo")
    assert r.returncode == 1
    assert lines(r.stdout)[0] == f"{p}:1: error: input-output record has no rejected output; --task dpo needs chosen/rejected pairs"


def test_bom_crlf_gzip_and_json_array(tmp_path):
    body = (json.dumps(GOOD) + "\r\n" + json.dumps({"prompt": "Q?", "chosen": "z", "rejected": "z"}) + "\r\n").encode()
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + body)
    r = run_cli("data", "validate", bom)
    assert lines(r.stdout) == [f"{bom}:2: error: 'chosen' and 'rejected' are identical", f"{bom}: 1 valid, 1 errors, 0 warnings"]
    gz = tmp_path / "d.jsonl.gz"
    gz.write_bytes(gzip.compress(body))
    assert lines(run_cli("data", "validate", gz).stdout)[0] == f"{gz}:2: error: 'chosen' and 'rejected' are identical"
    arr = tmp_path / "d.json"
    arr.write_text('[\n  {"prompt": "Q?", "chosen": "a", "rejected": "b"},\n\n  {"prompt": "Q?",\n   "chosen": "c", "rejected": "c"}\n]\n')
    assert lines(run_cli("data", "validate", arr).stdout) == [
        f"{arr}:4: error: 'chosen' and 'rejected' are identical", f"{arr}: 1 valid, 1 errors, 0 warnings"]


def test_broken_json_array_reports_where_and_stops(tmp_path):
    arr = tmp_path / "d.json"
    arr.write_text('[\n{"prompt": "Q?", "chosen": "a", "rejected": "b"},\n{"prompt": oops}\n]')
    r = run_cli("data", "validate", arr)
    assert r.returncode == 1
    assert lines(r.stdout)[0].startswith(f"{arr}:3: error: invalid JSON: Expecting value (line 3, column 12); rest of the array not read")


def test_invalid_utf8_and_arbitrary_bytes_never_traceback(tmp_path):
    p = tmp_path / "bytes.jsonl"
    p.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"prompt": "\xff\xfe"}\n' + bytes(range(256)) + b"\n\x1f\x8b")
    r = run_cli("data", "validate", p)
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    out = lines(r.stdout)
    assert out[0] == f"{p}:2: error: invalid UTF-8 at byte 13 of the line (0xff)"
    # bytes 0..9 end at the "\n" (byte 10): line 3 is control characters, line 4 the rest
    assert out[1] == f"{p}:3: error: invalid JSON: Expecting value at column 1"
    assert out[2] == f"{p}:4: error: invalid UTF-8 at byte 118 of the line (0x80)"
    assert out[-1] == f"{p}: 1 valid, 4 errors, 0 warnings"
    gz = tmp_path / "bad.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00garbage")
    r = run_cli("data", "validate", gz)
    assert r.returncode == 1 and lines(r.stdout)[0].startswith(f"{gz}: error: corrupt gzip data")


def test_warnings_long_record_and_non_alternating_turns(tmp_path):
    p = write_jsonl(tmp_path / "w.jsonl", [
        {"prompt": "Q?", "chosen": "가" * 400, "rejected": "b"},
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]},
    ])
    r = run_cli("data", "validate", p, "--max-tokens", "100")
    assert r.returncode == 0  # warnings do not fail
    out = lines(r.stdout)
    assert out[0] == f"{p}:1: warning: about 201 tokens (estimated; pass --tokenizer for an exact count), over the limit of 100"
    assert out[1].startswith(f"{p}:2: warning: turns do not alternate")
    assert out[2] == f"{p}: 2 valid, 0 errors, 2 warnings"


def test_map_renames_keys(tmp_path):
    p = write_jsonl(tmp_path / "m.jsonl", [{"질문": "Q?", "chosen": "a", "거부됨": "b"}])
    assert run_cli("data", "validate", p).returncode == 1
    assert run_cli("data", "validate", p, "--map", "질문=prompt", "--map", "거부됨=rejected").returncode == 0


def test_several_files_total_line(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [GOOD])
    b = write_jsonl(tmp_path / "b.jsonl", ["{"])
    r = run_cli("data", "validate", a, b)
    assert r.returncode == 1
    assert lines(r.stdout)[-1] == "total: 1 valid, 1 errors"


def _pairs(n, longer):
    """n pairs whose chosen answer is the longer one in the first ``longer`` of them."""
    long_, short = "가" * 10, "나" * 4
    return [{"prompt": f"질문 {i}", "chosen": long_ if i < longer else short,
             "rejected": short if i < longer else long_} for i in range(n)]


def test_length_bias_is_a_warning_not_an_error(tmp_path):
    # 17 of 20: the longer answer wins 85%; chosen (17*10 + 3*4) / 20 = 9.1, rejected (17*4 + 3*10) / 20 = 4.9
    p = write_jsonl(tmp_path / "biased.jsonl", _pairs(20, 17))
    r = run_cli("data", "validate", p)
    assert r.returncode == 0, r.stdout
    warning, summary = lines(r.stdout)
    assert warning == (f'{p}: warning: length alone ranks the pairs: "the longer answer wins" is right on 85% of the '
                       "20 pairs (chosen 9 vs rejected 5 characters on average): DPO can learn length instead of the "
                       "task; add pairs whose rejected answer is as long as the chosen one")
    assert summary == f"{p}: 20 valid, 0 errors, 1 warnings"
    # the other way round counts too: the shorter answer wins 18 of 20
    r = run_cli("data", "validate", write_jsonl(tmp_path / "short.jsonl", _pairs(20, 2)))
    assert '"the shorter answer wins" is right on 90%' in r.stdout and r.returncode == 0


def test_no_length_warning_at_the_edges(tmp_path):
    # 16 of 20 is exactly 80% (not above it); 19 pairs are too few to say
    for name, rows in (("edge.jsonl", _pairs(20, 16)), ("few.jsonl", _pairs(19, 19))):
        r = run_cli("data", "validate", write_jsonl(tmp_path / name, rows))
        assert ": warning:" not in r.stdout and r.returncode == 0, r.stdout
    # --task sft reads the chosen answers only: nothing to compare
    r = run_cli("data", "validate", "--task", "sft", write_jsonl(tmp_path / "b.jsonl", _pairs(20, 20)))
    assert ": warning:" not in r.stdout
