"""Tests of evaluation/memory.py: what evaluate.iwae_samples costs, read from the built decoder's
layers (whatever the model kind), and the one line a k that does not fit gets, from the real
evaluate script, before any work."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.memory import decoder
from tests.support.paths import REPO
from vae_mnist.common.config import Config, load_config
from vae_mnist.common.errors import ConfigError
from vae_mnist.evaluation.memory import (
    EVAL_MEMORY_LIMIT,
    EVAL_ROWS,
    activation_widths,
    check_fits,
    eval_rows,
    peak_bytes,
    row_bytes,
)
from vae_mnist.model.vae import build_vae


def test_evaluation_rows_stay_near_eval_rows_until_one_image_needs_more() -> None:
    for k in (1, 2, 3, 100, 1000, 16_383, EVAL_ROWS):
        assert EVAL_ROWS - k < eval_rows(k) <= EVAL_ROWS
        assert eval_rows(k) % k == 0  # whole images
    for k in (EVAL_ROWS + 1, 100_000):
        assert eval_rows(k) == k  # one image per chunk


def test_the_widths_are_the_built_decoders_own(config: Config) -> None:
    vae = decoder(config, hidden_units=[40, 30], latent_dim=5)
    assert activation_widths(vae.decoder) == [
        5,
        30,
        40,
        784,
        784,
    ]  # input, dense x2, logits, 28x28x1


def test_a_row_costs_its_widest_pair_of_activations(config: Config) -> None:
    # Measured (CPU, maxrss against rows): 6.3 kB a row for the default model, that is logits
    # and the tiled images (2 x 784 float32); 16.4 kB for hidden_units [2048, 2048].
    default = build_vae(config.model, True, 0).decoder
    assert row_bytes(default) == 4 * (2 * 784 + 2 * 2)
    assert row_bytes(decoder(config, hidden_units=[2048, 2048]).decoder) == 4 * (2048 + 2048 + 4)
    assert peak_bytes(100_000, default) < EVAL_MEMORY_LIMIT  # the default model's cap fits


def test_a_k_that_would_not_fit_names_bytes_limit_and_the_largest_that_fits(
    config: Config,
) -> None:
    wide = decoder(config, hidden_units=[8192, 8192]).decoder
    need = 70_000 * 4 * (8192 + 8192 + 2 * 2)
    with pytest.raises(ConfigError) as error:
        check_fits(70_000, wide)
    assert str(error.value) == (
        f"params.yaml: evaluate.iwae_samples = 70000 is not allowed: evaluation would hold about "
        f"{need} bytes (4.3 GiB) at once with this model (a decoder row holds 16388 floats at its "
        f"widest), over the limit of {EVAL_MEMORY_LIMIT} bytes (4 GiB); must be at most 65520 "
        f"for this model"
    )
    check_fits(65_520, wide)  # the largest the message offers is accepted
    with pytest.raises(ConfigError, match="iwae_samples = 65521"):
        check_fits(65_521, wide)


@given(k=st.integers(1, 100_000), hidden=st.lists(st.integers(1, 4096), min_size=1, max_size=3))
@settings(max_examples=25, derandomize=True, database=None, deadline=None)
def test_a_k_is_refused_exactly_when_its_estimate_is_over_the_limit(
    k: int, hidden: list[int]
) -> None:
    built = decoder(load_config(REPO / "params.yaml"), hidden_units=hidden).decoder
    fits = peak_bytes(k, built) <= EVAL_MEMORY_LIMIT
    try:
        check_fits(k, built)
    except ConfigError as error:
        assert not fits and f"iwae_samples = {k} " in str(error)
    else:
        assert fits
