"""Two tiny versions, trained and evaluated by the stages on synthetic data in a sqlite store:
what the explorer's tests, in process and in fresh processes, run against."""

from __future__ import annotations

import pytest

from tests.support.configs import override
from tests.support.data import write_raw
from tests.support.paths import REPO
from tests.support.registered import Store, register

TEST_IMAGES = 120


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    from vae_mnist.common.config import PARAMS_FILE, load_config

    tiny = override(
        load_config(REPO / PARAMS_FILE),
        {
            "data.val_size": 20,
            "model.mlp.hidden_units": [16],
            "train.epochs": 1,
            "train.batch_size": 30,
            "evaluate.iwae_samples": 2,
        },
    )
    folder = tmp_path_factory.mktemp("explorer")
    raw = write_raw(folder / "raw", test=TEST_IMAGES)
    return register(folder, raw, [tiny, override(tiny, {"model.latent_dim": 3})])
