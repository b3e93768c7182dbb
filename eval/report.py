"""Compare runs side by side: one metrics table, the paired differences between arms, curves,
bar charts, samples, warnings, provenance.

    python -m eval report runs/base runs/sft runs/dpo runs/sft_dpo --out reports/style

writes ``report.md`` and ``report.html`` (self-contained: inline CSS, plots as inline SVG, no
JavaScript, opens offline) from the Jinja2 templates in ``eval/templates/``. Everything comes
from the run directories (read by :func:`eval.runs.load_run`), so a report can be rebuilt years
later from ``runs/``; any file of a run may be missing and the report shows what is there.
Directions, descriptions and which measures compare across arms come from the metric registry.
"""

from __future__ import annotations

import argparse
import html
import io
import math
import re
import sys
from itertools import combinations
from pathlib import Path

# The highlighters live with the metrics so the report marks exactly what was scored.
from eval.metrics import REGISTRY
from eval.metrics.generation import echo_spans
from eval.metrics.registry import direction as metric_direction
from eval.metrics.repetition import loop_spans
from eval.metrics.style import marker_spans
from eval.runs import Run, RunError, load_run
from eval.stats import paired_difference
from train.lineage import warnings as reference_warnings
from train.rundir import state_note

MAX_SAMPLES = 12
# one colour per run, the same in every plot and in the html legend
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
DPO_CURVES = ["rewards/margins", "rewards/chosen", "rewards/rejected", "rewards/accuracies"]
LENGTH_BIAS = 0.20   # chosen vs rejected mean length, relative
OVERFIT = 0.05       # last eval_loss above the minimum, relative
FEW_MATCHED = 10     # length-matched pairs below this: the subset is too small to read
# charted besides every rate with a direction (the decisions)
CHARTED = ("style.score", "preference.heldout_nll")
# the order of the metric groups in the tables
GROUPS = ("generation", "repetition", "style", "keywords", "preference")

__all__ = ["Run", "RunError", "load_run", "write_report", "main"]


def _unique_names(runs: list[Run]) -> None:
    """Two run directories may carry the same config name (copied runs); columns must differ."""
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name}#{seen[run.name]}"


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


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


def _entries(run: Run) -> dict[str, dict]:
    """``{metric: summary entry}`` of a run: scores.json's summary and preference.json's fields."""
    out = {k: e for k, e in (run.scores.get("summary") or {}).items() if isinstance(e, dict)}
    for key, e in run.preference.items():
        if isinstance(e, dict) and f"preference.{key}" in REGISTRY:
            out[f"preference.{key}"] = e
    return out


def collect_metrics(runs: list[Run], comparable: bool = True) -> dict[str, dict[str, dict]]:
    """``{metric: {run name: entry}}`` (the summary shape), registered metrics in group order,
    then each stage's last validation loss. ``comparable=False`` gives the measures that are
    defined against each arm's own reference instead (never compared across arms)."""
    table: dict[str, dict[str, dict]] = {}
    per_run = [(run, _entries(run)) for run in runs]
    order = sorted(REGISTRY.values(), key=lambda m: GROUPS.index(m.group) if m.group in GROUPS else len(GROUPS))
    for m in order:
        if m.comparable != comparable:
            continue
        for run, entries in per_run:
            e = entries.get(m.name)
            if isinstance(e, dict) and _num(e.get("value")) is not None:
                table.setdefault(m.name, {})[run.name] = e
    if comparable:
        for run in runs:
            for stage in _stages(run):
                losses = _series(run, stage, "eval_loss")
                if losses:
                    table.setdefault(f"{stage}.eval_loss", {})[run.name] = {"value": losses[-1][1], "n": None}
    return table


def best_runs(metric: str, entries: dict[str, dict]) -> set[str]:
    """Names of the runs with the best value (ties all count); none without a direction or rival."""
    d = metric_direction(metric)
    values = {name: _num(e.get("value")) for name, e in entries.items()}
    values = {k: v for k, v in values.items() if v is not None}
    if d not in ("higher", "lower") or len(values) < 2:
        return set()
    best = max(values.values()) if d == "higher" else min(values.values())
    return {k for k, v in values.items() if v == best}


def differences(runs: list[Run], table: dict[str, dict[str, dict]]) -> tuple[list[str], list[tuple[str, list]]]:
    """Paired differences between arms: (column labels "B − A" for every pair, later column minus
    earlier), and per metric one :func:`eval.stats.paired_difference` per pair (None where a run
    lacks the metric's per-prompt values). Prompts pair across the two runs."""
    pairs = [(a, b) for a, b in combinations(runs, 2)]
    labels = [f"{b.name} − {a.name}" for a, b in pairs]
    rows = []
    for metric in table:
        if metric not in REGISTRY:
            continue
        cells = []
        for a, b in pairs:
            va, vb = a.per_prompt(metric), b.per_prompt(metric)
            cells.append(paired_difference([vb], [va]) if va and vb else None)
        if any(c and c["value"] is not None for c in cells):
            rows.append((metric, cells))
    return labels, rows


def fmt(v) -> str:
    v = _num(v)
    if v is None:
        return "–"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def fmt_entry(e: dict | None, metric: str | None = None) -> str:
    """``0.42 [0.31, 0.55]``; the value alone where there is no interval; ``n=`` for subsets."""
    if not e:
        return "–"
    low, high = _num(e.get("low")), _num(e.get("high"))
    interval = f" [{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""
    n = f" (n={e['n']})" if metric in REGISTRY and REGISTRY[metric].subset and e.get("n") is not None else ""
    return fmt(e.get("value")) + interval + n


def fmt_diff(d: dict | None) -> str:
    if not d or d.get("value") is None:
        return "–"
    return f"{fmt(d['value'])} [{fmt(d['low'])}, {fmt(d['high'])}]" + (" *" if d["excludes_zero"] else "")


def _arrow(metric: str) -> str:
    return {"higher": "↑", "lower": "↓"}.get(metric_direction(metric), "")


# --- warnings and notes ----------------------------------------------------------------------

def warnings_for(runs: list[Run]) -> list[str]:
    out = []
    for run in runs:
        out += _state_warning(run) + _displacement_warnings(run) + _overfit_warnings(run)
        out += reference_warnings(run.name, run.status)  # a first step off the loss's prediction (train/lineage.py)
    out += _length_bias_warnings(runs) + _trim_notes(runs)
    return out


def _trim_notes(runs: list[Run]) -> list[str]:
    """``model.trim_vocab``: say how far the output layer was cut, and flag a mixed comparison."""
    from eval.runs import read_json

    trimmed = {r.name: bool(_get(r.config, "model", "trim_vocab")) for r in runs}
    out = []
    for r in runs:
        if trimmed[r.name]:
            v = read_json(r.path / "vocab.json")
            size = f"{v['kept']:,} of {v['of']:,} tokens" if v.get("kept") else "the data's tokens"
            out.append(f"{r.name}: output layer trimmed to {size} (model.trim_vocab; it can only produce those)")
    if len(set(trimmed.values())) > 1:
        out.append("runs differ in model.trim_vocab (trimmed: " + ", ".join(n for n, t in trimmed.items() if t)
                   + "); their generations are not comparable")
    return out


def _state_warning(run: Run) -> list[str]:
    if run.method == "base":  # a base-model directory is written by the eval, never trained
        return []
    state = run.state
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
    """DPO learns "longer is better" when chosen answers are systematically longer than rejected
    ones. The figures are the ones training wrote into data.json (``stages.dpo.lengths``)."""
    out = []
    for run in runs:
        lengths = _get(run.data, "stages", "dpo", "lengths")
        if run.method not in ("dpo", "sft_dpo") or not isinstance(lengths, dict):
            continue
        chosen, rejected = _num(lengths.get("chosen_mean")), _num(lengths.get("rejected_mean"))
        if not chosen or not rejected or abs(chosen / rejected - 1) <= LENGTH_BIAS:
            continue
        side = "longer" if chosen > rejected else "shorter"
        baseline = _num(lengths.get("length_baseline"))
        out.append(
            f"{run.name}: in its DPO training data the chosen answers are on average "
            f"{abs(chosen / rejected - 1) * 100:.0f}% {side} than the rejected ones ({chosen:.0f} vs "
            f"{rejected:.0f} characters)"
            + (f"; \"the longer answer wins\" ranks {baseline:.0%} of the pairs right" if baseline is not None else "")
            + ": a length bias the model can learn instead of the task."
        )
    return out


def preference_note(runs: list[Run]) -> str:
    """How the preference rows are measured, and how far the length-matched subset can be read."""
    have = [r for r in runs if r.preference]
    if not have:
        return ""
    note = ("preference.* on the held-out pairs, one rule for every run: (a) the summed log-prob margin "
            "log π(chosen) − log π(rejected) and (b) the same per token. Summed log-probs favour the shorter "
            "answer; compare both with preference.length_baseline (the longer answer wins).")
    matched = {r.name: r.preference.get("n_length_matched") for r in have if r.preference.get("n_length_matched") is not None}
    if matched:
        k, n = min(matched.values()), max((r.preference.get("n") or 0) for r in have)
        note += f" Length-matched pairs (lengths within 20%): {k} of {n}"
        note += f" — too few to read (fewer than {FEW_MATCHED})." if k < FEW_MATCHED else "."
    base = [r.preference.get("length_baseline") for r in have if r.preference.get("length_baseline") is not None]
    if base:
        b = base[0]["value"] if isinstance(base[0], dict) else base[0]
        note += f" On these pairs the length-only baseline (the longer answer wins) scores {b:.0%}"
        note += ": length alone nearly decides them." if not 0.2 < b < 0.8 else "."
    return note


def implicit_note(runs: list[Run]) -> dict[str, str]:
    """Run name -> the reference its implicit reward is measured against."""
    return {r.name: r.preference["implicit_reference"] for r in runs if r.preference.get("implicit_reference")}


# --- samples ---------------------------------------------------------------------------------

def _prompt_key(g: dict) -> str:
    return str(g.get("prompt_id", g.get("id")))


def _first_samples(run: Run) -> dict[str, dict]:
    """Prompt id -> the first sample of that prompt (the table shows one answer per prompt)."""
    out: dict[str, dict] = {}
    for g in run.generations:
        out.setdefault(_prompt_key(g), g)
    return out


def sample_ids(runs: list[Run], max_samples: int) -> list[str]:
    """Prompt ids shown side by side: those every run generated for first, in first-seen order."""
    order: list[str] = []
    per_run = []
    for run in runs:
        ids = {_prompt_key(g) for g in run.generations}
        per_run.append(ids)
        order += [k for k in dict.fromkeys(_prompt_key(g) for g in run.generations) if k not in order]
    having = [ids for ids in per_run if ids]
    shared = [i for i in order if all(i in ids for ids in having)]
    rest = [i for i in order if i not in shared]
    return (shared + rest)[:max(0, max_samples)]


def highlight(text: str, prompt=None) -> str:
    """``text`` html-escaped, style markers, degenerate loops and copies of the prompt wrapped in
    ``<mark>``.

    Spans may overlap (a marker inside a loop, two markers sharing characters): the text is cut
    at every span boundary and each piece gets the marks that cover it, so tags always nest.
    """
    n = len(text)
    markers = [(s, e, str(c)) for s, e, c in (marker_spans(text) if marker_spans else [])]
    loops = [(s, e) for s, e in (loop_spans(text) if loop_spans else [])]
    echoes = [(s, e) for s, e in (echo_spans(text, prompt) if prompt and echo_spans else [])]
    markers = [(max(0, s), min(n, e), c) for s, e, c in markers if max(0, s) < min(n, e)]
    loops = [(max(0, s), min(n, e)) for s, e in loops if max(0, s) < min(n, e)]
    echoes = [(max(0, s), min(n, e)) for s, e in echoes if max(0, s) < min(n, e)]
    cuts = sorted({0, n, *(x for s, e, _ in markers for x in (s, e)), *(x for sp in loops + echoes for x in sp)})
    pieces: list[tuple[str, tuple, bool, bool]] = []  # (text, marker categories, in a loop, copied)
    for a, b in zip(cuts, cuts[1:]):
        cats = tuple(sorted({c for s, e, c in markers if s <= a and b <= e}))
        loop = any(s <= a and b <= e for s, e in loops)
        echo = any(s <= a and b <= e for s, e in echoes)
        if pieces and pieces[-1][1:] == (cats, loop, echo):  # neighbours with the same marks: one tag
            pieces[-1] = (pieces[-1][0] + text[a:b], cats, loop, echo)
        else:
            pieces.append((text[a:b], cats, loop, echo))
    out = []
    for piece, cats, loop, echo in pieces:
        s = html.escape(piece)
        if cats:
            s = f'<mark class="marker" title="{html.escape(", ".join(cats))}">{s}</mark>'
        if loop:
            s = f'<mark class="loop" title="degenerate loop">{s}</mark>'
        if echo:
            s = f'<mark class="echo" title="copies the prompt">{s}</mark>'
        out.append(s)
    return "".join(out)


def _score_rows(run: Run) -> dict[str, dict]:
    return {str(r.get("id")): r for r in run.scores.get("rows") or [] if isinstance(r, dict)}


def _badges(row: dict | None) -> list[str]:
    """The per-sample scores under the text (html), so a reader sees why a number moved."""
    if not row:
        return []
    bits = []
    style = row.get("style") or {}
    if _num(style.get("score")) is not None:
        bits.append(f"style {fmt(style['score'])}")
    rep = row.get("repetition") or {}
    if rep.get("degenerate"):
        bits.append('<span class="bad">degenerate</span>')
    gen = row.get("generation") or {}
    if gen.get("stopped") is False:
        bits.append('<span class="bad">no stop</span>')
    if _num(gen.get("echo")):
        bits.append(f"echo {gen['echo']:.0%}")
    kw = row.get("keywords") or {}
    if kw.get("hits"):
        missing = [k for k, hit in kw["hits"].items() if not hit]
        bits.append("keywords: all" if not missing else "missing: " + html.escape(", ".join(missing)))
    return bits


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
    charted = [(m, e) for m, e in table.items() if m in CHARTED or m in REGISTRY and REGISTRY[m].aggregation == "rate"
               and REGISTRY[m].direction and not REGISTRY[m].subset]
    for n, (metric, entries) in enumerate(charted):
        fig, (ax,) = _figure(2.9, 2.3)
        best = best_runs(metric, entries)
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
        ax.set_title(f"{metric} {_arrow(metric)}", fontsize=9)
        plots.append((metric, _svg(fig, f"bar{n}")))
    return plots


# --- rendering -------------------------------------------------------------------------------

def _md_cell(text) -> str:
    """A table cell: html-escaped (markdown renders html), pipes and newlines kept out of the grid."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


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


def _run_facts(r: Run) -> list:
    c = r.config
    return [r.name, r.method, _get(c, "model", "name") or "–", _get(c, "peft", "name") or "–",
            _get(c, "data", "name") or "–", c.get("seed", "–"), r.state or "–", str(r.path)]


def _data_files(r: Run) -> list[tuple[str, str, str, object]]:
    out = []
    for stage, d in (_get(r.data, "stages") or {}).items():
        for f in _get(d, "train_files", "files") or []:
            out.append((f"{stage} train", f.get("path"), f.get("sha256"), f.get("valid")))
    for f in _get(r.data, "test_files", "files") or []:
        out.append(("test", f.get("path"), f.get("sha256"), f.get("valid")))
    return out


def context(runs: list[Run], max_samples: int, with_plots: bool) -> dict:
    """Everything the templates show, computed once; cells are plain strings (the templates
    escape them) except where a name says html."""
    table = collect_metrics(runs)
    implicit = collect_metrics(runs, comparable=False)
    diff_labels, diff_rows = differences(runs, table)
    gens = [_first_samples(r) for r in runs]
    scores = [_score_rows(r) for r in runs]
    samples = []
    for i in sample_ids(runs, max_samples):
        first = next(g[i] for g in gens if i in g)
        cells = []
        for g, s in zip(gens, scores):
            row = g.get(i)
            cells.append(None if row is None else {
                "text": str(row.get("text", "")), "html": highlight(str(row.get("text", "")), row.get("prompt")),
                "badges": _badges(s.get(str(row.get("id"))))})
        samples.append({"id": i, "prompt": str(first.get("prompt", "")), "keywords": first.get("keywords") or [],
                        "cells": cells})
    libs: list[str] = []
    for r in runs:
        libs += [k for k in (r.status.get("environment") or {}) if k not in libs]
    ctx = {
        "runs": runs, "facts": [_run_facts(r) for r in runs], "colours": COLOURS,
        "warnings": warnings_for(runs),
        "metrics": [{"name": m, "arrow": _arrow(m), "description": REGISTRY[m].description if m in REGISTRY else
                     "the stage's last validation loss", "best": best_runs(m, entries),
                     "cells": [fmt_entry(entries.get(r.name), m) for r in runs]} for m, entries in table.items()],
        "preference_note": preference_note(runs),
        "implicit": [{"name": m, "arrow": _arrow(m), "cells": [fmt_entry(entries.get(r.name)) for r in runs]}
                     for m, entries in implicit.items()],
        "implicit_reference": implicit_note(runs),
        "diff_labels": diff_labels,
        "diffs": [{"name": m, "arrow": _arrow(m), "cells": [fmt_diff(d) for d in cells],
                   "significant": [bool(d and d.get("excludes_zero")) for d in cells]} for m, cells in diff_rows],
        "diff_prompts": max((d["prompts"] for _, cells in diff_rows for d in cells if d), default=0),
        "samples": samples, "libs": libs,
        "provenance": [{"run": r, "env": r.status.get("environment") or {}, "files": _data_files(r)} for r in runs],
        "bars": [], "curves": [],
    }
    if with_plots:
        with _plot_style():
            ctx["bars"], ctx["curves"] = bar_plots(runs, table), curve_plots(runs)
    return ctx


def _templates():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html.jinja"]), trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["md"] = _md_cell
    env.globals["fmt"] = fmt
    return env


def render_md(runs: list[Run], max_samples: int = MAX_SAMPLES) -> str:
    return _templates().get_template("report.md.jinja").render(**context(runs, max_samples, with_plots=False),
                                                               css=CSS)


def render_html(runs: list[Run], max_samples: int = MAX_SAMPLES) -> str:
    return _templates().get_template("report.html.jinja").render(**context(runs, max_samples, with_plots=True),
                                                                 css=CSS)


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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "report.md", out / "report.html"
    md.write_text(render_md(runs, max_samples), encoding="utf-8")
    page.write_text(render_html(runs, max_samples), encoding="utf-8")
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
