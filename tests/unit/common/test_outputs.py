"""Stage outputs are all-or-nothing and byte-stable."""

from pathlib import Path

import pytest

from vae_mnist.common.outputs import atomic_directory, atomic_file, file_sha256, json_text


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


def test_json_text_is_indented_sorted_and_ends_with_a_newline() -> None:
    expected = '{\n  "a": [\n    0.5,\n    "x"\n  ],\n  "b": 1\n}\n'
    assert json_text({"b": 1, "a": [0.5, "x"]}) == expected


def test_json_is_sorted_and_stable() -> None:
    assert json_text({"b": 1, "a": {"d": 2, "c": 3}}) == json_text({"a": {"c": 3, "d": 2}, "b": 1})
    assert json_text({"b": 1, "a": 2}).index('"a"') < json_text({"b": 1, "a": 2}).index('"b"')
    with pytest.raises(ValueError):
        json_text({"x": float("nan")})


def test_a_file_is_replaced_only_when_written_whole(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "history.csv"
    with atomic_file(target) as staging:
        assert staging.parent == target.parent and staging != target
        staging.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_file(target) as staging:
        staging.write_text("half")
        raise RuntimeError("stage failed")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["history.csv"]  # no staging left
    with atomic_file(target) as staging:
        staging.write_text("second")
    assert target.read_text() == "second"


def test_file_sha256_is_the_content_digest(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"abc")
    assert file_sha256(tmp_path / "a") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
