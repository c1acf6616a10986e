"""Tests of evaluation/memory.py: what evaluate.iwae_samples costs, read from the built decoder's
layers (whatever the model kind), and the one line a k that does not fit gets, from the real
evaluate script, before any work."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from vae_mnist.model.files import save_vae
from vae_mnist.model.vae import build_vae

from .conftest import REPO, override


def decoder(config: Config, hidden_units: list[int], latent_dim: int | None = None):
    changes = {"model.mlp.hidden_units": hidden_units}
    if latent_dim is not None:
        changes["model.latent_dim"] = latent_dim
    return build_vae(override(config, changes).model, True, 0)


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


@pytest.mark.processes
def test_the_evaluate_script_refuses_such_a_k_before_any_work(
    config: Config, tmp_path: Path
) -> None:
    """The real evaluate script, as DVC runs it: exit 2, one line, no outs and no MLflow store.
    Its decoder (512 latent dimensions, then 2,048 and 8,192 units) holds 11,264 floats a row:
    100,000 samples of it (the most params.yaml allows) would take 4.2 GiB."""
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    (tmp_path / "params.yaml").write_text(
        text.replace("[512, 256, 128]", "[8192, 2048]")
        .replace("latent_dim: 2", "latent_dim: 512")
        .replace("iwae_samples: 100", "iwae_samples: 100000"),
        encoding="utf-8",
    )
    (tmp_path / "dvc.yaml").write_bytes((REPO / "dvc.yaml").read_bytes())
    model = tmp_path / "vae.keras"
    save_vae(decoder(config, hidden_units=[8192, 2048], latent_dim=512), model)
    before = sorted(p.name for p in tmp_path.iterdir())
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}

    result = subprocess.run(
        [sys.executable, str(REPO / "pipeline" / "evaluate.py"), str(model), "processed",
         "history", "evaluation"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: params.yaml: evaluate.iwae_samples = 100000 is not allowed")
    assert "11264 floats" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no outs, no mlflow.db
