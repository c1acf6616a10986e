"""Tests of machine.py: the fingerprint a run records of the machine it computed on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vae_mnist.common import machine
from vae_mnist.common.machine import cpu, fingerprint, machine_id

X86 = """\
processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 17
model name	: AMD EPYC
stepping	: 1
flags		: fpu sse4_1 sse4_2 avx f16c avx2 fma avx512f avx512bw avx512_bf16 rdrand

processor	: 1
model name	: Some Other CPU
flags		: fpu sse4_2
"""


ARM = """\
processor	: 0
BogoMIPS	: 50.00
Features	: fp asimd evtstrm sve
CPU implementer	: 0x41
CPU part	: 0xd40
"""


@pytest.fixture
def cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def write(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(machine, "CPUINFO", path)

    return write


def test_the_cpu_is_named_with_its_generation_and_the_isa_that_changes_floats(cpuinfo) -> None:
    cpuinfo(X86)
    name, isa = cpu()
    assert name == "AMD EPYC (family 25, model 17, stepping 1)"  # the first processor's block
    assert isa == ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_bf16"]
    cpuinfo(ARM)
    name, isa = cpu()
    assert name.endswith("(implementer 0x41, part 0xd40)")
    assert isa == ["asimd", "sve"]


def test_the_fingerprint_holds_versions_settings_and_the_lock_files_digest(
    tmp_path: Path, cpuinfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpuinfo(X86)
    (tmp_path / "uv.lock").write_text("locked\n")
    for name in machine.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
    found = fingerprint(tmp_path)
    assert found["settings"] == {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}
    assert found["uv_lock"] == hashlib.sha256(b"locked\n").hexdigest()
    assert found["tensorflow"] and found["keras"] and found["numpy"]  # installed: versions
    assert found["id"] == machine_id(found) and len(found["id"]) == 12
    assert fingerprint(tmp_path / "elsewhere")["uv_lock"] is None


def test_the_machine_id_changes_with_what_changes_floats_and_only_with_that(
    tmp_path: Path, cpuinfo
) -> None:
    cpuinfo(X86)
    found = fingerprint(tmp_path)
    same = machine_id({**found, "uv_lock": "another lock, the same versions"})
    assert same == found["id"]
    for field, other in [
        ("isa", ["sse4_2", "avx", "avx2", "fma"]),  # the same CPU capped at AVX2
        ("cores", found["cores"] + 1),
        ("settings", {"TF_ENABLE_ONEDNN_OPTS": "1"}),
        ("tensorflow", "0.0.1"),
        ("cpu", "AMD EPYC (family 23, model 49, stepping 0)"),
    ]:
        assert machine_id({**found, field: other}) != found["id"], field
