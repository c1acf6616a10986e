"""TensorFlow's process settings, applied before its first import in a process: a stage prints
only what its user can act on, and with `floats: portable` trains the same bytes on any CPU."""

from __future__ import annotations

import os

SETTINGS = {
    # TensorFlow's C++ INFO lines would drown the stages' own output; warnings and errors show.
    "TF_CPP_MIN_LOG_LEVEL": "1",
    # On a CPU with AVX-512 TensorFlow turns its oneDNN kernels on by default and announces it
    # before its logging is set up: an INFO line and an absl WARNING on every start, which no log
    # level silences. Off, every CPU kind runs the same kernels (on, evaluate's figures and
    # latent means came out other bytes); the trained model's bytes and training time were the
    # same either way; the IWAE bound took a fifth longer (docs/performance.md: the measurement).
    "TF_ENABLE_ONEDNN_OPTS": "0",
}


# `floats: portable`. TensorFlow's matrix products (its own and XLA's) run on oneDNN, which picks
# its code by the CPU's instruction sets and splits the sums over the intra-op threads: capped at
# AVX2 and at 2 threads, an AVX-512 machine, an AVX2 machine, one core or two trained the same
# bytes (benchmarks/float_stability.py; natively each gave its own).
PORTABLE = {"ONEDNN_MAX_CPU_ISA": "AVX2", "TF_NUM_INTRAOP_THREADS": "2"}


def quiet_tensorflow(floats: str = "native") -> None:
    """Set each of SETTINGS that the caller's environment leaves unset (theirs wins), and with
    `floats = "portable"` the PORTABLE ones (params.yaml wins: the lineage must hold)."""
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
    if floats == "portable":
        os.environ.update(PORTABLE)
