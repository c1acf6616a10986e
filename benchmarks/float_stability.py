"""Which settings make the trained model's bytes the same on every machine, and what they cost.

TensorFlow's CPU kernels choose their code by what the CPU offers (XLA by its ISA, oneDNN too
when it is on) and split work over the cores they are given, so the same params and data can
train to other bytes on another machine. This simulates those differences on one machine: XLA's
ISA cap (`XLA_FLAGS=--xla_cpu_max_isa=...`), oneDNN on (`TF_ENABLE_ONEDNN_OPTS=1`) and its ISA
cap (`ONEDNN_MAX_CPU_ISA`), one core instead of all (`taskset`). Each variant runs the train
stage as `dvc repro` does (pipeline/train.py on data/processed, into a scratch folder and MLflow
store) and prints the model's md5 and the stage's seconds beside the baseline's, measured in the
same run. Needs data/processed (make repro).

    python benchmarks/float_stability.py [--epochs 12] [--only baseline,xla-avx2,...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vae_mnist.common.config import load_config
from vae_mnist.common.tensorflow_env import PORTABLE

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "baseline": {},
    "xla-avx2": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2"},
    "xla-avx": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX"},
    "xla-sse4_2": {"XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2"},
    "onednn-on": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "onednn-on-avx2": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "one-core": {"CORES": "0"},
    "one-core-xla-avx2": {"CORES": "0", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"},
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    # An AVX2 machine (no AVX-512): both ISA caps; and the same under oneDNN's cap alone.
    "avx2-machine": {"ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"},
    "avx2-machine-one-core": {"ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
                              "CORES": "0"},
    "onednn-avx2-one-core": {"ONEDNN_MAX_CPU_ISA": "AVX2", "CORES": "0"},
    # `floats: portable` (tensorflow_env.PORTABLE) on this machine, on an AVX2 machine, on one
    # core, with oneDNN's TensorFlow ops on.
    "portable": PORTABLE,
    "portable-avx2-machine": {**PORTABLE, "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"},
    "portable-one-core": {**PORTABLE, "CORES": "0"},
    "portable-onednn-on": {**PORTABLE, "TF_ENABLE_ONEDNN_OPTS": "1"},
    # The same machine differences under XLA capped at AVX (no FMA in XLA's code):
    "xla-avx-one-core": {"CORES": "0", "XLA_FLAGS": "--xla_cpu_max_isa=AVX"},
    "xla-avx-onednn-avx2": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "xla-avx-onednn-on": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX", "TF_ENABLE_ONEDNN_OPTS": "1"},
    "xla-avx-onednn-on-avx2": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX", "TF_ENABLE_ONEDNN_OPTS": "1",
                               "ONEDNN_MAX_CPU_ISA": "AVX2"},
}  # fmt: skip


def train(variant: dict[str, str], folder: Path, epochs: int) -> tuple[str, float]:
    """The model's md5 and the stage's wall seconds under the variant's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env.update({k: v for k, v in variant.items() if k != "CORES"})
    env.update(PYTHONPATH=str(REPO / "src"), MLFLOW_TRACKING_URI=f"sqlite:///{folder}/mlflow.db")
    command = [sys.executable, str(REPO / "pipeline" / "train.py"), str(REPO / "data/processed"),
               str(folder / "vae.keras"), str(folder / "history")]  # fmt: skip
    if "CORES" in variant:
        command = ["taskset", "-c", variant["CORES"], *command]
    params = folder / "params.yaml"
    text = (REPO / "params.yaml").read_text()
    params.write_text(re.sub(r"(?m)^(  epochs:) *\d+", rf"\g<1> {epochs}", text, count=1))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return hashlib.md5((folder / "vae.keras").read_bytes()).hexdigest(), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    epochs = load_config(REPO / "params.yaml").train.epochs
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants")
    parser.add_argument("--repeats", type=int, default=1, help="rounds, variants interleaved")
    args = parser.parse_args()
    names = ["baseline", *[n for n in args.only.split(",") if n != "baseline"]]
    print(f"train stage, {args.epochs} epochs, params.yaml otherwise; cores: {os.cpu_count()}")
    print(f"{'variant':<24} {'model md5':<34} {'seconds':>8} {'/ baseline':>10}")
    md5s: dict[str, str] = {}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.repeats):
        for name in names:
            with tempfile.TemporaryDirectory() as folder:
                md5, took = train(VARIANTS[name], Path(folder), args.epochs)
            if md5s.setdefault(name, md5) != md5:
                print(f"{name}: round {round_ + 1} gave other bytes ({md5})")
            seconds[name].append(took)
            ratio = statistics.median(seconds[name]) / statistics.median(seconds["baseline"])
            print(f"{name:<24} {md5:<34} {took:8.1f} {ratio:10.2f}", flush=True)
    print("\nthe same bytes:")
    for md5 in dict.fromkeys(md5s.values()):
        print(f"  {md5}: {', '.join(n for n in names if md5s[n] == md5)}")


if __name__ == "__main__":
    main()
