"""The fit's Keras callbacks: each epoch's beta and learning rate recorded (and divergence
stopped), DVCLive's history files, and early stopping on the validation -ELBO."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
from dvclive import Live

from vae_mnist.common.config import TrainConfig
from vae_mnist.common.errors import Diverged
from vae_mnist.common.quantities import EPOCH_NAMES
from vae_mnist.training.schedules import kl_weight


class EpochRecorder(keras.callbacks.Callback):
    """Sets beta for each epoch and adds beta and the learning rate to the epoch's logs."""

    def __init__(self, warmup_epochs: int) -> None:
        super().__init__()
        self.warmup_epochs = warmup_epochs
        self.rows: list[dict[str, float]] = []

    def beta(self, epoch: int) -> float:
        return kl_weight(epoch, self.warmup_epochs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.model.beta.assign(self.beta(epoch))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        rate = optimizer.learning_rate
        rate = rate(optimizer.iterations) if callable(rate) else rate
        # convert_to_numpy reads a variable mirrored over replicas as well as a plain one
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))
        logs["beta"] = float(keras.ops.convert_to_numpy(self.model.beta))
        diverged = [k for k in ("loss", "val_loss") if k in logs and not math.isfinite(logs[k])]
        if diverged:  # every later epoch would be NaN too, and no output could hold it
            raise Diverged(
                f"{Diverged.PREFIX} in epoch {epoch + 1}: {EPOCH_NAMES[diverged[0]]} is "
                f"{logs[diverged[0]]} (learning rate {logs['learning_rate']:.3g}; a smaller "
                "train.learning_rate, a larger train.batch_size or KL warm-up avoid it)"
            )
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})


class EpochLog(keras.callbacks.Callback):
    """DVCLive's logger, under the history's names, one step per epoch counted from 1.

    Each step writes every file (`next_step`), so `Live.end()` is not called: inside `dvc exp run`
    it git-adds its folder unless the folder is a stage's out, and the train stage has DVCLive
    write into a staging folder that becomes the out only once training has succeeded.
    """

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.live = Live(str(folder), save_dvc_exp=False, dvcyaml=False, report=None)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.live.step = epoch + 1
        for key, value in (logs or {}).items():
            if key in EPOCH_NAMES:
                self.live.log_metric(EPOCH_NAMES[key], float(value))
        self.live.next_step()


def early_stopping(config: TrainConfig) -> list[keras.callbacks.Callback]:
    """Keras' EarlyStopping on the validation -ELBO, best weights restored; none at patience 0."""
    if not config.early_stopping_patience:
        return []
    return [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
        )
    ]
