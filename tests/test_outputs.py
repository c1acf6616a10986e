"""Stage outputs are all-or-nothing and byte-stable."""

from pathlib import Path

import pytest

from vae_mnist.outputs import atomic_directory, json_text


def test_success_replaces_the_whole_folder(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with atomic_directory(target) as staging:
        assert staging.parent == tmp_path and staging != target
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("existed", [True, False])
def test_failure_leaves_the_target_as_it_was(tmp_path: Path, existed: bool) -> None:
    target = tmp_path / "out"
    if existed:
        target.mkdir()
        (target / "kept.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("stage failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if existed else [])
    if existed:
        assert (target / "kept.txt").read_text() == "old"


def test_json_is_sorted_and_stable() -> None:
    assert json_text({"b": 1, "a": {"d": 2, "c": 3}}) == json_text({"a": {"c": 3, "d": 2}, "b": 1})
    assert json_text({"b": 1, "a": 2}).index('"a"') < json_text({"b": 1, "a": 2}).index('"b"')
    with pytest.raises(ValueError):
        json_text({"x": float("nan")})
