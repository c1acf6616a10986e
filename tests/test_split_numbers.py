"""The numbers the split puts into stats.json: which digits get the rounding remainders when
they tie, and the pixel mean, to six places of the exact value."""

from __future__ import annotations

import numpy as np

from vae_mnist.data.splits import scale, split_stats, stratified_split


def test_a_tie_between_rounding_remainders_goes_to_the_lower_digit() -> None:
    # 62 of 218 images: the floors of the quotas give 58, and the four remainders left go to
    # digit 9 (.95), digits 3 and 4 (.56 each), and one of the tied digits 1 and 2 (.41 each):
    # the lower one, as a stable sort orders them (numpy's default sort may not).
    counts = [36, 12, 12, 9, 9, 32, 15, 33, 25, 35]
    labels = np.repeat(np.arange(10, dtype=np.uint8), counts)
    _, val = stratified_split(labels, 62, np.random.default_rng(0))
    assert np.bincount(labels[val], minlength=10).tolist() == [10, 4, 3, 3, 3, 9, 4, 9, 7, 10]


def test_the_pixel_mean_is_the_exact_mean_rounded_to_six_places() -> None:
    # (249 + 177 + 198 + 2) / (4 * 255) = 0.6137254..., which float32 arithmetic gets as 0.6137255
    images = scale(np.array([[[249, 177], [198, 2]]], np.uint8))
    stats = split_stats(images, np.array([3], np.uint8))
    assert stats["pixel_mean"] == round(626 / 1020, 6) == 0.613725
