"""What the train stage prints while it trains: Keras' progress line, one per epoch, saying `loss`
and `val_loss` (README, "Training"), not nothing and not a progress bar redrawn at every step."""

from __future__ import annotations

import re

import numpy as np
import pytest

from vae_mnist.config import Config
from vae_mnist.fitting import fit_vae

from .conftest import override

EPOCH_LINE = re.compile(r"1/1 - \d+s - \d+m?s/step - .*- loss: \d+\.\d{4} - .*val_loss: \d+\.\d{4}")


def test_training_prints_one_line_per_epoch_with_loss_and_val_loss(
    config: Config, capfd: pytest.CaptureFixture[str]
) -> None:
    tiny = override(
        config,
        {"model.hidden_units": [16], "model.latent_dim": 2, "train.epochs": 2,
         "train.batch_size": 32},
    )  # fmt: skip
    images = (np.random.default_rng(0).random((96, 28, 28)) < 0.2).astype(np.float32)
    capfd.readouterr()
    fit_vae(tiny, images[:80], images[80:])  # the verbosity the train stage trains with
    lines = capfd.readouterr().out.splitlines()
    assert "\r" not in "".join(lines) and "\x1b" not in "".join(lines)  # no redrawn bar
    assert len(lines) == 4, lines
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    for line in lines[1::2]:
        assert EPOCH_LINE.match(line), line
