"""TensorFlow's process settings, applied before its first import in a process: a stage prints
only what its user can act on, and computes with the same kernels on every CPU kind."""

from __future__ import annotations

import os

SETTINGS = {
    # TensorFlow's C++ INFO lines would drown the stages' own output; warnings and errors show.
    "TF_CPP_MIN_LOG_LEVEL": "1",
    # On a CPU with AVX-512 TensorFlow turns its oneDNN kernels on by default and announces it
    # before its logging is set up: an INFO line and an absl WARNING on every start, which the
    # level above does not silence. Off, every CPU kind runs the same kernels; the trained model's
    # bytes were unchanged and neither the stages nor the benchmarks were slower (README, Speed).
    "TF_ENABLE_ONEDNN_OPTS": "0",
}


def quiet_tensorflow() -> None:
    """Set each of SETTINGS that the caller's environment leaves unset (theirs wins)."""
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
