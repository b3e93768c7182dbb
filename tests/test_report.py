"""eval/report.py on hand-written run directories: every expectation here is checked by hand.

Four runs: a base model, a clean SFT run, a DPO run whose chosen log-prob falls while its margin
grows (and whose training data has chosen answers 3x longer than rejected ones, as training
recorded in its data.json), and an SFT run that overfits and never finished. One report is
built per module and the tests read it.
"""

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from eval import report

ENV = {"python": "3.11.7", "torch": "2.13.0", "transformers": "5.23.0", "trl": "1.16.0", "peft": "0.21.2",
       "datasets": "5.2.0", "accelerate": "1.15.0", "git_commit": "abc123def456"}
SCRIPT = "<script>alert('x')</script>"


def summary(style, degenerate):
    """A scores.json summary with two metrics whose winners are known: style (higher), degenerate (lower)."""
    return {
        "style.score": {"value": style, "low": style - 0.1, "high": style + 0.1, "n": 20,
                        "direction": "higher", "aggregation": "mean"},
        "repetition.degenerate": {"value": degenerate, "low": 0.0, "high": degenerate + 0.2, "n": 20,
                                  "direction": "lower", "aggregation": "rate"},
    }


def pref(acc, implicit=None):
    out = {"accuracy": {"value": acc, "low": acc - 0.1, "high": acc + 0.1, "n": 20, "direction": "higher",
                        "aggregation": "rate"},
           "margin": {"value": acc * 2, "low": acc, "high": acc * 3, "n": 20, "direction": "higher",
                      "aggregation": "mean"},
           "length_baseline": {"value": 1.0, "low": 1.0, "high": 1.0, "n": 20, "direction": None, "aggregation": "rate"},
           "method": "summed_logprob", "n": 20, "n_length_matched": 2,
           "implicit_reference": None}
    if implicit is not None:
        out["implicit_accuracy"] = {"value": implicit, "low": implicit - 0.1, "high": implicit + 0.1, "n": 20,
                                    "direction": "higher", "aggregation": "rate"}
        out["implicit_reference"] = "start model"
    return out


def sft_rows(eval_losses):
    rows = []
    for i, ev in enumerate(eval_losses, 1):
        rows.append({"stage": "sft", "step": i * 10, "epoch": i / 3, "loss": 3.0 - 0.3 * i, "grad_norm": 1.0,
                     "learning_rate": 1e-4})
        rows.append({"stage": "sft", "step": i * 10, "epoch": i / 3, "eval_loss": ev})
    rows.append({"stage": "sft", "step": 30, "epoch": 1.0, "train_runtime": 12.0, "train_loss": 2.4})
    return rows


def dpo_rows():
    """logps/chosen -50 -> -70 while rewards/margins 0.1 -> 2.0: likelihood displacement."""
    rows = []
    for i, (lc, m) in enumerate([(-50.0, 0.1), (-58.0, 0.9), (None, 1.5), (-70.0, 2.0)], 1):
        rows.append({"stage": "dpo", "step": i * 5, "epoch": i / 4, "loss": 0.7 - 0.1 * i, "logps/chosen": lc,
                     "logps/rejected": -60.0 - 10 * i, "rewards/margins": m, "rewards/chosen": -0.1 * i,
                     "rewards/rejected": -0.1 * i - m, "rewards/accuracies": 0.5 + 0.1 * i})
    rows.append({"stage": "dpo", "step": 20, "epoch": 1.0, "eval_loss": 0.5, "eval_rewards/margins": 1.8})
    rows.append({"stage": "dpo", "step": 20, "epoch": 1.0, "train_runtime": 9.0})
    return rows


def gens(texts):
    return [{"id": f"p{i}", "prompt": f"prompt {i} & <b>", "text": t, "keywords": ["바다"]} for i, t in enumerate(texts)]


# chosen 3x the length of rejected, as training writes it into data.json: the length-bias warning fires
LENGTHS = {"pairs": 3, "chosen_mean": 57.0, "rejected_mean": 19.0, "chosen_longer_share": 1.0, "length_baseline": 1.0}


def write_run(root: Path, name: str, method: str, *, status=None, metrics=(), generations=(), scores=None,
              preference=None, train=("data/pairs.jsonl",), lengths=None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    cfg = {"name": name, "method": {"name": method}, "model": {"name": "tiny"}, "peft": {"name": "lora"},
           "data": {"name": "pairs", "train": list(train)}, "seed": 0}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    if status is not None:
        (d / "status.json").write_text(json.dumps({"state": status, "stages": {}, "environment": ENV}))
        stages = {"sft": {"train_files": {"files": [{"path": "data/pairs.jsonl", "sha256": "f" * 64, "valid": 3,
                                                     "errors": 0, "warnings": 0, "formats": {"trl": 3}}]}}}
        if lengths:
            stages["dpo"] = {"lengths": lengths}
        (d / "data.json").write_text(json.dumps({
            "stages": stages,
            "test_files": {"files": [{"path": "data/test.jsonl", "sha256": "e" * 64, "valid": 2}], "records": 2}}))
    for fname, rows in (("metrics.jsonl", metrics), ("generations.jsonl", generations)):
        if rows:
            (d / fname).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    if scores is not None:
        (d / "scores.json").write_text(json.dumps(scores))
    if preference is not None:
        (d / "preference.json").write_text(json.dumps(preference))
    return d


def make_runs(root: Path) -> list[Path]:
    return [
        write_run(root, "base-model", "base", generations=gens(["plain answer", "base two"]),
                  scores={"rows": [], "summary": summary(0.1, 0.3)}, preference=pref(0.5)),
        write_run(root, "sft-clean", "sft", status="done", metrics=sft_rows([2.0, 1.5, 1.4]),
                  generations=gens(["hi~~ there", "sft two"]), scores={
                      "rows": [{"id": "p0", "style": {"score": 0.9, "present": True, "markers": {"tilde": 1}},
                                "repetition": {"degenerate": False},
                                "keywords": {"hits": {"바다": False}, "all_present": False, "coverage": 0.0}}],
                      "summary": summary(0.6, 0.0)}, preference=pref(0.55)),
        write_run(root, "dpo-run", "dpo", status="done", metrics=dpo_rows(),
                  generations=gens([SCRIPT + " lalala~ lalala", "dpo two"]),
                  scores={"rows": [{"id": "p0", "repetition": {"degenerate": True}}], "summary": summary(0.8, 0.1)},
                  preference=pref(0.7, implicit=0.9), lengths=LENGTHS),
        write_run(root, "sft-overfit", "sft", status="running", metrics=sft_rows([2.0, 1.5, 1.7]),
                  generations=gens(["over one"]), scores={"rows": [], "summary": summary(0.5, 0.2)}),
    ]


def fake_markers(text):
    """Stand-in for eval.metrics.style.marker_spans: every run of '~' is a 'tilde' marker."""
    return [(m.start(), m.end(), "tilde") for m in re.finditer(r"~+", text)]


def fake_loops(text):
    """Stand-in for eval.metrics.repetition.loop_spans: 'la' said 3+ times (tildes allowed between)."""
    return [(m.start(), m.end()) for m in re.finditer(r"(?:la~?){3,}", text)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(md text, html text, out dir, run dirs)."""
    root = tmp_path_factory.mktemp("report")
    runs = make_runs(root / "runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "marker_spans", fake_markers)
        mp.setattr(report, "loop_spans", fake_loops)
        md, page = report.write_report(runs, root / "out")
    return md.read_text(encoding="utf-8"), page.read_text(encoding="utf-8"), root / "out", runs


def md_row(md: str, metric: str) -> list[str]:
    line = next(x for x in md.splitlines() if x.startswith(f"| {metric} "))
    return [c.strip() for c in line.strip("|").split(" | ")]


def html_row(page: str, metric: str) -> list[tuple[str, str]]:
    """(class, text) of the run cells in the metrics table row of ``metric``."""
    row = next(r for r in re.findall(r"<tr>(.*?)</tr>", page) if r.startswith(f"<td>{metric} "))
    return re.findall(r'<td class="([^"]*)">(.*?)</td>', row)


def warnings_in(page: str) -> list[str]:
    return [html.unescape(w) for w in re.findall(r'<div class="warn">(.*?)</div>', page)]


# --- the table -------------------------------------------------------------------------------

def test_best_value_marked_by_direction(built):
    md, page, _, _ = built
    # columns: metric, base, sft-clean, dpo-run, sft-overfit
    assert md_row(md, "style.score")[1:] == ["0.1 [0, 0.2]", "0.6 [0.5, 0.7]", "**0.8 [0.7, 0.9]**", "0.5 [0.4, 0.6]"]
    assert md_row(md, "repetition.degenerate")[1:] == ["0.3 [0, 0.5]", "**0 [0, 0.2]**", "0.1 [0, 0.3]",
                                                        "0.2 [0, 0.4]"]
    assert [c for c, _ in html_row(page, "style.score")] == ["num", "num", "num best", "num"]
    assert [c for c, _ in html_row(page, "repetition.degenerate")] == ["num", "num best", "num", "num"]


def test_preference_and_final_eval_loss_in_table(built):
    md, page, _, _ = built
    assert md_row(md, "preference.accuracy")[1:] == ["0.5 [0.4, 0.6]", "0.55 [0.45, 0.65]", "**0.7 [0.6, 0.8]**", "–"]
    # last eval_loss per stage, lower is better, no interval
    assert md_row(md, "sft.eval_loss")[1:] == ["–", "**1.4**", "–", "1.7"]
    assert md_row(md, "dpo.eval_loss")[1:] == ["–", "–", "0.5", "–"]  # a single run: nothing to beat
    assert [c for c, _ in html_row(page, "sft.eval_loss")] == ["num", "num best", "num", "num"]


# --- warnings --------------------------------------------------------------------------------

def test_warnings_name_the_right_runs(built):
    _, page, _, _ = built
    warns = warnings_in(page)
    assert any("dpo-run" in w and "likelihood displacement" in w and "-50 → -70" in w for w in warns), warns
    assert any("dpo-run" in w and "200% longer" in w for w in warns), warns  # 57 vs 19 characters
    assert any("sft-overfit" in w and "overfitting" in w and "13% above" in w for w in warns), warns
    assert any("sft-overfit" in w and "'running'" in w for w in warns), warns
    assert len(warns) == 4, warns
    assert not [w for w in warns if "sft-clean" in w or "base-model" in w]


def test_length_warning_reads_data_json_not_the_data(tmp_path):
    runs = make_runs(tmp_path / "runs")
    data = json.loads((runs[2] / "data.json").read_text())
    del data["stages"]["dpo"]  # a run made before training recorded lengths: nothing to warn about
    (runs[2] / "data.json").write_text(json.dumps(data))
    md, _ = report.write_report(runs, tmp_path / "out")
    text = md.read_text(encoding="utf-8")
    assert "likelihood displacement" in text and "longer than the rejected" not in text


# --- samples ---------------------------------------------------------------------------------

def test_samples_escaped_and_side_by_side(built):
    md, page, _, _ = built
    assert "<script" not in page and "<script" not in md
    assert html.escape(SCRIPT) in page and html.escape(SCRIPT, quote=False) in md
    assert "prompt 0 &amp; &lt;b&gt;" in page
    samples = page[page.index('<table class="samples">'):]
    samples = samples[:samples.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", samples[samples.index("<tbody>"):], re.S)
    assert len(rows) == 2  # p0 (every run) then p1 (three runs)
    assert re.findall(r"<td[^>]*>", rows[1]).__len__() == 5 and rows[1].endswith("<td>–</td>")
    # run order kept: base, sft-clean, dpo-run in that order in the p0 row
    assert rows[0].index("plain answer") < rows[0].index("hi") < rows[0].index("lalala")
    assert 'class="bad">degenerate' in rows[0] and "missing: 바다" in rows[0]


def test_max_samples(tmp_path):
    _, page = report.write_report(make_runs(tmp_path / "runs"), tmp_path / "out", max_samples=1)
    assert page.read_text(encoding="utf-8").count("prompt 1 &amp;") == 0


def test_several_samples_per_prompt_show_the_prompt_once():
    """Two sampled answers per prompt: the samples table lists each prompt once (it once listed
    a prompt as many times as it had samples, all showing the first one)."""
    from types import SimpleNamespace

    gens = [{"id": f"p{i}/{k}", "prompt_id": f"p{i}", "sample": k, "text": "t"} for i in range(3) for k in range(2)]
    runs = [SimpleNamespace(generations=gens), SimpleNamespace(generations=gens[:4])]
    assert report.sample_ids(runs, 10) == ["p0", "p1", "p2"]


def test_highlights_in_report(built):
    _, page, _, _ = built
    assert 'hi<mark class="marker" title="tilde">~~</mark> there' in page
    # the loop contains a marker: marks nest, the loop tag is split around it
    assert ('<mark class="loop" title="degenerate loop">lalala</mark><mark class="loop" title="degenerate loop">'
            '<mark class="marker" title="tilde">~</mark></mark>') in page


class NestingChecker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"</{tag}> closes nothing open"

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.parametrize("markers,loops", [
    ([(0, 5, "a"), (3, 8, "b")], []),               # two markers overlapping
    ([(2, 6, "a")], [(4, 12)]),                      # a marker straddling a loop's start
    ([(0, 12, "a"), (4, 6, "b")], [(0, 3), (2, 9)]),  # nested and overlapping everything
    ([(-4, 3, "a"), (10, 99, "b"), (5, 5, "c")], [(8, 200)]),  # out of range and empty spans
])
def test_overlapping_spans_nest(monkeypatch, markers, loops):
    text = "a<b>&cd~~ef gh"
    monkeypatch.setattr(report, "marker_spans", lambda t: markers)
    monkeypatch.setattr(report, "loop_spans", lambda t: loops)
    out = report.highlight(text)
    p = NestingChecker()
    p.feed(out)
    p.close()
    assert p.stack == []
    assert "".join(p.text) == text  # nothing lost, nothing doubled
    assert "<b>" not in out


def test_overlapping_markers_get_both_categories(monkeypatch):
    monkeypatch.setattr(report, "marker_spans", lambda t: [(0, 4, "a"), (2, 6, "b")])
    monkeypatch.setattr(report, "loop_spans", lambda t: [])
    assert report.highlight("abcdef") == ('<mark class="marker" title="a">ab</mark><mark class="marker" '
                                          'title="a, b">cd</mark><mark class="marker" title="b">ef</mark>')


def test_touching_spans_of_one_kind_make_one_mark(monkeypatch):
    monkeypatch.setattr(report, "marker_spans", lambda t: [(0, 2, "a"), (2, 4, "a")])
    monkeypatch.setattr(report, "loop_spans", lambda t: [])
    assert report.highlight("abcde") == '<mark class="marker" title="a">abcd</mark>e'


def test_no_highlighters_no_marks(monkeypatch):
    monkeypatch.setattr(report, "marker_spans", None)
    monkeypatch.setattr(report, "loop_spans", None)
    assert report.highlight("a~<b>") == "a~&lt;b&gt;"


# --- html is self-contained ------------------------------------------------------------------

def test_html_inline_svg_and_offline(built):
    md, page, out, _ = built
    assert page.count("<svg") == 5  # loss, dpo rewards, 3 metric bars (style.score, degenerate rate, accuracy)
    assert "<svg" not in md and "<?xml" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page)
    assert "<link" not in page and "<img" not in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert ids and len(ids) == len(set(ids))  # several svgs in one document: no clashing ids
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]


def test_provenance(built):
    md, page, _, runs = built
    assert "abc123def456" in page and "abc123def456" in md
    assert "f" * 64 in page and "e" * 64 in md
    assert "<details><summary>config.yaml</summary><pre>" in page
    assert f"`{runs[1] / 'config.yaml'}`" in md


# --- degrading and the CLI -------------------------------------------------------------------

def test_run_with_only_a_config(tmp_path):
    d = write_run(tmp_path, "bare", "sft")
    md, page = report.write_report([d], tmp_path / "out")
    text = md.read_text(encoding="utf-8")
    assert "No metrics." in text and "No generations." in text
    assert "bare: training did not finish — it has no status.json" in text
    assert "<svg" not in page.read_text(encoding="utf-8")


def test_cli_ok(tmp_path, capsys):
    runs = make_runs(tmp_path / "runs")
    assert report.main([*map(str, runs[:2]), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"report: {tmp_path / 'out' / 'report.html'}"


@pytest.mark.parametrize("setup,reason", [
    (lambda p: None, "no such directory"),
    (lambda p: p.mkdir(), "not a run directory"),
    (lambda p: (p.mkdir(), (p / "metrics.jsonl").write_text('{"step": 1}\n{oops\n')), "metrics.jsonl line 2:"),
])
def test_cli_bad_run_dir(tmp_path, capsys, setup, reason):
    good = make_runs(tmp_path / "runs")[0]
    bad = tmp_path / "bad"
    setup(bad)
    assert report.main([str(good), str(bad), "--out", str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {bad}: {reason}"), err
    assert not (tmp_path / "out").exists()


# --- rendered by a real browser --------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


def chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120)


@pytest.mark.browser
def test_report_renders_in_chromium(built, tmp_path):
    if not Path(CHROMIUM).exists() or not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    _, page, out, _ = built
    url = (out / "report.html").as_uri()
    shot = tmp_path / "shot.png"
    r = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert shot.exists() and shot.stat().st_size > 0, r.stderr[-2000:]
    try:
        from PIL import Image
    except ImportError:
        assert shot.stat().st_size > 20_000  # a blank 1280x2000 PNG compresses to a few kB
    else:
        with Image.open(shot) as img:
            assert img.size == (1280, 2000)
            assert len(img.convert("RGB").getcolors(maxcolors=1 << 20) or [0] * 2) > 50  # text, plots, colours
    dom = chromium(tmp_path, "--dump-dom", url).stdout
    assert dom.count("<svg") == page.count("<svg") == 5
    assert "Run comparison" in dom and "&lt;script&gt;" in dom
