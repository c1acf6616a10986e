"""Tests of data/splits.py: the preprocess stage's pure core, on arrays alone.

Scaling, the stratified split and its rounding, binarization, and the numbers of stats.json."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.configs import override
from tests.support.data import synthetic_split
from vae_mnist.common.config import Config
from vae_mnist.common.errors import ConfigError
from vae_mnist.data.arrays import array_digest
from vae_mnist.data.splits import (
    SPLIT_METHOD,
    binarize,
    build_splits,
    scale,
    split_stats,
    stats,
    stratified_split,
)


@pytest.fixture
def raw() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return synthetic_split(200, 1), synthetic_split(50, 2)


def test_stratified_split_keeps_class_balance() -> None:
    labels = np.repeat(
        np.arange(10, dtype=np.uint8), [100, 200, 50, 50, 100, 100, 100, 100, 100, 100]
    )
    train, val = stratified_split(labels, 100, np.random.default_rng(0))
    assert len(val) == 100 and len(train) == len(labels) - 100
    assert np.intersect1d(train, val).size == 0
    assert np.bincount(labels[val]).tolist() == [10, 20, 5, 5, 10, 10, 10, 10, 10, 10]
    assert np.all(np.diff(val) > 0) and np.all(np.diff(train) > 0)


def test_stratified_split_sizes_add_up_exactly() -> None:
    labels = np.arange(997, dtype=np.int64) % 10
    for val_size in (1, 7, 13, 500):
        _, val = stratified_split(labels, val_size, np.random.default_rng(1))
        assert len(val) == val_size


def test_the_rounding_remainders_go_to_the_digits_with_the_largest_ones() -> None:
    # 10 of 100 images: digit quotas 3.1, 1.9, 1.8, 1.7, 1.5 (sum 10); the floors give 7, and the
    # three largest remainders (digits 1, 2, 3: .9, .8, .7) get one more each, not the largest
    # quotas; with equal remainders (.5 each, 2 of 4 given out) the lower digits.
    labels = np.repeat(np.arange(5, dtype=np.uint8), [31, 19, 18, 17, 15])
    _, val = stratified_split(labels, 10, np.random.default_rng(0))
    assert np.bincount(labels[val], minlength=5).tolist() == [3, 2, 2, 2, 1]
    tied = np.repeat(np.arange(4, dtype=np.uint8), 5)
    _, val = stratified_split(tied, 6, np.random.default_rng(0))
    assert np.bincount(tied[val], minlength=4).tolist() == [2, 2, 1, 1]


def test_a_tie_between_rounding_remainders_goes_to_the_lower_digit() -> None:
    """The digit counts the split puts into stats.json: of digits whose rounding remainders
    tie, the lower one gets the image."""
    # 62 of 218 images: the floors of the quotas give 58, and the four remainders left go to
    # digit 9 (.95), digits 3 and 4 (.56 each), and one of the tied digits 1 and 2 (.41 each):
    # the lower one, as a stable sort orders them (numpy's default sort may not).
    counts = [36, 12, 12, 9, 9, 32, 15, 33, 25, 35]
    labels = np.repeat(np.arange(10, dtype=np.uint8), counts)
    _, val = stratified_split(labels, 62, np.random.default_rng(0))
    assert np.bincount(labels[val], minlength=10).tolist() == [10, 4, 3, 3, 3, 9, 4, 9, 7, 10]


def test_scale_maps_0_255_onto_0_1_in_float32() -> None:
    scaled = scale(np.array([[0, 51, 255]], dtype=np.uint8))
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, np.array([[0.0, 0.2, 1.0]], dtype=np.float32))


def test_binarize_draws_each_pixel_with_its_intensity_as_probability() -> None:
    grey = np.full((200, 28, 28), 0.3, np.float32)
    grey[:, 0, 0], grey[:, 0, 1] = 0.0, 1.0
    drawn = binarize(grey, np.random.default_rng(0))
    assert drawn.dtype == np.float32 and set(np.unique(drawn)) == {0.0, 1.0}
    assert abs(drawn[:, 1:].mean() - 0.3) < 0.005
    assert drawn[:, 0, 0].max() == 0.0 and drawn[:, 0, 1].min() == 1.0  # certain pixels stay
    again = binarize(grey, np.random.default_rng(0))
    np.testing.assert_array_equal(drawn, again)


def test_a_pixel_is_on_only_when_its_draw_is_below_its_intensity() -> None:
    # intensities equal to the very float32 draws the generator will make: P(U < p) = p exactly,
    # so none of them is on; and the draws are float32 ones (a float64 stream differs).
    shape = (50, 28, 28)
    draws = np.random.default_rng(3).random(shape, dtype=np.float32)
    assert binarize(draws, np.random.default_rng(3)).max() == 0.0
    assert binarize(np.nextafter(draws, np.float32(2)), np.random.default_rng(3)).min() == 1.0


def test_split_stats_list_every_digit_and_round_the_mean_to_six_places() -> None:
    images = np.full((2, 1, 3), 2 / 3, np.float32)
    recorded = split_stats(images, np.array([1, 1], np.uint8))
    assert recorded["digit_counts"] == {str(d): 2 if d == 1 else 0 for d in range(10)}
    assert recorded["pixel_mean"] == 0.666667


def test_the_pixel_mean_is_the_exact_mean_rounded_to_six_places() -> None:
    """stats.json's pixel mean: the exact value rounded to six places, not float32's."""
    # (249 + 177 + 198 + 2) / (4 * 255) = 0.6137254..., which float32 arithmetic gets as 0.6137255
    images = scale(np.array([[[249, 177], [198, 2]]], np.uint8))
    recorded = split_stats(images, np.array([3], np.uint8))
    assert recorded["pixel_mean"] == round(626 / 1020, 6) == 0.613725


def test_split_stats_count_digest_digits_and_mean() -> None:
    images = np.array([[[0.0, 1.0]], [[1.0, 1.0]], [[0.5, 0.5]]], np.float32)
    labels = np.array([3, 3, 9], np.uint8)
    assert split_stats(images, labels) == {
        "count": 3,
        "digest": array_digest(images, labels),
        "digit_counts": {"0": 0, "1": 0, "2": 0, "3": 2, "4": 0, "5": 0, "6": 0, "7": 0, "8": 0,
                         "9": 1},
        "pixel_mean": pytest.approx(4 / 6, abs=1e-6),
    }  # fmt: skip


def test_build_splits_holds_val_size_out_of_train_and_keeps_test_whole(config: Config, raw) -> None:
    (train_images, train_labels), (test_images, test_labels) = raw
    splits = build_splits(override(config, {"data.val_size": 20}), *raw)
    assert {k: len(v[0]) for k, v in splits.items()} == {"train": 180, "val": 20, "test": 50}
    np.testing.assert_array_equal(splits["test"][0], scale(test_images))
    np.testing.assert_array_equal(splits["test"][1], test_labels)
    # every training image lands in exactly one of train and val, with its own label
    seen = np.concatenate([splits["train"][0], splits["val"][0]])
    assert sorted(map(bytes, seen)) == sorted(map(bytes, scale(train_images)))
    for images, labels in (splits["train"], splits["val"]):
        originals = {bytes(x): y for x, y in zip(scale(train_images), train_labels, strict=True)}
        assert all(originals[bytes(x)] == y for x, y in zip(images, labels, strict=True))


def test_build_splits_is_seeded(config: Config, raw) -> None:
    small = override(config, {"data.val_size": 20})
    first, again = build_splits(small, *raw), build_splits(small, *raw)
    other = build_splits(override(small, {"seed": 7}), *raw)
    np.testing.assert_array_equal(first["val"][1], again["val"][1])
    np.testing.assert_array_equal(first["val"][0], again["val"][0])
    assert not np.array_equal(first["val"][0], other["val"][0])


def test_static_binarization_binarizes_every_split_and_keeps_the_same_split(
    config: Config, raw
) -> None:
    small = override(config, {"data.val_size": 20})
    grey = build_splits(small, *raw)
    static = build_splits(override(small, {"data.binarize": "static"}), *raw)
    dynamic = build_splits(override(small, {"data.binarize": "dynamic"}), *raw)
    for name in grey:
        assert set(np.unique(static[name][0])) == {0.0, 1.0}
        np.testing.assert_array_equal(static[name][1], grey[name][1])  # the same images chosen
        assert abs(static[name][0].mean() - grey[name][0].mean()) < 0.02
        np.testing.assert_array_equal(dynamic[name][0], grey[name][0])  # drawn later, per batch


def test_a_val_size_that_leaves_no_training_images_is_one_clear_error(config: Config, raw) -> None:
    with pytest.raises(ConfigError, match=r"data\.val_size = 200 leaves no training images"):
        build_splits(override(config, {"data.val_size": 200}), *raw)
    assert len(build_splits(override(config, {"data.val_size": 199}), *raw)["train"][0]) == 1


def test_stats_say_how_the_splits_were_made(config: Config, raw) -> None:
    small = override(config, {"data.val_size": 20, "seed": 5, "data.binarize": "static"})
    splits = build_splits(small, *raw)
    recorded = stats(small, splits)
    assert recorded["binarize"] == "static"
    assert recorded["split"] == {"method": SPLIT_METHOD, "seed": 5, "val_size": 20}
    assert recorded["splits"] == {name: split_stats(*split) for name, split in splits.items()}
