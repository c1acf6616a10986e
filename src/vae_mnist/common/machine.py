"""The machine a run computed on: what decides whether another machine gets the same bytes.

TensorFlow's CPU kernels (Eigen, XLA, oneDNN) pick their code paths by the instruction sets the
CPU offers and split work over the cores they are given, so the same params and data train to
other float results on another CPU kind. The fingerprint records those inputs, and the library
versions and settings that change kernels, so that a rebuild is judged against the right
expectation: the same machine id, the same bytes; another, the same metrics within seed noise.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from vae_mnist.common.outputs import file_sha256

CPUINFO = Path("/proc/cpuinfo")
# The CPU flags whose presence changes TensorFlow's float results: the vector widths and fused
# or reduced-precision arithmetic its kernels dispatch on (x86; other architectures list theirs).
FLOAT_ISA = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni",
    "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8",
    "asimd", "sve", "sve2",
)  # fmt: skip
# Each library by the distributions it ships as (TensorFlow's CPU-only wheel is tensorflow-cpu).
PACKAGES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "numpy": ("numpy",),
}
# Environment settings that change which kernels run, or how many threads split them.
SETTINGS = (
    "TF_ENABLE_ONEDNN_OPTS",
    "ONEDNN_MAX_CPU_ISA",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
)
LOCK_FILE = "uv.lock"


def cpu() -> tuple[str, list[str]]:
    """The CPU's model name, with its family, model and stepping numbers where the kernel gives
    them (a virtual machine may show only "AMD EPYC": the numbers tell its generations apart),
    and which of FLOAT_ISA it offers."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if not line.strip():
            break  # the first processor's block describes them all
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or fields.get("Model") or platform.machine()
    numbers = [
        f"{label} {fields[key]}"
        for key, label in (("cpu family", "family"), ("model", "model"), ("stepping", "stepping"),
                           ("CPU implementer", "implementer"), ("CPU part", "part"))
        if key in fields
    ]  # fmt: skip
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    model = f"{name} ({', '.join(numbers)})" if numbers else name
    return model, [flag for flag in FLOAT_ISA if flag in flags]


def fingerprint(root: Path) -> dict[str, Any]:
    """What this process computes with: CPU, cores it may use, Python and library versions,
    the kernel settings in force, and the digest of the lock file the environment was built
    from; `id` digests the part of it that decides float results."""
    model, isa = cpu()
    found = {
        "cpu": model,
        "isa": isa,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        **{name: _version(dists) for name, dists in PACKAGES.items()},
        "settings": {name: os.environ[name] for name in SETTINGS if name in os.environ},
        "uv_lock": lock_digest(root),
    }
    return {"id": machine_id(found), **found}


def lock_digest(root: Path) -> str | None:
    """The sha256 of the project's uv.lock, the environment it was built from; None without one."""
    lock = root / LOCK_FILE
    return file_sha256(lock) if lock.is_file() else None


def machine_id(found: Mapping[str, Any]) -> str:
    """12 hex digits: the same for two machines whose float results can be the same bytes."""
    kept = {key: value for key, value in found.items() if key not in ("id", "uv_lock")}
    text = json.dumps(kept, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _version(distributions: tuple[str, ...]) -> str | None:
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None
