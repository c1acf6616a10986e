"""Tests of tensorflow_env.py: the process settings a stage applies before TensorFlow loads."""

from __future__ import annotations

import os

import pytest

from vae_mnist.common.tensorflow_env import PORTABLE, SETTINGS, quiet_tensorflow


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in {*SETTINGS, *PORTABLE}:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_native_floats_set_the_quiet_settings_and_leave_the_callers_alone(clean) -> None:
    clean.setenv("TF_ENABLE_ONEDNN_OPTS", "1")  # the caller's own choice wins
    quiet_tensorflow()
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == SETTINGS["TF_CPP_MIN_LOG_LEVEL"]
    assert not any(name in os.environ for name in PORTABLE)


def test_portable_floats_cap_onednn_and_fix_the_threads_whatever_the_caller_set(clean) -> None:
    clean.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # params.yaml wins: the lineage holds
    quiet_tensorflow("portable")
    assert {name: os.environ[name] for name in PORTABLE} == {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "TF_NUM_INTRAOP_THREADS": "2",
    }
