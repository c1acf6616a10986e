"""params.yaml -> one typed, validated, immutable config object.

params.yaml is the single place that holds every value: the models below declare types and allowed
ranges but no defaults, so a value missing from the file is an error rather than a silent fallback.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vae_mnist.common.errors import ConfigError
from vae_mnist.common.mnist import TRAIN_IMAGES

PARAMS_FILE = Path("params.yaml")


def project_root() -> Path:
    """The repository root: DVC_ROOT when DVC runs us (the original root, even for queued runs),
    else the nearest folder up from the working directory that holds dvc.yaml, else the latter."""
    if dvc_root := os.environ.get("DVC_ROOT"):
        return Path(dvc_root).resolve()
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    return cwd


Int = StrictInt  # YAML `true` or `12.5` for an integer is a mistake, not something to round.
Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # ints too; no str, bool, nan


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    val_size: Annotated[Int, Field(ge=1, le=50_000)]
    """Images held out of the 60k training set, stratified by digit."""
    binarize: Literal["none", "static", "dynamic"]
    """static: one seeded Bernoulli draw in preprocess; dynamic: a fresh draw per training batch."""


# Keys that moved, old name -> new: a params.yaml of before gets told where each went, and the
# yardstick (experiments/noise.py) keeps the old name for its keys.
MOVED = {"model.hidden_units": "model.mlp.hidden_units"}


class MlpConfig(_Section):
    """The classic script's network: Dense layers of these widths, the decoder mirrored."""

    hidden_units: Annotated[tuple[Annotated[Int, Field(ge=1, le=8192)], ...], Field(min_length=1)]


class ModelConfig(_Section):
    """What every kind shares, the kind, and one section of its own per kind (`model.<kind>`):
    all are validated, the kind's own is used. A new kind is its name in `kind`, its section
    here, its builders (model/<kind>.py) and its section in params.yaml."""

    kind: Literal["mlp"]
    latent_dim: Annotated[Int, Field(ge=1, le=512)]
    activation: Literal["relu", "elu", "gelu", "selu", "silu", "tanh", "softplus", "leaky_relu"]
    mlp: MlpConfig

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        return get_args(cls.model_fields["kind"].annotation)

    @property
    def own(self) -> _Section:
        """The kind's own section (`model.mlp` for the MLP)."""
        return getattr(self, self.kind)


class TrainConfig(_Section):
    epochs: Annotated[Int, Field(ge=1, le=10_000)]
    batch_size: Annotated[Int, Field(ge=1, le=TRAIN_IMAGES)]
    """At most the training images data.val_size leaves (Config checks): full batches only."""
    learning_rate: Annotated[Float, Field(gt=0, le=1)]
    lr_schedule: Literal["constant", "cosine", "exponential"]
    """cosine: to 0 over all epochs; exponential: times lr_decay_rate per epoch."""
    lr_decay_rate: Annotated[Float, Field(gt=0, le=1)]
    kl_warmup_epochs: Annotated[Int, Field(ge=0, le=10_000)]
    """KL weight beta = min(1, (epoch + 1) / kl_warmup_epochs); 0 trains at beta = 1 throughout."""
    early_stopping_patience: Annotated[Int, Field(ge=0, le=10_000)]
    """Epochs without a better validation -ELBO before stopping (best weights restored); 0: off."""
    distribution: Literal["none", "mirrored", "multi_worker"]
    """none: Keras' fit on one device; mirrored: the devices of this machine; multi_worker: the
    workers TF_CONFIG names (or local ones). batch_size stays the global batch."""


class EvaluateConfig(_Section):
    iwae_samples: Annotated[Int, Field(ge=1, le=100_000)]


class MlflowConfig(_Section):
    experiment_name: Annotated[str, Field(min_length=1, max_length=200)]
    registered_model_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]


class Config(_Section):
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1)]
    floats: Literal["native", "portable"]
    """native: TensorFlow's kernels as this CPU runs them fastest; portable: the same bytes on
    every x86-64 CPU with AVX2 (tensorflow_env.PORTABLE says how; docs/experiments.md, "Across
    machines", what it costs)."""
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    mlflow: MlflowConfig

    @model_validator(mode="after")
    def _fits(self) -> Config:
        """Limits that involve two keys, or a key and what the stage does with it."""
        train_images = TRAIN_IMAGES - self.data.val_size
        if self.train.batch_size > train_images:
            raise _limit(
                f"train.batch_size = {self.train.batch_size} is not allowed: must be at most "
                f"{train_images}, the training images left when data.val_size = "
                f"{self.data.val_size} are held out of MNIST's {TRAIN_IMAGES}"
            )
        return self

    def flat(self) -> dict[str, Any]:
        """Every key, dotted (`model.latent_dim`) as DVC's `-S` names them: params.yaml's."""
        return flatten(self.model_dump())

    def effective(self) -> dict[str, Any]:
        """flat() less the sections of the kinds not chosen: the params the result depends on,
        as the stages log them to MLflow and the yardstick and the report compare them."""
        unused = tuple(f"model.{k}." for k in ModelConfig.kinds() if k != self.model.kind)
        return {k: v for k, v in self.flat().items() if not k.startswith(unused)}

    def params(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of `keys` as dvc.yaml lists a stage's params (a key, or a section: all its
        keys), by dotted key, as effective() has them."""
        flat, keys = self.effective(), tuple(keys)
        return {k: v for k, v in flat.items() if any(k == s or k.startswith(f"{s}.") for s in keys)}


def _limit(message: str) -> PydanticCustomError:
    return PydanticCustomError("config_limit", "{message}", {"message": message})


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A params tree's values by dotted key (`model.latent_dim`)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def read_named(path: Path, what: str) -> dict[Any, Any]:
    """A YAML file of named entries (recipes.yaml, sweeps.yaml), read as params.yaml is; one
    ConfigError line if it is missing, not YAML, or not a non-empty mapping of `what` names."""
    raw = read_yaml(path)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a mapping of {what} names")
    return raw


def load_config(path: Path = PARAMS_FILE) -> Config:
    """Read and validate params.yaml; every problem becomes one ConfigError line."""
    return _validate(_read(path), path)


def set_dotted(tree: dict[str, Any], dotted: str, value: Any, new: bool = True) -> None:
    """Set `section.key` in a params tree as `dvc exp run -S section.key=value` sets it, making
    missing sections and keys unless `new` is False; KeyError(dotted) where a section on the way
    holds a value, or a key that is not there may not be made."""
    *sections, key = dotted.split(".")
    node = tree
    for section in sections:
        node = node.setdefault(section, {}) if new else node.get(section)
        if not isinstance(node, dict):
            raise KeyError(dotted)
    if not new and key not in node:
        raise KeyError(dotted)
    node[key] = value


def with_overrides(overrides: Mapping[str, Any], where: str, path: Path = PARAMS_FILE) -> Config:
    """params.yaml with dotted keys set, as `dvc exp run -S key=value` sets them, validated like
    params.yaml; a problem is one ConfigError line that names `where` the overrides came from."""
    raw = _read(path)
    for dotted, value in overrides.items():
        try:
            set_dotted(raw, dotted, value)
        except KeyError:
            raise ConfigError(f"{where}: {dotted} is not a key of {path}") from None
    return _validate(raw, Path(where))


def _validate(raw: dict[str, Any], path: Path) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(path, error)) from None


def _read(path: Path) -> dict[str, Any]:
    """params.yaml's mapping of sections, as read (not validated)."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


def read_yaml(path: Path) -> Any:
    """The one way the project reads its YAML (params.yaml, recipes.yaml, sweeps.yaml, dvc.yaml,
    a historical params.yaml): YAML 1.2, as DVC reads params.yaml, so that `1e-3` is a float and
    `yes` a string everywhere; each problem one ConfigError line naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (run from the repository root)") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    return parse_yaml(text, path)


def parse_yaml(text: str | bytes, where: Path | str) -> Any:
    """read_yaml for a file's contents that are not on disk (a commit's params.yaml, dvc.yaml):
    the same YAML 1.2 and the same one-line errors, naming `where`."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(f"{where}: not UTF-8 text (byte {error.start})") from None
    try:
        return _parse(text, where)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where_in = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        lines = text.splitlines()
        if mark and mark.line < len(lines) and lines[mark.line].strip():
            where_in += f" ({lines[mark.line].strip()[:80]!r})"  # the line as written
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(_one_line(f"{where}: not valid YAML{where_in}: {problem}")) from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid YAML: nested too deeply") from None
    except ValueError as error:  # a scalar the loader cannot convert: a 5000-digit int, 2024-13-01
        raise ConfigError(f"{where}: not valid YAML: {error}") from None


def _parse(text: str, path: Path | str) -> Any:
    """The document as DVC reads params.yaml: YAML 1.2 (`1e-3` a float, `yes` a string), with
    ruamel.yaml. A key written twice in one mapping is refused here first: ruamel refuses it too,
    but names neither the key's dotted path nor the value each time, which the fix needs."""
    yaml = YAML(typ="safe", pure=True)
    node = yaml.compose(text)
    if node is None:
        return None
    _refuse_duplicate_keys(node, path)
    return yaml.load(text)


def _refuse_duplicate_keys(root: Node, path: Path | str) -> None:
    seen_nodes: set[int] = set()  # an alias repeats a node, and may contain itself
    pending: list[tuple[Node, str]] = [(root, "")]
    while pending:
        node, where = pending.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, SequenceNode):
            pending += [(item, f"{where}[{i}]") for i, item in enumerate(node.value)]
        if not isinstance(node, MappingNode):
            continue
        first: dict[tuple[str, str], tuple[Node, Node]] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            name = f"{where}.{key.value}" if where else key.value
            if (key.tag, key.value) in first:
                earlier, earlier_value = first[key.tag, key.value]
                raise ConfigError(
                    f"{path}: key '{_one_line(name)}' is written twice, at line "
                    f"{earlier.start_mark.line + 1} ({_shown(earlier_value)}) and line "
                    f"{key.start_mark.line + 1} ({_shown(value)}): each key is allowed once"
                )
            first[key.tag, key.value] = (key, value)
            pending.append((value, name))


def _shown(node: Node) -> str:
    """A value as written, on one line: a scalar itself (quoted if it was), a collection by its
    kind."""
    if not isinstance(node, ScalarNode):
        return "a list" if isinstance(node, SequenceNode) else "a mapping"
    text = " ".join(node.value.split())
    text = text if len(text) <= 40 else f"{text[:40]}..."
    return repr(text) if node.style or not text else _one_line(text)


def _describe(path: Path, error: ValidationError) -> str:
    # A typo shows up as an unknown key *and* a missing one: name the typo, with its fix.
    unknown = ("extra_forbidden", "invalid_key")
    problems = sorted(error.errors(include_url=False), key=lambda p: p["type"] not in unknown)
    first = problems[0]
    loc = tuple(str(part) for part in first["loc"] if isinstance(part, str))
    key = ".".join(loc) + "".join(f"[{part}]" for part in first["loc"] if isinstance(part, int))
    if first["type"] == "config_limit":
        message = first["msg"]
    elif first["type"] == "invalid_key":  # `1: 2`, `null: 3`: YAML keys that are not names
        parent = ".".join(str(part) for part in first["loc"][:-1])
        message = f"key {first['input']!r}{f' in {parent}' if parent else ''} is not allowed: "
        message += "keys must be names (strings)"
    elif first["type"] == "extra_forbidden":
        message = f"unknown key '{key}'{_suggestion(loc)}"
    elif first["type"] == "missing":
        message = f"missing key '{key}'"
    else:
        allowed = first["msg"].replace("Input should be ", "must be ", 1)
        message = f"{key} = {first['input']!r} is not allowed: {allowed}"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return _one_line(f"{path}: {message}{more}")


def _one_line(text: str) -> str:
    """A message as one line whatever the file held: a key or value with a newline in it is
    shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _suggestion(loc: tuple[str, ...]) -> str:
    """Where a moved key went, else a 'did you mean' hint from the keys valid at the same place
    in the tree."""
    if (moved := MOVED.get(".".join(loc))) is not None:
        return f": it is '{moved}' now (the kind's own section)"
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
