"""The comparison report: what it judges (unit tests on constructed sides), and `make report`'s
command on two tiny versions that the real pipeline trained: the params that changed, the verdicts
against a constructed spread, the sides' own figures and DVCLive values, a registered version
against an experiment, the page in Chromium, the Markdown through a CommonMark parser, and one
line with exit 2 for each side it cannot read."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt
from PIL import Image

from vae_mnist.common.errors import ReportError
from vae_mnist.common.history import metric_file, parse
from vae_mnist.common.quantities import EPOCH_NAMES, TEST_NEG_ELBO
from vae_mnist.evaluation import figures
from vae_mnist.experiments.noise import keep_spread
from vae_mnist.experiments.report import judge
from vae_mnist.experiments.report.render import Document, markdown, page
from vae_mnist.experiments.report.sides import Files, Outs, outs, params_of

from .browser import ARTIFACTS, chromium_page
from .conftest import REPO
from .workspace import BIN, Repo

EXPERIMENT = "faster"  # the other tiny version: HEAD's params but the learning rate
CHANGED = {"train.learning_rate": ["0.001", "0.003"]}


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def grey(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# --- what it judges -------------------------------------------------------------------------


def test_only_the_params_that_differ_are_listed_with_every_side_s_value() -> None:
    a = {"seed": "42", "train.epochs": "12", "model.latent_dim": "2"}
    b = {"seed": "42", "train.epochs": "3", "model.latent_dim": "2", "new.key": "1"}
    assert judge.changed_params([a, b]) == {
        "new.key": [judge.MISSING, "1"],
        "train.epochs": ["12", "3"],
    }
    assert judge.changed_params([a, dict(a)]) == {}


@pytest.mark.parametrize(
    ("delta", "spread", "said"),
    [
        (-0.5, 1.0, judge.WITHIN),
        (1.0, 1.0, judge.WITHIN),  # as large as the spread: the seeds differ as much
        (-1.5, 1.0, "better beyond noise"),
        (1.5, 1.0, "worse beyond noise"),
        (1.5, None, judge.UNJUDGED),  # no measured spread: no verdict
    ],
)
def test_a_difference_counts_only_beyond_the_seed_to_seed_spread(delta, spread, said) -> None:
    assert judge.verdict("neg_elbo", delta, spread) == said


def test_quantities_that_rank_nothing_are_said_higher_or_lower() -> None:
    assert judge.verdict("kl", 2.0, 1.0) == "higher beyond noise"
    assert judge.verdict("kl", -2.0, 1.0) == "lower beyond noise"


def test_the_yardstick_is_the_larger_measured_spread_of_the_two_configurations() -> None:
    base, other = {"test/neg_elbo": 140.0}, {"test/neg_elbo": 138.5}
    (wide,) = judge.judge(base, other, [{"test/neg_elbo": 1.0}, {"test/neg_elbo": 2.0}])
    assert (wide.yardstick, wide.verdict) == (2.0, judge.WITHIN)
    (narrow,) = judge.judge(base, other, [{"test/neg_elbo": 1.0}])
    assert (narrow.delta, narrow.verdict) == (-1.5, "better beyond noise")
    (unmeasured,) = judge.judge(base, other, [])
    assert unmeasured.verdict == judge.UNJUDGED


def test_figures_line_up_only_when_drawn_from_the_same_inputs() -> None:
    a = {"seed": "42", "data.binarize": "none", "model.latent_dim": "2"}
    reseeded = {**a, "seed": "43"}
    assert judge.comparable(figures.RECONSTRUCTIONS, a, reseeded) is None  # grey test images
    dynamic = {**a, "data.binarize": "dynamic"}
    assert judge.comparable(figures.RECONSTRUCTIONS, dynamic, {**dynamic, "seed": "43"})
    assert judge.comparable(figures.LATENT_SPACE, a, reseeded) is None
    assert judge.comparable(figures.MANIFOLD, a, {**a, "model.latent_dim": "20"})
    assert judge.comparable(figures.PRIOR, a, a) is None
    assert judge.comparable(figures.PRIOR, a, reseeded)  # other draws
    assert judge.comparable(figures.CURVES, a, a)  # a chart never
    assert set(figures.DRAWN_FROM) >= {figures.RECONSTRUCTIONS, figures.PER_DIGIT}


def test_the_pixel_difference_is_white_where_the_pictures_agree() -> None:
    a = np.full((10, 20, 3), 200)
    b = a.copy()
    b[2, 3] = 0
    found = judge.pixel_difference(png(a), png(b))
    assert found is not None and found.changed == pytest.approx(1 / 200)
    shown = np.asarray(Image.open(io.BytesIO(found.png)))
    assert shown[2, 3] < 255 and (np.delete(shown.ravel(), 2 * 20 + 3) == 255).all()
    assert judge.pixel_difference(png(a), png(a)).changed == 0.0
    assert judge.pixel_difference(png(a), png(np.zeros((10, 21, 3)))) is None


def test_the_markdown_and_the_page_hold_the_same_pictures_and_links() -> None:
    doc = Document("a | b")
    doc.table(["side", "run"], [["v1 | x", ("run", "http://127.0.0.1:5000/#/r/1")]])
    doc.pictures([("one", "figures/0-a.png", png(np.zeros((2, 2, 3))))])
    text = markdown(doc)
    tokens = MarkdownIt("gfm-like").parse(text)
    images = [t.attrGet("src") for t in _inline(tokens) if t.type == "image"]
    links = [t.attrGet("href") for t in _inline(tokens) if t.type == "link_open"]
    assert images == ["figures/0-a.png"] and links == ["http://127.0.0.1:5000/#/r/1"]
    assert any(t.type == "table_open" for t in tokens)  # the escaped | stays in its cell
    html = page(doc)
    assert html.count("data:image/png;base64,") == 1 and 'src="http' not in html


def test_params_that_today_s_rules_reject_are_shown_as_written_with_a_note() -> None:
    text = (REPO / "params.yaml").read_text().replace("floats: native", "precision: high")
    files = Files(lambda path: text.encode() if path == "params.yaml" else None, lambda _: [])
    notes: list[str] = []
    params = params_of(files, "HEAD~40", notes)
    assert params["precision"] == "high" and "floats" not in params
    assert params["model.mlp.hidden_units"] == "[512, 256, 128]"  # as MLflow logs a list
    (note,) = notes
    assert "params.yaml" in note and "shown as written" in note
    with pytest.raises(ReportError, match=r"HEAD~40: params\.yaml"):
        params_of(Files(lambda _: b"- not a mapping", lambda _: []), "HEAD~40")


def tree(dvc_yaml: str) -> Files:
    return Files(lambda path: dvc_yaml.encode() if path == "dvc.yaml" else None, lambda _: [])


def test_the_outs_the_report_reads_are_found_by_role_whatever_the_stages() -> None:
    text = (REPO / "dvc.yaml").read_text()
    roles = Outs("models/vae.keras", "reports/training", "reports/evaluation")
    assert outs(tree(text), "HEAD") == roles
    # a stage between train and evaluate, with outs of its own, and one more evaluate out
    inserted = text.replace(
        "  evaluate:\n",
        "  calibrate:\n    cmd: python calibrate.py\n    outs:\n      - models/calibration\n"
        "      - reports/calibration\n\n  evaluate:\n",
    ).replace("      - reports/evaluation\n", "      - reports/evaluation\n      - reports/extra\n")
    assert "calibrate" in inserted and "reports/extra" in inserted
    assert outs(tree(inserted), "HEAD") == roles
    no_metrics = text.replace("metrics:\n  - reports/evaluation/metrics.json\n", "")
    with pytest.raises(ReportError, match=r"^HEAD~3: its dvc\.yaml is not this pipeline's \("):
        outs(tree(no_metrics), "HEAD~3")


def _inline(tokens):
    for token in tokens:
        yield token
        yield from token.children or []


# --- `make report` on two tiny versions ------------------------------------------------------


@pytest.fixture(scope="module")
def compared(built_pipeline: Repo, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The built pipeline (HEAD, registered as v1) and the experiment `faster` (v2), applied in
    the workspace as `dvc exp run` leaves it."""
    repo = built_pipeline.copy(tmp_path_factory.mktemp("report") / "repo")
    repo.dvc("exp", "run", "-n", EXPERIMENT, "-S", "train.learning_rate=0.003")
    repo.printed = report(repo).stdout  # `make report`: the workspace against HEAD
    return repo


def report(repo: Repo, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return repo.run(str(BIN / "python"), "-m", "vae_mnist", "report", *args, check=check)


def out(repo: Repo, folder: str = "compare") -> Path:
    return repo.root / "reports" / folder


def table(text: str, heading: str) -> list[list[str]]:
    """The first table after a `## heading` of report.md, as rows of cells (the head left out)."""
    section = text.split(f"## {heading}\n", 1)[1]
    lines = [line for line in section.split("\n\n## ")[0].splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def spread(repo: Repo, neg_elbo: float) -> Path:
    """A constructed seed-to-seed range of HEAD's configuration (two made-up seeds)."""
    params = params_of(Files.workspace(repo.root), "HEAD")
    runs = {"1": {TEST_NEG_ELBO: 100.0}, "2": {TEST_NEG_ELBO: 100.0 + neg_elbo}}
    return keep_spread(repo.root, params, runs, "test").path


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
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


def _exp_commit(repo: Repo) -> str:
    refs = repo.run("git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps")
    (commit,) = [line.split()[0] for line in refs.stdout.splitlines() if line.endswith(EXPERIMENT)]
    return commit[:7]


@pytest.mark.e2e
def test_the_markdown_parses_and_every_image_link_resolves(compared: Repo) -> None:
    text = (out(compared) / "report.md").read_text()
    tokens = MarkdownIt("gfm-like").parse(text)
    images = [t.attrGet("src") for t in _inline(tokens) if t.type == "image"]
    html = (out(compared) / "index.html").read_text()
    assert len(images) == html.count("data:image/png;base64,") > 10
    for src in images:
        assert not Path(src).is_absolute() and (out(compared) / src).is_file(), src
    assert sum(t.type == "table_open" for t in tokens) >= 5


@pytest.mark.e2e
@pytest.mark.browser
def test_the_page_shows_every_image_offline_in_chromium(compared: Repo) -> None:
    index = out(compared) / "index.html"
    with chromium_page(1400) as view:
        view.goto(index.as_uri())
        view.wait_for_load_state("load")
        images = view.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        view.screenshot(path=str(ARTIFACTS / "report.png"))
    assert len(images) > 10 and all(done and width > 0 for done, width in images)
    assert view.requested == [index.as_uri()]  # nothing but the file itself


@pytest.mark.e2e
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
