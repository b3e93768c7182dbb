"""Compare runs side by side: one metrics table, curves, bar charts, samples, warnings, provenance.

    python -m eval report runs/base runs/sft runs/dpo runs/sft_dpo --out reports/style

writes ``report.md`` (tables only) and ``report.html`` (self-contained: inline CSS, plots as
inline SVG, no JavaScript, opens offline). Everything comes from the run directories, so a
report can be rebuilt years later from ``runs/``; any file of a run may be missing and the
report shows what is there.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# The highlighters live with the metrics so the report marks exactly what was scored.
from eval.metrics.repetition import loop_spans
from eval.metrics.style import marker_spans
from train.rundir import effective_state, read_jsonl, state_note

MAX_SAMPLES = 12
# one colour per run, the same in every plot and in the html legend
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
DPO_CURVES = ["rewards/margins", "rewards/chosen", "rewards/rejected", "rewards/accuracies"]
LENGTH_BIAS = 0.20   # chosen vs rejected mean length, relative
OVERFIT = 0.05       # last eval_loss above the minimum, relative


class RunError(Exception):
    """A run directory that cannot be read; the message is the reason, shown to the user."""


# --- reading a run directory -----------------------------------------------------------------

@dataclass
class Run:
    path: Path
    name: str
    method: str
    config: dict = field(default_factory=dict)
    config_text: str = ""
    status: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)
    generations: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)
    preference: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.method})"


RUN_FILES = ("config.yaml", "status.json", "data.json", "metrics.jsonl", "generations.jsonl",
             "scores.json", "preference.json")


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunError(f"{path.name}: {e}") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path.name}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:  # a last line cut off by a kill or a full disk is dropped, with a warning
        rows = read_jsonl(path, warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))
    except ValueError as e:
        raise RunError(str(e)) from None
    except OSError as e:
        raise RunError(f"{path.name}: {e}") from None
    return [row for row in rows if isinstance(row, dict)]


def load_run(path: str | Path) -> Run:
    """Read what exists of a run directory; raises :class:`RunError` when it is not one."""
    path = Path(path)
    if not path.exists():
        raise RunError("no such directory")
    if not path.is_dir():
        raise RunError("not a directory")
    if not any((path / f).exists() for f in RUN_FILES):
        raise RunError(f"not a run directory (none of {', '.join(RUN_FILES)})")
    config, config_text = {}, ""
    if (path / "config.yaml").exists():
        try:
            config_text = (path / "config.yaml").read_text(encoding="utf-8")
            config = yaml.safe_load(config_text) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise RunError(f"config.yaml: {e}") from None
        if not isinstance(config, dict):
            raise RunError("config.yaml: expected a mapping")
    method = _get(config, "method", "name") or "?"
    return Run(
        path=path, name=str(config.get("name") or path.name), method=str(method),
        config=config, config_text=config_text,
        status=_read_json(path / "status.json"), data=_read_json(path / "data.json"),
        metrics=_read_jsonl(path / "metrics.jsonl"), generations=_read_jsonl(path / "generations.jsonl"),
        scores=_read_json(path / "scores.json"), preference=_read_json(path / "preference.json"),
    )


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _unique_names(runs: list[Run]) -> None:
    """Two run directories may carry the same config name (copied runs); columns must differ."""
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name}#{seen[run.name]}"


# --- numbers ---------------------------------------------------------------------------------

def _num(v) -> float | None:
    """A finite float, or None (metrics.jsonl writes non-finite values as null)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _stages(run: Run) -> list[str]:
    out = []
    for row in run.metrics:
        s = row.get("stage")
        if s and s not in out:
            out.append(s)
    return out


def _series(run: Run, stage: str, key: str) -> list[tuple[float, float]]:
    """(step, value) for every logged row of ``stage`` with a finite ``key``."""
    out = []
    for row in run.metrics:
        v, step = _num(row.get(key)), _num(row.get("step"))
        if row.get("stage") == stage and v is not None and step is not None:
            out.append((step, v))
    return out


def collect_metrics(runs: list[Run]) -> dict[str, dict[str, dict]]:
    """``{metric: {run name: entry}}`` with entry the scores.json summary shape.

    Scores first (in file order), then preference accuracy / margin / held-out NLL, then the final validation
    loss per stage: one table for everything a reader compares.
    """
    table: dict[str, dict[str, dict]] = {}

    def put(metric, run, entry):
        if isinstance(entry, dict) and _num(entry.get("value")) is not None:
            table.setdefault(metric, {})[run.name] = entry

    for run in runs:
        for metric, entry in (run.scores.get("summary") or {}).items():
            put(metric, run, entry)
    for run in runs:
        for key in ("accuracy", "margin", "heldout_nll"):  # heldout_nll: a validation loss every run has
            put(f"preference.{key}", run, run.preference.get(key))
    for run in runs:
        for stage in _stages(run):
            losses = _series(run, stage, "eval_loss")
            if losses:
                put(f"{stage}.eval_loss", run, {"value": losses[-1][1], "direction": "lower", "n": None})
    return table


def best_runs(entries: dict[str, dict]) -> set[str]:
    """Names of the runs with the best value (ties all count); none without a direction or rival."""
    direction = next((e.get("direction") for e in entries.values() if e.get("direction")), None)
    values = {name: _num(e.get("value")) for name, e in entries.items()}
    values = {k: v for k, v in values.items() if v is not None}
    if direction not in ("higher", "lower") or len(values) < 2:
        return set()
    best = max(values.values()) if direction == "higher" else min(values.values())
    return {k for k, v in values.items() if v == best}


def fmt(v) -> str:
    v = _num(v)
    if v is None:
        return "–"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def fmt_entry(e: dict | None) -> str:
    """``0.42 [0.31, 0.55]``; the value alone where there is no interval."""
    if not e:
        return "–"
    low, high = _num(e.get("low")), _num(e.get("high"))
    interval = f" [{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""
    return fmt(e.get("value")) + interval


def _arrow(entries: dict[str, dict]) -> str:
    d = next((e.get("direction") for e in entries.values() if e.get("direction")), None)
    return {"higher": "↑", "lower": "↓"}.get(d, "")


# --- warnings --------------------------------------------------------------------------------

def warnings_for(runs: list[Run]) -> list[str]:
    out = []
    for run in runs:
        out += _state_warning(run) + _displacement_warnings(run) + _overfit_warnings(run)
    out += _length_bias_warnings(runs) + _trim_notes(runs)
    return out


def _trim_notes(runs: list[Run]) -> list[str]:
    """``model.trim_vocab``: say how far the output layer was cut, and flag a mixed comparison."""
    trimmed = {r.name: bool(_get(r.config, "model", "trim_vocab")) for r in runs}
    out = []
    for r in runs:
        if trimmed[r.name]:
            v = _read_json(r.path / "vocab.json")
            size = f"{v['kept']:,} of {v['of']:,} tokens" if v.get("kept") else "the data's tokens"
            out.append(f"{r.name}: output layer trimmed to {size} (model.trim_vocab; it can only produce those)")
    if len(set(trimmed.values())) > 1:
        out.append("runs differ in model.trim_vocab (trimmed: " + ", ".join(n for n, t in trimmed.items() if t)
                   + "); their generations are not comparable")
    return out


def _state_warning(run: Run) -> list[str]:
    if run.method == "base":  # a base-model directory is written by the eval, never trained
        return []
    state = effective_state(run.status) if run.status else None
    if state == "done":
        return []
    why = f"state is '{state}'" if state else "it has no status.json"
    note = (run.status.get("error") or state_note(run.status)) if run.status else ""
    err = f" ({note})" if note else ""
    return [f"{run.name}: training did not finish — {why}{err}; its numbers may come from an unfinished model."]


def _displacement_warnings(run: Run) -> list[str]:
    """DPO can widen the margin by pushing both answers down; the chosen one then gets *less* likely."""
    out = []
    for stage in _stages(run):
        chosen, margins = _series(run, stage, "logps/chosen"), _series(run, stage, "rewards/margins")
        if len(chosen) < 2 or len(margins) < 2:
            continue
        if chosen[-1][1] < chosen[0][1] and margins[-1][1] > margins[0][1]:
            out.append(
                f"{run.name}: in the {stage} stage the chosen log-prob fell ({fmt(chosen[0][1])} → "
                f"{fmt(chosen[-1][1])}) while the reward margin grew ({fmt(margins[0][1])} → "
                f"{fmt(margins[-1][1])}): likelihood displacement, the chosen answers became less likely."
            )
    return out


def _overfit_warnings(run: Run) -> list[str]:
    losses = [v for _, v in _series(run, "sft", "eval_loss")]
    if len(losses) < 2 or losses[-1] <= min(losses) * (1 + OVERFIT):
        return []
    return [f"{run.name}: SFT validation loss ended at {fmt(losses[-1])}, {100 * (losses[-1] / min(losses) - 1):.0f}% "
            f"above its minimum {fmt(min(losses))}: overfitting; fewer epochs or early stopping would help."]


def _length_bias_warnings(runs: list[Run]) -> list[str]:
    """DPO learns "longer is better" when chosen answers are systematically longer than rejected ones."""
    out, cache = [], {}
    for run in runs:
        paths = _get(run.config, "data", "train")
        if run.method not in ("dpo", "sft_dpo") or not isinstance(paths, list) or not paths:
            continue
        key = tuple(map(str, paths))
        if not all(Path(p).is_file() for p in key):  # relative to the cwd; moved data: nothing to check
            continue
        if key not in cache:
            cache[key] = _mean_lengths(key)
        lengths = cache[key]
        if isinstance(lengths, str):
            out.append(f"{run.name}: could not check the chosen/rejected lengths of {', '.join(key)}: {lengths}")
            continue
        chosen, rejected = lengths
        if rejected and abs(chosen / rejected - 1) > LENGTH_BIAS:
            side = "longer" if chosen > rejected else "shorter"
            out.append(
                f"{run.name}: in its DPO training data the chosen answers are on average "
                f"{abs(chosen / rejected - 1) * 100:.0f}% {side} than the rejected ones ({chosen:.0f} vs "
                f"{rejected:.0f} characters): a length bias the model can learn instead of the task."
            )
    return out


def _mean_lengths(paths: tuple[str, ...]) -> tuple[float, float] | str:
    """Mean characters of the chosen and rejected answers, or the reason they could not be read."""
    try:
        # imported here: the loader pulls in `datasets`, seconds that only this check needs
        from data import load

        ds = load(list(paths), task="dpo", on_error="skip", emit=lambda issue: None)
    except Exception as e:  # a DataError, a broken file or a shadowed `data` package must not cost the report
        return str(e) or type(e).__name__
    if len(ds) == 0:
        return "no valid records"

    def chars(messages):
        return sum(len(m.get("content") or "") for m in messages)

    chosen = sum(chars(r) for r in ds["chosen"]) / len(ds)
    rejected = sum(chars(r) for r in ds["rejected"]) / len(ds)
    return chosen, rejected


# --- samples ---------------------------------------------------------------------------------

def sample_ids(runs: list[Run], max_samples: int) -> list[str]:
    """Prompt ids shown side by side: those every run generated for first, in first-seen order."""
    order: list[str] = []
    per_run = []
    for run in runs:
        ids = {str(g.get("id")) for g in run.generations}
        per_run.append(ids)
        order += [str(g.get("id")) for g in run.generations if str(g.get("id")) not in order]
    having = [ids for ids in per_run if ids]
    shared = [i for i in order if all(i in ids for ids in having)]
    rest = [i for i in order if i not in shared]
    return (shared + rest)[:max(0, max_samples)]


def highlight(text: str) -> str:
    """``text`` html-escaped, style markers and degenerate loops wrapped in ``<mark>``.

    Spans may overlap (a marker inside a loop, two markers sharing characters): the text is cut
    at every span boundary and each piece gets the marks that cover it, so tags always nest.
    """
    n = len(text)
    markers = [(s, e, str(c)) for s, e, c in (marker_spans(text) if marker_spans else [])]
    loops = [(s, e) for s, e in (loop_spans(text) if loop_spans else [])]
    markers = [(max(0, s), min(n, e), c) for s, e, c in markers if max(0, s) < min(n, e)]
    loops = [(max(0, s), min(n, e)) for s, e in loops if max(0, s) < min(n, e)]
    cuts = sorted({0, n, *(x for s, e, _ in markers for x in (s, e)), *(x for sp in loops for x in sp)})
    pieces: list[tuple[str, tuple, bool]] = []  # (text, marker categories, in a loop)
    for a, b in zip(cuts, cuts[1:]):
        cats = tuple(sorted({c for s, e, c in markers if s <= a and b <= e}))
        loop = any(s <= a and b <= e for s, e in loops)
        if pieces and pieces[-1][1:] == (cats, loop):  # neighbours with the same marks: one tag
            pieces[-1] = (pieces[-1][0] + text[a:b], cats, loop)
        else:
            pieces.append((text[a:b], cats, loop))
    out = []
    for piece, cats, loop in pieces:
        s = html.escape(piece)
        if cats:
            s = f'<mark class="marker" title="{html.escape(", ".join(cats))}">{s}</mark>'
        if loop:
            s = f'<mark class="loop" title="degenerate loop">{s}</mark>'
        out.append(s)
    return "".join(out)


def _score_rows(run: Run) -> dict[str, dict]:
    return {str(r.get("id")): r for r in run.scores.get("rows") or [] if isinstance(r, dict)}


def _badges(row: dict | None) -> str:
    """The per-sample scores in a line under the text, so a reader sees why a number moved."""
    if not row:
        return ""
    bits = []
    style = row.get("style") or {}
    if _num(style.get("score")) is not None:
        bits.append(f"style {fmt(style['score'])}")
    rep = row.get("repetition") or {}
    if rep.get("degenerate"):
        bits.append('<span class="bad">degenerate</span>')
    kw = row.get("keywords") or {}
    if kw.get("hits"):
        missing = [k for k, hit in kw["hits"].items() if not hit]
        bits.append("keywords: all" if not missing else "missing: " + html.escape(", ".join(missing)))
    return f'<div class="badges">{" · ".join(bits)}</div>' if bits else ""


# --- plots (inline SVG) ----------------------------------------------------------------------

def _svg(fig, prefix: str) -> str:
    """The figure as an inline ``<svg>``; ids prefixed so several SVGs share one html document."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and DOCTYPE, invalid inside html
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m[1]}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m[1]})", svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m[1]}"', svg)
    return svg


# svg.fonttype none: text stays text (small files; the browser's fonts draw Korean run names);
# a fixed hash salt makes the SVG ids, hence the whole report, the same on every rebuild.
RC = {"svg.fonttype": "none", "svg.hashsalt": "sftdpo-report", "font.size": 9,
      "axes.spines.top": False, "axes.spines.right": False}


def _plot_style():
    import matplotlib

    return matplotlib.rc_context(RC)  # scoped: a caller's own matplotlib settings stay untouched


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    # Figure without pyplot: no global figure registry to leak or close, no GUI backend chosen.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def curve_plots(runs: list[Run]) -> list[tuple[str, str]]:
    """(title, svg): loss per stage, then the DPO reward curves; runs overlaid, train solid, eval dashed."""
    plots = []
    stages = []
    for run in runs:
        stages += [s for s in _stages(run) if s not in stages]
    loss_stages = [s for s in stages if any(_series(r, s, "loss") or _series(r, s, "eval_loss") for r in runs)]
    if loss_stages:
        fig, axes = _figure(4.6 * len(loss_stages), 3.2, ncols=len(loss_stages))
        for ax, stage in zip(axes, loss_stages):
            _draw(ax, runs, stage, "loss", f"{stage}: loss (solid train, dashed validation)")
        plots.append(("Loss", _svg(fig, "loss")))
    for stage in stages:
        keys = [k for k in DPO_CURVES if any(_series(r, stage, k) or _series(r, stage, "eval_" + k) for r in runs)]
        if not keys:
            continue
        fig, axes = _figure(9.2, 5.6, ncols=2, nrows=2)
        for ax, key in zip(axes, DPO_CURVES):
            _draw(ax, runs, stage, key, f"{stage}: {key}")
        plots.append((f"DPO rewards ({stage})", _svg(fig, f"rewards-{stage}")))
    return plots


def _draw(ax, runs: list[Run], stage: str, key: str, title: str) -> None:
    drawn = False
    for i, run in enumerate(runs):
        colour = COLOURS[i % len(COLOURS)]
        for k, style in ((key, "-"), ("eval_" + key, "--")):
            pts = _series(run, stage, k)
            if pts:
                ax.plot(*zip(*pts), style, color=colour, lw=1.4, marker="o" if len(pts) < 3 or style == "--" else None,
                        ms=3, label=run.name if style == "-" or not _series(run, stage, key) else None)
                drawn = True
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    if drawn:
        ax.legend(fontsize=7, frameon=False)
    else:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="#888")


def bar_plots(runs: list[Run], table: dict[str, dict[str, dict]]) -> list[tuple[str, str]]:
    """(metric, svg): one bar per run with its 95% interval, the best run's bar outlined."""
    methods = [r.method for r in runs]
    ticks = methods if len(set(methods)) == len(methods) else [f"{i + 1}:{m}" for i, m in enumerate(methods)]
    plots = []
    for n, (metric, entries) in enumerate(table.items()):
        fig, (ax,) = _figure(2.9, 2.3)
        best = best_runs(entries)
        for i, run in enumerate(runs):
            e = entries.get(run.name)
            v = _num(e.get("value")) if e else None
            if v is None:
                continue
            low, high = _num(e.get("low")), _num(e.get("high"))
            yerr = [[max(0.0, v - low)], [max(0.0, high - v)]] if low is not None and high is not None else None
            ax.bar(i, v, yerr=yerr, capsize=3, color=COLOURS[i % len(COLOURS)],
                   edgecolor="black" if run.name in best else "none", linewidth=1.5)
        ax.set_xticks(range(len(runs)), ticks, rotation=20, fontsize=7)
        ax.set_title(f"{metric} {_arrow(entries)}", fontsize=9)
        plots.append((metric, _svg(fig, f"bar{n}")))
    return plots


# --- markdown --------------------------------------------------------------------------------

def _md_cell(text) -> str:
    """A table cell: html-escaped (markdown renders html), pipes and newlines kept out of the grid."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def preference_note(runs) -> str:
    """Which preference measure each run has: the margins of the two are not on one scale."""
    methods = {r.name: r.preference.get("method") for r in runs if r.preference.get("method")}
    if not methods:
        return ""
    parts = [f"{name}: {'implicit DPO reward vs. its reference' if m == 'implicit_reward' else 'length-normalised log-prob'}"
             for name, m in methods.items()]
    return ("preference.* on the held-out pairs — " + "; ".join(parts)
            + ". Accuracies compare across runs; margins only within one measure.")


def render_md(runs, table, warnings, max_samples) -> str:
    out = ["# Run comparison", ""]
    out += ["## Runs", "", *_md_table(["run", "method", "model", "peft", "data", "seed", "state", "path"], [
        [_md_cell(x) for x in _run_facts(r)] for r in runs])]
    out += ["## Warnings", ""]
    out += [f"- {_md_cell(w)}" for w in warnings] or ["None."]
    out += ["", "## Metrics", "", "Value [95% interval]; best per metric in **bold** (↑ higher is better, ↓ lower).", ""]
    if preference_note(runs):
        out += [_md_cell(preference_note(runs)), ""]
    rows = []
    for metric, entries in table.items():
        best = best_runs(entries)
        cells = []
        for r in runs:
            s = _md_cell(fmt_entry(entries.get(r.name)))
            cells.append(f"**{s}**" if r.name in best else s)
        rows.append([f"{_md_cell(metric)} {_arrow(entries)}", *cells])
    out += _md_table(["metric", *(_md_cell(r.label) for r in runs)], rows) if rows else ["No metrics.", ""]
    out += ["## Samples", ""]
    ids = sample_ids(runs, max_samples)
    if ids:
        gens = [{str(g.get("id")): g for g in r.generations} for r in runs]
        rows = []
        for i in ids:
            first = next(g[i] for g in gens if i in g)
            rows.append([_md_cell(f"{i}: {first.get('prompt', '')}"),
                         *(_md_cell(g[i].get("text", "")) if i in g else "–" for g in gens)])
        out += _md_table(["prompt", *(_md_cell(r.label) for r in runs)], rows)
    else:
        out += ["No generations.", ""]
    out += ["## Provenance", ""]
    for r in runs:
        out += [f"### {_md_cell(r.name)}", "", f"- directory: `{r.path}`, config: `{r.path / 'config.yaml'}`"]
        env = r.status.get("environment") or {}
        if env:
            out.append("- " + ", ".join(f"{k} {_md_cell(v)}" for k, v in env.items()))
        for stage, path, sha, records in _data_files(r):
            out.append(f"- {stage}: `{path}` sha256 `{sha}` ({records} records)")
        out.append("")
    return "\n".join(out)


def _run_facts(r: Run) -> list:
    c = r.config
    return [r.name, r.method, _get(c, "model", "name") or "–", _get(c, "peft", "name") or "–",
            _get(c, "data", "name") or "–", c.get("seed", "–"), effective_state(r.status) if r.status else "–",
            str(r.path)]


def _data_files(r: Run) -> list[tuple[str, str, str, object]]:
    out = []
    for stage, d in (_get(r.data, "stages") or {}).items():
        for f in _get(d, "train_files", "files") or []:
            out.append((f"{stage} train", f.get("path"), f.get("sha256"), f.get("valid")))
    for f in _get(r.data, "test_files", "files") or []:
        out.append(("test", f.get("path"), f.get("sha256"), f.get("valid")))
    return out


# --- html ------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans KR",sans-serif;margin:24px auto;max-width:1400px;
 padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{background:#d9f2d9;font-weight:600}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 10px;margin:6px 0}
.ok{color:#2a7a2a}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}
figcaption{font-size:12px;color:#555}
.key span{display:inline-block;margin-right:14px}.key i{display:inline-block;width:12px;height:12px;margin-right:4px;
 vertical-align:middle}
table.samples td{white-space:pre-wrap;min-width:200px;max-width:420px;font-size:13px}
table.samples td.prompt{background:#fafafa}
.badges{margin-top:6px;font-size:11px;color:#555;white-space:normal}.bad{color:#c00;font-weight:600}
mark.marker{background:#ffe680}mark.loop{background:#ffd6d6;text-decoration:underline wavy #c00}
details pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
code{font-size:12px}
"""


def _e(x) -> str:
    return html.escape("–" if x is None else str(x))


def _html_table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Cells are html already (callers escape); a cell may be (html, css class)."""
    def cell(c):
        return f'<td class="{c[1]}">{c[0]}</td>' if isinstance(c, tuple) else f"<td>{c}</td>"
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_html(runs, table, warnings, max_samples) -> str:
    key = '<p class="key">' + "".join(
        f'<span><i style="background:{COLOURS[i % len(COLOURS)]}"></i>{_e(r.label)}</span>'
        for i, r in enumerate(runs)) + "</p>"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Run comparison: {_e(', '.join(r.name for r in runs))}</title><style>{CSS}</style></head><body>",
        "<h1>Run comparison</h1>",
        "<h2>Runs</h2>", key,
        _html_table(["run", "method", "model", "peft", "data", "seed", "state", "path"],
                    [[_e(x) for x in _run_facts(r)] for r in runs]),
        "<h2>Warnings</h2>",
        "".join(f'<div class="warn">{_e(w)}</div>' for w in warnings) or '<p class="ok">None.</p>',
        "<h2>Metrics</h2>", _metrics_html(runs, table),
    ]
    with _plot_style():
        bars, curves = bar_plots(runs, table), curve_plots(runs)
    if bars:
        parts += ["<h2>Metric charts</h2>", "<p>Bars with 95% intervals; the best run's bar is outlined.</p>", key,
                  '<div class="plots">', *(f"<figure>{svg}</figure>" for _, svg in bars), "</div>"]
    if curves:
        parts += ["<h2>Training curves</h2>", key,
                  *(f"<figure><figcaption>{_e(t)}</figcaption>{svg}</figure>" for t, svg in curves)]
    parts += ["<h2>Samples</h2>", _samples_html(runs, max_samples), "<h2>Provenance</h2>", _provenance_html(runs),
              "</body></html>"]
    return "\n".join(parts)


def _metrics_html(runs, table) -> str:
    if not table:
        return "<p>No metrics.</p>"
    rows = []
    for metric, entries in table.items():
        best = best_runs(entries)
        rows.append([f"{_e(metric)} {_arrow(entries)}", *(
            (_e(fmt_entry(entries.get(r.name))), "num best" if r.name in best else "num") for r in runs)])
    note = f"<p>{_e(preference_note(runs))}</p>" if preference_note(runs) else ""
    return ("<p>Value [95% interval]; the best run per metric is highlighted (↑ higher is better, ↓ lower).</p>"
            + note + _html_table(["metric", *(_e(r.label) for r in runs)], rows))


def _samples_html(runs, max_samples) -> str:
    ids = sample_ids(runs, max_samples)
    if not ids:
        return "<p>No generations.</p>"
    gens = [{str(g.get("id")): g for g in r.generations} for r in runs]
    scores = [_score_rows(r) for r in runs]
    rows = []
    for i in ids:
        first = next(g[i] for g in gens if i in g)
        prompt = f"<b>{_e(i)}</b>\n{_e(first.get('prompt', ''))}"
        if first.get("keywords"):
            prompt += f"\n<i>keywords: {_e(', '.join(map(str, first['keywords'])))}</i>"
        row = [(prompt, "prompt")]
        for g, s in zip(gens, scores):
            row.append(highlight(str(g[i].get("text", ""))) + _badges(s.get(i)) if i in g else "–")
        rows.append(row)
    legend = ('<p><mark class="marker">style marker</mark> (hover for its category) · '
              '<mark class="loop">degenerate loop</mark></p>') if marker_spans or loop_spans else ""
    return legend + _html_table(["prompt", *(_e(r.label) for r in runs)], rows, "samples")


def _provenance_html(runs) -> str:
    libs = []
    for r in runs:
        libs += [k for k in (r.status.get("environment") or {}) if k not in libs]
    parts = []
    if libs:
        parts.append(_html_table(["", *(_e(r.name) for r in runs)], [
            [_e(lib), *(f"<code>{_e((r.status.get('environment') or {}).get(lib))}</code>" for r in runs)]
            for lib in libs]))
    for r in runs:
        files = _data_files(r)
        parts.append(f"<h3>{_e(r.name)}</h3><p>directory <code>{_e(r.path)}</code></p>")
        if files:
            parts.append(_html_table(["stage", "file", "sha256", "records"], [
                [_e(st), f"<code>{_e(p)}</code>", f"<code>{_e(sha)}</code>", (_e(n), "num")] for st, p, sha, n in files]))
        if r.config_text:
            parts.append(f"<details><summary>config.yaml</summary><pre>{_e(r.config_text)}</pre></details>")
    return "\n".join(parts)


# --- entry points ----------------------------------------------------------------------------

def write_report(run_dirs: list[str | Path], out_dir: str | Path, max_samples: int = MAX_SAMPLES) -> tuple[Path, Path]:
    """Write ``out_dir/report.md`` and ``out_dir/report.html``; returns their paths.

    Runs keep the order given (the columns read base | SFT | DPO | SFT→DPO when passed so).
    Raises :class:`RunError` (message ``RUN_DIR: reason``) for a directory that is not a run.
    """
    runs = []
    for d in run_dirs:
        try:
            runs.append(load_run(d))
        except RunError as e:
            raise RunError(f"{d}: {e}") from None
    _unique_names(runs)
    table = collect_metrics(runs)
    warnings = warnings_for(runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "report.md", out / "report.html"
    md.write_text(render_md(runs, table, warnings, max_samples), encoding="utf-8")
    page.write_text(render_html(runs, table, warnings, max_samples), encoding="utf-8")
    return md, page


def main(argv: list[str] | None = None) -> int:
    """``python -m eval report RUN_DIR... --out DIR``; ``argv`` is what follows ``report``."""
    p = argparse.ArgumentParser(prog="python -m eval report", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, in column order")
    p.add_argument("--out", required=True, metavar="DIR", help="where report.md and report.html go")
    p.add_argument("--max-samples", type=int, default=MAX_SAMPLES, help="prompts shown side by side")
    args = p.parse_args(argv)
    try:
        _, page = write_report(args.run_dirs, args.out, args.max_samples)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the output directory cannot be written
        print(f"error: {args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"report: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
