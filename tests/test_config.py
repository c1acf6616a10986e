"""params.yaml validation: what a user sees for a typo, a bad value, a broken file."""

from pathlib import Path

import pytest

from vae_mnist.config import Config, load_config
from vae_mnist.errors import ConfigError

from .conftest import REPO


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


def test_defaults_are_the_classic_script(config: Config) -> None:
    assert config.model.latent_dim == 2
    assert config.model.hidden_units == (512, 256, 128)
    assert config.model.activation == "relu"
    assert (config.train.batch_size, config.train.epochs) == (128, 12)
    assert config.train.learning_rate == pytest.approx(1e-3)
    assert 0 < config.data.val_size < 60_000


def test_config_is_immutable(config: Config) -> None:
    with pytest.raises(ValueError, match="frozen"):
        config.seed = 1  # type: ignore[misc]


def test_flat_keys_match_dvc_names(config: Config) -> None:
    flat = config.flat()
    assert flat["model.hidden_units"] == [512, 256, 128]
    assert flat["data.val_size"] == config.data.val_size
    assert "mlflow.registered_model_name" in flat


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "val_size:", "val_sise:"))
    assert "unknown key 'data.val_sise'" in message
    assert "did you mean 'data.val_size'" in message


def test_unknown_section_suggests_the_right_one(tmp_path: Path) -> None:
    message = config_error(write_params(tmp_path, "\nmodel:", "\nmodle:"))
    assert "did you mean 'model'" in message


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
    assert "model.hidden_units[1] = 0" in message


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
