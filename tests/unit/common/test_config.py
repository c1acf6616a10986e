"""Tests of config.py: how params.yaml is validated, and what a user sees when it is wrong.

A typo, a bad value, a broken file: from load_config, and from the real train script run as a
user runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.configs import override
from tests.support.paths import REPO
from vae_mnist.common.config import Config, ModelConfig, load_config
from vae_mnist.common.errors import ConfigError
from vae_mnist.common.mnist import TRAIN_IMAGES
from vae_mnist.data.mnist import MNIST_FILES, SPLIT_FILES
from vae_mnist.model.vae import KINDS


def write_params(tmp_path: Path, old: str, new: str) -> Path:
    text = (REPO / "params.yaml").read_text()
    assert old in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


PARAMS_LINES = (REPO / "params.yaml").read_text().splitlines(keepends=True)


@st.composite
def edited_params(draw: st.DrawFn) -> str:
    """params.yaml with a few lines dropped, repeated, or with text put in or taken out."""
    lines = list(PARAMS_LINES)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "repeat", "insert", "cut"]))
        if action == "drop":
            del lines[i]
        elif action == "repeat":
            lines.insert(i, lines[i])
        elif action == "insert":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.text(max_size=8)) + lines[i][at:]
        else:
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + lines[i][at + draw(st.integers(1, 6)) :]
    return "".join(lines)


# The real train script, run in a fresh process as a user runs it: it stops before it imports
# TensorFlow, a fraction of a second each.
SCRIPT = REPO / "pipeline" / "train.py"


ARGS = ("data/processed", "models/vae.keras", "reports/training")


# (id, [(text in params.yaml, its replacement), ...], what the one line must name)
CASES = [
    ("typo-key", [("  epochs: 12", "  epoch: 12")], ["train.epoch", "did you mean 'train.epochs'"]),
    ("string-int", [("batch_size: 128", 'batch_size: "128"')], ["train.batch_size = '128'"]),
    ("latent-0", [("latent_dim: 2", "latent_dim: 0")], ["model.latent_dim = 0"]),
    ("epochs-0", [("epochs: 12", "epochs: 0")], ["train.epochs = 0"]),
    (
        "batch-over-train-set",
        [("batch_size: 128", "batch_size: 60000")],
        ["train.batch_size = 60000", "data.val_size = 5000", "at most 55000"],
    ),
    ("val-all", [("val_size: 5000", "val_size: 60000")], ["data.val_size = 60000"]),
    ("lr-0", [("learning_rate: 0.001", "learning_rate: 0")], ["train.learning_rate = 0"]),
    ("lr-negative", [("learning_rate: 0.001", "learning_rate: -1e-3")], ["learning_rate = -0.001"]),
    ("iwae-0", [("iwae_samples: 100", "iwae_samples: 0")], ["evaluate.iwae_samples = 0"]),
    (
        "iwae-huge",
        [("iwae_samples: 100", "iwae_samples: 1000000000")],
        ["evaluate.iwae_samples = 1000000000"],
    ),
    ("activation", [("activation: relu", "activation: relux")], ["model.activation = 'relux'"]),
    ("schedule", [("lr_schedule: constant", "lr_schedule: linear")], ["lr_schedule = 'linear'"]),
    ("malformed", [("  epochs: 12", "  epochs: 12: 3")], ["not valid YAML", "epochs: 12: 3"]),
    (
        "duplicated-key",
        [("  epochs: 12\n", "  epochs: 12\n  epochs: 3\n")],
        ["'train.epochs' is written twice", "(12)", "(3)"],
    ),
]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_defaults_are_the_classic_script(config: Config) -> None:
    assert config.model.latent_dim == 2
    assert config.model.mlp.hidden_units == (512, 256, 128)
    assert config.model.activation == "relu"
    assert (config.train.batch_size, config.train.epochs) == (128, 12)
    assert config.train.learning_rate == pytest.approx(1e-3)
    assert 0 < config.data.val_size < 60_000


def test_config_is_immutable(config: Config) -> None:
    with pytest.raises(ValueError, match="frozen"):
        config.seed = 1  # type: ignore[misc]


def test_flat_keys_match_dvc_names(config: Config) -> None:
    flat = config.flat()
    assert flat["model.mlp.hidden_units"] == [512, 256, 128]
    assert flat["data.val_size"] == config.data.val_size
    assert "mlflow.registered_model_name" in flat


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "val_size:", "val_sise:"))
    assert "unknown key 'data.val_sise'" in message
    assert "did you mean 'data.val_size'" in message


def test_unknown_section_suggests_the_right_one(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "\nmodel:", "\nmodle:"))
    assert "did you mean 'model'" in message


def test_the_model_kind_is_one_of_the_kinds_and_its_section_takes_only_its_own_keys(
    tmp_path: Path, config: Config
) -> None:
    assert config.model.kind == "mlp" and config.model.own == config.model.mlp
    assert ModelConfig.kinds() == tuple(KINDS)  # each kind has its builders
    message = config_error(write_params(tmp_path, "kind: mlp", "kind: dense"))
    assert "model.kind = 'dense' is not allowed: must be 'mlp'" in message
    message = config_error(
        write_params(tmp_path, "    hidden_units:", "    filters: [32]\n    hidden_units:")
    )
    assert "unknown key 'model.mlp.filters'" in message  # another kind's key is no MLP key
    message = config_error(write_params(tmp_path, "  activation: relu\n", ""))
    assert "missing key 'model.activation'" in message  # what every kind shares


def test_a_params_yaml_of_before_the_kinds_is_told_where_its_key_went(tmp_path: Path) -> None:
    old = "  mlp:\n    hidden_units: [512, 256, 128]"
    message = config_error(write_params(tmp_path, old, "  hidden_units: [512, 256, 128]"))
    assert "params.yaml: unknown key 'model.hidden_units': it is 'model.mlp.hidden_units' now" in (
        message
    )


def test_the_effective_params_are_the_chosen_kind_s(config: Config) -> None:
    effective = config.effective()
    assert effective["model.kind"] == "mlp"
    assert effective["model.mlp.hidden_units"] == [512, 256, 128]
    assert set(effective) == set(config.flat())  # one kind: nothing to leave out yet


def test_out_of_range_value_names_key_value_and_limit(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "val_size: 5000", "val_size: 70000"))
    assert "data.val_size = 70000" in message
    assert "less than or equal to 50000" in message


def test_wrong_type_is_rejected_not_coerced(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "epochs: 12", "epochs: '12'"))
    assert "train.epochs = '12'" in message and "integer" in message


def test_bad_choice_lists_the_allowed_ones(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "binarize: none", "binarize: always"))
    assert "data.binarize = 'always'" in message
    assert "'none', 'static' or 'dynamic'" in message


def test_list_element_is_named_by_index(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "[512, 256, 128]", "[512, 0, 128]"))
    assert "model.mlp.hidden_units[1] = 0" in message


def test_missing_key_is_an_error(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "  iwae_samples: 100", "  {}"))
    assert "missing key 'evaluate.iwae_samples'" in message


def test_scientific_notation_reads_as_a_float(tmp_path: Path) -> None:
    # PyYAML alone reads `1e-3` as a string; DVC (YAML 1.2) reads a float: we agree with DVC.
    path = write_params(tmp_path, "learning_rate: 0.001", "learning_rate: 1e-3")
    assert load_config(path).train.learning_rate == pytest.approx(1e-3)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "seed: 42", "seed: [42"))
    assert "not valid YAML at line" in message


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in config_error(tmp_path / "params.yaml")


# A key written twice: PyYAML alone keeps the last one without a word.
def test_a_duplicated_key_names_its_dotted_path_and_both_lines(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "  epochs: 12\n", "  epochs: 12\n  epochs: 3\n"))
    lines = (tmp_path / "params.yaml").read_text().splitlines()
    first = lines.index("  epochs: 12") + 1
    assert message == (
        f"{tmp_path / 'params.yaml'}: key 'train.epochs' is written twice, at line {first} (12) "
        f"and line {first + 1} (3): each key is allowed once"
    )


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("\nmlflow:", "\nseed: 7\nmlflow:", "'seed'"),  # top level
        ("\nmlflow:", "\ntrain:\n  epochs: 1\nmlflow:", "'train'"),  # a whole section again
        ("  latent_dim: 2\n", "  latent_dim: 2\n  'latent_dim': 3\n", "'model.latent_dim'"),
    ],
)
def test_every_duplicated_key_is_refused(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert f"key {key} is written twice" in config_error(write_params(tmp_path, old, new))


def test_a_name_used_in_two_sections_is_not_a_duplicate(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "  epochs: 12\n", "  epochs: 12\n  seed: 1\n"))
    assert "unknown key 'train.seed'" in message  # not `seed` written twice


# The batch size against the training set data.val_size leaves.
def test_the_training_count_agrees_with_the_file_table() -> None:
    # the labels file: an 8-byte IDX header, then one byte per image
    assert MNIST_FILES[SPLIT_FILES["train"][1]].size == 8 + TRAIN_IMAGES == 60_008


def test_a_batch_larger_than_the_training_set_names_both_keys_and_the_limit(
    tmp_path: Path,
) -> None:
    message = config_error(write_params(tmp_path, "batch_size: 128", "batch_size: 55001"))
    assert message.endswith(
        "train.batch_size = 55001 is not allowed: must be at most 55000, the training images "
        "left when data.val_size = 5000 are held out of MNIST's 60000"
    )


def test_a_batch_of_the_whole_training_set_is_allowed(config: Config) -> None:
    assert override(config, {"train.batch_size": 55_000}).train.batch_size == 55_000
    assert override(config, {"data.val_size": 50_000, "train.batch_size": 10_000})
    with pytest.raises(ValueError, match=r"train\.batch_size = 10001 .* data\.val_size = 50000"):
        override(config, {"data.val_size": 50_000, "train.batch_size": 10_001})


@pytest.mark.parametrize("val_size", [50_001, 59_999, 60_000, 60_001])
def test_a_val_size_that_leaves_too_few_training_images_is_refused(
    tmp_path: Path, val_size: int
) -> None:
    message = config_error(write_params(tmp_path, "val_size: 5000", f"val_size: {val_size}"))
    assert f"data.val_size = {val_size} is not allowed" in message


# Whatever the file holds, the outcome is a config or one line.
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"seed: \xff\n", "not UTF-8 text (byte 6)"),
        (b"a: " + b"[" * 1000, "not valid YAML: nested too deeply"),
        (b"seed: " + b"9" * 5000, "not valid YAML: Exceeds the limit"),
        (b"1: 2\n", "key 1 is not allowed: keys must be names (strings)"),
        (b'"a\\nb": 1\n', "unknown key 'a\\nb'"),
        (b"", "expected a mapping of sections, got NoneType"),
    ],
)
def test_odd_files_get_one_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(content)
    assert expected in config_error(path)


def test_a_folder_in_place_of_the_file(tmp_path: Path) -> None:
    assert "cannot be read" in config_error(tmp_path)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_learning_rate_must_be_a_finite_number(tmp_path: Path, value: str) -> None:
    message = config_error(
        write_params(tmp_path, "learning_rate: 0.001", f"learning_rate: {value}")
    )
    assert "train.learning_rate = " in message and "is not allowed" in message


@given(text=st.one_of(edited_params(), st.text(max_size=200)))
@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_any_text_is_a_config_or_one_line_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as error:
        message = str(error)
        assert message.startswith(f"{path}: ") and message.isprintable()


@pytest.mark.parametrize(("edits", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_param_stops_the_stage_before_any_work(
    tmp_path: Path, edits: list[tuple[str, str]], named: list[str]
) -> None:
    """Mistyped or out-of-range params tried by hand: the real train script, run as a user runs
    it, stops before any work with exit code 2 and one line that names the key and the value."""
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "params.yaml").write_text(text, encoding="utf-8")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}

    result = subprocess.run(
        [sys.executable, str(SCRIPT), *ARGS],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: params.yaml: ")
    for part in named:
        assert part in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert files_under(tmp_path) == ["params.yaml"]  # no mlflow.db, no outs: no work began
