"""The comparison report: what it judges (unit tests on constructed sides), and `make report`'s
command on two tiny versions that the real pipeline trained: the params that changed, the verdicts
against a constructed spread, the sides' own figures and DVCLive values, a registered version
against an experiment, the page in Chromium, the Markdown through a CommonMark parser, and one
line with exit 2 for each side it cannot read."""

from __future__ import annotations

import io

import numpy as np
import pytest
from markdown_it import MarkdownIt
from PIL import Image

from tests.support.paths import REPO
from tests.support.report import (
    _inline,
    tree,
)
from vae_mnist.common.errors import ReportError
from vae_mnist.evaluation import figures
from vae_mnist.experiments.report import judge
from vae_mnist.experiments.report.render import Document, markdown, page
from vae_mnist.experiments.report.sides import Files, Outs, outs, params_of


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


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
