"""`make report` on versions the real (shrunk) pipeline trained: the params that changed, the
verdicts against seed noise, the figures side by side, revisions and experiments as sides.
What it judges, on constructed sides: tests/unit/experiments/test_report.py."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt
from PIL import Image

from tests.support.report import (
    EXPERIMENT,
    _inline,
    out,
    report,
    spread,
)
from tests.support.workspace import Repo
from vae_mnist.common.history import metric_file, parse
from vae_mnist.common.quantities import EPOCH_NAMES, TEST_NEG_ELBO
from vae_mnist.evaluation import figures
from vae_mnist.experiments.report import judge

CHANGED = {"train.learning_rate": ["0.001", "0.003"]}


def grey(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def table(text: str, heading: str) -> list[list[str]]:
    """The first table after a `## heading` of report.md, as rows of cells (the head left out)."""
    section = text.split(f"## {heading}\n", 1)[1]
    lines = [line for line in section.split("\n\n## ")[0].splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def _exp_commit(repo: Repo) -> str:
    refs = repo.run("git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps")
    (commit,) = [line.split()[0] for line in refs.stdout.splitlines() if line.endswith(EXPERIMENT)]
    return commit[:7]


def test_the_report_names_the_changed_params_and_judges_against_the_measured_spread(
    compared: Repo, built_pipeline: Repo
) -> None:
    assert compared.printed.strip().endswith(str(out(compared) / "index.html"))
    text = (out(compared) / "report.md").read_text()
    assert {row[0]: row[1:] for row in table(text, "Params that differ")} == CHANGED
    rows = {row[0]: row for row in table(text, "Test metrics")}
    base, other = (float(v) for v in rows[TEST_NEG_ELBO][1:3])
    delta = other - base
    assert rows[TEST_NEG_ELBO][-1] == judge.UNJUDGED  # no spread measured for the shrunk params

    judged = out(compared, "judged")
    kept = spread(compared, abs(delta) * 2)
    report(compared, "--out", str(judged))
    rows = {row[0]: row for row in table((judged / "report.md").read_text(), "Test metrics")}
    assert rows[TEST_NEG_ELBO][-1] == judge.WITHIN
    spread(compared, abs(delta) / 2)
    printed = report(compared, "--out", str(judged)).stdout
    rows = {row[0]: row for row in table((judged / "report.md").read_text(), "Test metrics")}
    beyond = ("better" if delta < 0 else "worse") + " beyond noise"
    assert rows[TEST_NEG_ELBO][-1] == beyond and printed.splitlines()[0].endswith(beyond)
    kept.unlink()


def test_the_figures_are_the_sides_own_and_the_curves_dvclive_s_values(
    compared: Repo, built_pipeline: Repo
) -> None:
    html = (out(compared) / "index.html").read_text()
    shown = {
        name: base64.b64decode(data)
        for name, data in re.findall(
            r'data-file="([^"]+)" src="data:image/png;base64,([^"]+)"', html
        )
    }
    trees = {"0": built_pipeline.root, "1": compared.root}  # HEAD's outs: the built workspace's
    evaluated = "reports/evaluation/figures"
    for name in sorted(p.name for p in (compared.root / evaluated).glob("*.png")):
        for side, tree in trees.items():
            made = (tree / evaluated / name).read_bytes()
            assert np.array_equal(grey(shown[f"figures/{side}-{name}"]), grey(made)), name
            assert (out(compared) / "figures" / f"{side}-{name}").read_bytes() == made
    differences = [n for n in shown if "-diff-" in n]
    assert f"figures/1-diff-{figures.RECONSTRUCTIONS}" in differences
    assert not [n for n in differences if figures.CURVES in n]

    curves = json.loads((out(compared) / "curves.json").read_text())
    labels = sorted(curves)  # `HEAD (<commit>)`, `workspace`
    for label, tree in zip(labels, (built_pipeline.root, compared.root), strict=True):
        for quantity in EPOCH_NAMES.values():
            written = metric_file(tree / "reports/training", quantity).read_text()
            assert [tuple(p) for p in curves[label][quantity]] == parse(written, quantity)


def test_a_registered_version_compares_with_an_experiment_without_a_checkout(
    compared: Repo, built_pipeline: Repo
) -> None:
    head = compared.run("git", "rev-parse", "HEAD").stdout
    versus = out(compared, "versus")
    printed = report(compared, "--base", "v1", EXPERIMENT, "--out", str(versus)).stdout
    assert compared.run("git", "rev-parse", "HEAD").stdout == head
    text = (versus / "report.md").read_text()
    sides = {row[0]: row for row in table(text, "Sides")}
    assert set(sides) == {"vae-mnist v1", f"experiment {EXPERIMENT} ({_exp_commit(compared)})"}
    version, standing = sides["vae-mnist v1"][2:4]
    assert version.startswith("[vae-mnist v1") and "/#/models/vae-mnist/versions/1)" in version
    assert standing == ("champion" if "@champion" in version else "not champion (v2 is)")
    assert {row[0]: row[1:] for row in table(text, "Params that differ")} == CHANGED
    assert printed.startswith(f"{TEST_NEG_ELBO}: experiment {EXPERIMENT}")
    # the version's own evaluation: its per-digit means and which test images it was tested on
    digits = table(text, "Test -ELBO per digit (nats per image)")
    assert [row[0] for row in digits] == [str(d) for d in range(10)]
    assert all(float(row[1]) > 0 for row in digits)
    assert sides["vae-mnist v1"][-1] == "grey levels in [0, 1]"
    curves = json.loads((versus / "curves.json").read_text())
    for quantity in EPOCH_NAMES.values():  # the version's curves: its training run's own
        written = metric_file(built_pipeline.root / "reports/training", quantity).read_text()
        steps, values = zip(*parse(written, quantity), strict=True)
        logged = curves["vae-mnist v1"][quantity]
        assert [s for s, _ in logged] == list(steps)
        assert [v for _, v in logged] == pytest.approx(values)


def test_the_markdown_parses_and_every_image_link_resolves(compared: Repo) -> None:
    text = (out(compared) / "report.md").read_text()
    tokens = MarkdownIt("gfm-like").parse(text)
    images = [t.attrGet("src") for t in _inline(tokens) if t.type == "image"]
    html = (out(compared) / "index.html").read_text()
    assert len(images) == html.count("data:image/png;base64,") > 10
    for src in images:
        assert not Path(src).is_absolute() and (out(compared) / src).is_file(), src
    assert sum(t.type == "table_open" for t in tokens) >= 5


def test_a_side_it_cannot_read_is_one_line_and_exit_2(compared: Repo) -> None:
    before = sorted(p.name for p in out(compared).iterdir()) if out(compared).exists() else []
    for args, says in [
        (["--base", "no-such-revision"], "'no-such-revision' is no git revision or DVC experiment"),
        (["no-such-experiment"], "'no-such-experiment' is no git revision or DVC experiment"),
        (["--base", "v99"], "vae-mnist has no version 99"),
        (["--base", "@best"], "no version of vae-mnist holds the alias 'best'"),
        # the commit before the shrunk pipeline ran: its dvc.lock's outs were never cached here
        (["--base", "HEAD~1"], "reports/evaluation (in its dvc.lock) is neither in the DVC cache"),
    ]:
        failed = report(compared, *args, check=False)
        assert failed.returncode == 2, failed.stderr
        assert failed.stderr.strip().splitlines() == [failed.stderr.strip()], failed.stderr
        assert says in failed.stderr
    evaluation = compared.root / "reports" / "evaluation"
    shutil.rmtree(evaluation)
    try:
        failed = report(compared, check=False)
        assert failed.returncode == 2
        assert failed.stderr.strip() == (
            "error: workspace has no evaluation: no reports/evaluation/metrics.json (run `dvc "
            "repro` there, or compare another side)"
        )
    finally:
        compared.dvc("checkout", "reports/evaluation")
    after = sorted(p.name for p in out(compared).iterdir()) if out(compared).exists() else []
    assert after == before  # a failed report leaves the last one as it was
