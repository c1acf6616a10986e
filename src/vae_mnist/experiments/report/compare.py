"""The comparison report, put together: the sides read (sides.py), judged (judge.py), drawn and
written as one document (render.py) into reports/compare/, all or nothing."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from vae_mnist.common.config import PARAMS_FILE, load_config, project_root
from vae_mnist.common.outputs import atomic_directory, json_text
from vae_mnist.common.quantities import EPOCH_NAMES, TEST_NEG_ELBO
from vae_mnist.evaluation.figures import PNG_METADATA
from vae_mnist.experiments.noise import Spread, read_spread
from vae_mnist.experiments.report import judge
from vae_mnist.experiments.report.render import Cell, Document, write
from vae_mnist.experiments.report.sides import Side, resolve

OUT = Path("reports/compare")
CURVES = "curves.png"  # the overlaid training curves; CURVES_DATA: the values drawn
CURVES_DATA = "curves.json"
MEASURE = "`make recipe R=<name> SEEDS=3` or `make reproduce V=<version>` measures one"


def report(base: str, others: Sequence[str], out: Path = OUT) -> tuple[Document, Path]:
    """Compare the sides `others` name with the side `base` names (see sides.resolve), into
    `out` under the project's root: the document, and its page."""
    root = project_root()
    model_name = load_config(root / PARAMS_FILE).mlflow.registered_model_name
    first = resolve(base, root, model_name)
    rest = [resolve(ref, root, model_name) for ref in others]
    doc = build(first, rest, root)
    return doc, write_report(doc, [first, *rest], root / out)


def build(base: Side, others: Sequence[Side], root: Path) -> Document:
    sides = [base, *others]
    doc = Document(f"{', '.join(o.label for o in others)} against {base.label}")
    spreads = {id(s): read_spread(root, s.params) for s in sides}
    judged = {id(o): judge.judge(base.metrics, o.metrics, _ranges(spreads, base, o))
              for o in others}  # fmt: skip
    doc.summary = [headline(base, o, judged[id(o)]) for o in others]
    for line in doc.summary:
        doc.paragraph(line)
    doc.heading("Sides")
    doc.table(
        ["side", "model sha256", "registered version", "champion", "training run", "test images"],
        [_side_row(s) for s in sides],
    )
    for side in sides:
        for note in side.notes:
            doc.paragraph(f"{side.label}: {note}")

    doc.heading("Params that differ")
    changed = judge.changed_params([s.params for s in sides])
    if changed:
        doc.table(["param", *(s.label for s in sides)], [[k, *v] for k, v in changed.items()])
    else:
        doc.paragraph("None: every side ran with the same params.")

    doc.heading("Test metrics")
    for other in others:
        doc.paragraph(f"{other.label} against {base.label}. ", _yardstick(spreads, base, other))
        doc.table(
            ["metric", base.label, other.label, "Δ", "seed-to-seed range", "verdict"],
            [[j.metric, _n(j.base), _n(j.other), _n(j.delta, sign=True), _n(j.yardstick),
              j.verdict] for j in judged[id(other)]],
        )  # fmt: skip

    doc.heading("Test -ELBO per digit (nats per image)")
    digits = sorted(set().union(*(s.per_digit for s in sides)), key=int)
    doc.table(
        ["digit", *(s.label for s in sides), *(f"Δ {o.label}" for o in others)],
        [[d, *(_n(_neg_elbo(s, d)) for s in sides), *(_delta(base, o, d) for o in others)]
         for d in digits],
    )  # fmt: skip

    doc.heading("Training curves")
    doc.paragraph(
        "Per epoch, as DVCLive wrote them (a registered version: as its training run logged "
        f"them); the values drawn are in {CURVES_DATA}."
    )
    doc.pictures([("training curves, every side", CURVES, curves_png(sides))])

    doc.heading("Figures of the evaluate stage")
    for name in sorted(set().union(*(s.figures for s in sides))):
        shown = [
            (s.label, f"figures/{i}-{name}", s.figures[name])
            for i, s in enumerate(sides)
            if name in s.figures
        ]
        notes: list[Cell] = []
        for i, other in enumerate(others, start=1):
            if name not in base.figures or name not in other.figures:
                continue
            why_not = judge.comparable(name, base.params, other.params)
            found = (
                None if why_not else judge.pixel_difference(base.figures[name], other.figures[name])
            )
            if found is None:
                notes.append(f"{other.label}: no pixel difference ({why_not or 'other sizes'}). ")
                continue
            caption = f"difference, {other.label} vs {base.label}: {found.changed:.1%} of pixels"
            shown.append((caption, f"figures/{i}-diff-{name}", found.png))
        doc.paragraph(f"{name}. ", *notes)
        doc.pictures(shown)
    return doc


def headline(base: Side, other: Side, judged: Sequence[judge.Judged]) -> str:
    """The one line a reviewer reads first: the champion's score, against the baseline."""
    found = next(j for j in judged if j.metric == TEST_NEG_ELBO)
    if found.delta is None:
        return f"{TEST_NEG_ELBO}: {other.label} or {base.label} has none"
    yardstick = (
        "no measured spread"
        if found.yardstick is None
        else (f"seed-to-seed range {_n(found.yardstick)}")
    )
    return (
        f"{TEST_NEG_ELBO}: {other.label} {found.other:.2f} against {base.label} {found.base:.2f} "
        f"(Δ {found.delta:+.2f}; {yardstick}): {found.verdict}"
    )  # fmt: skip


def _side_row(side: Side) -> list[Cell]:
    digest = side.model_sha256[:12] if side.model_sha256 else judge.MISSING
    t = side.tracked
    if t is None:
        return [side.label, digest, "not registered in this store", judge.MISSING, judge.MISSING,
                side.test_images or judge.MISSING]  # fmt: skip
    aliases = f" (@{', @'.join(t.aliases)})" if t.aliases else ""
    if t.champion == t.version:
        standing = "champion"
    else:
        standing = f"not champion (v{t.champion} is)" if t.champion else "no champion"
    return [side.label, digest, (f"{t.model} v{t.version}{aliases}", t.version_url), standing,
            ("MLflow run", t.run_url), side.test_images or judge.MISSING]  # fmt: skip


def _ranges(spreads: dict[int, Spread | None], *sides: Side) -> list[dict[str, float]]:
    return [found.range for s in sides if (found := spreads[id(s)]) is not None]


def _yardstick(spreads: dict[int, Spread | None], base: Side, other: Side) -> str:
    """Where the yardstick comes from, in words."""
    said = []
    for side in (base, other):
        found = spreads[id(side)]
        if found is None:
            said.append(f"{side.label}'s configuration: not measured")
        else:
            said.append(f"{side.label}'s configuration: seeds {', '.join(found.seeds)} "
                        f"({found.path.name})")  # fmt: skip
    if all(spreads[id(s)] is None for s in (base, other)):
        return f"No seed-to-seed spread is measured for either configuration: {MEASURE}."
    return (
        "A difference counts when it exceeds the seed-to-seed range (largest minus smallest over "
        f"the seeds measured) of either configuration: {'; '.join(said)}."
    )


def _n(value: float | None, sign: bool = False) -> str:
    if value is None:
        return judge.MISSING
    return f"{value:+.4g}" if sign else f"{value:.6g}"


def _neg_elbo(side: Side, digit: str) -> float | None:
    return side.per_digit.get(digit, {}).get("neg_elbo")


def _delta(base: Side, other: Side, digit: str) -> str:
    a, b = _neg_elbo(base, digit), _neg_elbo(other, digit)
    return _n(None if a is None or b is None else b - a, sign=True)


def curves_png(sides: Sequence[Side]) -> bytes:
    """Every per-epoch quantity in its own panel, one line per side."""
    quantities = [q for q in EPOCH_NAMES.values() if any(q in s.curves for s in sides)]
    columns = 4
    rows = max(1, -(-len(quantities) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for ax, quantity in zip(axes.flat, quantities, strict=False):
        for side in sides:
            if points := side.curves.get(quantity):
                ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=side.label)
        ax.set(title=quantity, xlabel="epoch")
    for ax in list(axes.flat)[len(quantities) :]:
        ax.set_axis_off()
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=80, metadata=PNG_METADATA)
    plt.close(fig)
    return out.getvalue()


def write_report(doc: Document, sides: Sequence[Side], out: Path) -> Path:
    """The report's files into `out`, replacing what was there only once all are written."""
    with atomic_directory(out) as staging:
        write(doc, staging)
        data = {s.label: {q: [list(p) for p in v] for q, v in s.curves.items()} for s in sides}
        (staging / CURVES_DATA).write_text(json_text(data), encoding="utf-8")
    return out / "index.html"
