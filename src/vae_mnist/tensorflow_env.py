"""TensorFlow's process settings, applied before its first import in a process: a stage prints
only what its user can act on, and computes with the same kernels on every CPU kind."""

from __future__ import annotations

import os

SETTINGS = {
    # TensorFlow's C++ INFO lines would drown the stages' own output; warnings and errors show.
    "TF_CPP_MIN_LOG_LEVEL": "1",
    # On a CPU with AVX-512 TensorFlow turns its oneDNN kernels on by default and announces it
    # before its logging is set up: an INFO line and an absl WARNING on every start, which no log
    # level silences. Off, every CPU kind runs the same kernels (on, evaluate's figures and
    # latent means came out other bytes); the trained model's bytes and training time were the
    # same either way; the IWAE bound took a fifth longer (README, "Evaluation": the measurement).
    "TF_ENABLE_ONEDNN_OPTS": "0",
}


def quiet_tensorflow() -> None:
    """Set each of SETTINGS that the caller's environment leaves unset (theirs wins)."""
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
