"""params.yaml -> one typed, validated, immutable config object.

params.yaml is the single place that holds every value: the models below declare types and allowed
ranges but no defaults, so a value missing from the file is an error rather than a silent fallback.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from vae_mnist.errors import ConfigError

PARAMS_FILE = Path("params.yaml")

Int = StrictInt  # YAML `true` or `12.5` for an integer is a mistake, not something to round.
Float = Annotated[float, Field(strict=True)]  # accepts ints too; rejects strings and booleans


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    val_size: Annotated[Int, Field(ge=1, le=50_000)]
    """Images held out of the 60k training set, stratified by digit."""
    binarize: Literal["none", "static", "dynamic"]
    """static: one seeded Bernoulli draw in preprocess; dynamic: a fresh draw per training batch."""


class ModelConfig(_Section):
    latent_dim: Annotated[Int, Field(ge=1, le=512)]
    hidden_units: Annotated[tuple[Annotated[Int, Field(ge=1, le=8192)], ...], Field(min_length=1)]
    activation: Literal["relu", "elu", "gelu", "selu", "silu", "tanh", "softplus", "leaky_relu"]


class TrainConfig(_Section):
    epochs: Annotated[Int, Field(ge=1, le=10_000)]
    batch_size: Annotated[Int, Field(ge=1, le=10_000)]
    learning_rate: Annotated[Float, Field(gt=0, le=1)]
    lr_schedule: Literal["constant", "cosine", "exponential"]
    """cosine: to 0 over all epochs; exponential: times lr_decay_rate per epoch."""
    lr_decay_rate: Annotated[Float, Field(gt=0, le=1)]
    kl_warmup_epochs: Annotated[Int, Field(ge=0, le=10_000)]
    """KL weight beta = min(1, (epoch + 1) / kl_warmup_epochs); 0 trains at beta = 1 throughout."""
    early_stopping_patience: Annotated[Int, Field(ge=0, le=10_000)]
    """Epochs without a better validation -ELBO before stopping (best weights restored); 0: off."""


class EvaluateConfig(_Section):
    iwae_samples: Annotated[Int, Field(ge=1, le=100_000)]


class MlflowConfig(_Section):
    experiment_name: Annotated[str, Field(min_length=1, max_length=200)]
    registered_model_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]


class Config(_Section):
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1)]
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    mlflow: MlflowConfig

    def flat(self) -> dict[str, Any]:
        """Dotted keys (`model.latent_dim`) as MLflow params and DVC's `-S` name them."""
        return _flatten(self.model_dump())


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats (`1e-3`), as DVC reads the same file; PyYAML alone reads them as strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def load_config(path: Path = PARAMS_FILE) -> Config:
    """Read and validate params.yaml; every problem becomes one ConfigError line."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (run from the repository root)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(path, error)) from None


def _describe(path: Path, error: ValidationError) -> str:
    # A typo shows up as an unknown key *and* a missing one: name the typo, with its fix.
    problems = sorted(error.errors(include_url=False), key=lambda p: p["type"] != "extra_forbidden")
    first = problems[0]
    loc = tuple(str(part) for part in first["loc"] if isinstance(part, str))
    key = ".".join(loc) + "".join(f"[{part}]" for part in first["loc"] if isinstance(part, int))
    if first["type"] == "extra_forbidden":
        message = f"unknown key '{key}'{_suggestion(loc)}"
    elif first["type"] == "missing":
        message = f"missing key '{key}'"
    else:
        allowed = first["msg"].replace("Input should be ", "must be ", 1)
        message = f"{key} = {first['input']!r} is not allowed: {allowed}"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{path}: {message}{more}"


def _suggestion(loc: tuple[str, ...]) -> str:
    """A 'did you mean' hint from the keys valid at the same place in the tree."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    valid = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6)
    prefix = "".join(f"{part}." for part in loc[:-1])
    if close:
        return f"; did you mean '{prefix}{close[0]}'?"
    return f"; allowed keys here: {', '.join(valid)}"
