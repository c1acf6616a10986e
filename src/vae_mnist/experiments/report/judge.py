"""What a comparison says, computed from the sides alone (no I/O): which params differ, whether each
metric's difference is beyond the seed-to-seed spread, and where two figures line up pixel for
pixel, their difference."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vae_mnist.common.quantities import LOWER_IS_BETTER
from vae_mnist.evaluation import figures

MISSING = "—"
WITHIN = "within noise"
UNJUDGED = "not judged"
BINARIZE, SEED, LATENT = "data.binarize", "seed", "model.latent_dim"


@dataclass(frozen=True)
class Judged:
    """One metric of one side against the baseline."""

    metric: str
    base: float | None
    other: float | None
    yardstick: float | None  # the largest measured seed-to-seed range of the two configurations
    verdict: str

    @property
    def delta(self) -> float | None:
        return None if self.base is None or self.other is None else self.other - self.base


def changed_params(params: Sequence[Mapping[str, str]]) -> dict[str, list[str]]:
    """The params whose values are not the same on every side, each with every side's value."""
    keys = sorted(set().union(*params))
    return {
        k: [p.get(k, MISSING) for p in params]
        for k in keys
        if len({p.get(k, MISSING) for p in params}) > 1
    }


def verdict(quantity: str, delta: float, yardstick: float | None) -> str:
    """Better or worse beyond noise (higher or lower, for a quantity that ranks nothing), or
    within noise; not judged without a measured spread."""
    if yardstick is None:
        return UNJUDGED
    if abs(delta) <= yardstick:
        return WITHIN
    if quantity in LOWER_IS_BETTER:
        return ("better" if delta < 0 else "worse") + " beyond noise"
    return ("higher" if delta > 0 else "lower") + " beyond noise"


def judge(
    base: Mapping[str, float], other: Mapping[str, float], ranges: Sequence[Mapping[str, float]]
) -> list[Judged]:
    """Every metric of either side; `ranges`: the measured spreads of the two configurations
    (those measured), whose largest for a metric is its yardstick."""
    judged = []
    for name in sorted(set(base) | set(other)):
        measured = [r[name] for r in ranges if name in r]
        yardstick = max(measured) if measured else None
        a, b = base.get(name), other.get(name)
        said = MISSING if a is None or b is None else verdict(name.split("/")[-1], b - a, yardstick)
        judged.append(Judged(name, a, b, yardstick, said))
    return judged


def comparable(figure: str, a: Mapping[str, str], b: Mapping[str, str]) -> str | None:
    """None when the figure, drawn by two models with params `a` and `b`, lines up pixel for
    pixel; otherwise why not."""
    drawn_from = figures.DRAWN_FROM.get(figure)
    same = {k: a.get(k) == b.get(k) for k in (BINARIZE, SEED, LATENT)}
    if drawn_from == figures.TEST_IMAGES:
        if same[BINARIZE] and (a.get(BINARIZE) == "none" or same[SEED]):
            return None
        return "other test images (data.binarize or the seed that binarized them differ)"
    if drawn_from == figures.PLANE:
        if a.get(LATENT) == b.get(LATENT) == "2":
            return None
        return "other planes (a latent wider than 2 is shown in each model's own principal plane)"
    if drawn_from == figures.PRIOR_DRAWS:
        if same[LATENT] and same[SEED]:
            return None
        return "other draws from the prior (model.latent_dim or seed differ)"
    return "a chart: its axes are each side's own"


@dataclass(frozen=True)
class PixelDifference:
    png: bytes  # white where the two agree, darker the more they differ
    changed: float  # the fraction of pixels that differ


def pixel_difference(a: bytes, b: bytes) -> PixelDifference | None:
    """The two pictures' difference in grey levels; None when their sizes differ."""
    first, second = (np.asarray(Image.open(io.BytesIO(p)).convert("L"), np.int16) for p in (a, b))
    if first.shape != second.shape:
        return None
    difference = np.abs(first - second)
    out = io.BytesIO()
    Image.fromarray((255 - difference).astype(np.uint8)).save(out, format="PNG")
    return PixelDifference(out.getvalue(), float(np.mean(difference > 0)))
