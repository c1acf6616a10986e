"""The sides of a comparison, each read where it is kept, through DVC's and MLflow's APIs, without
retraining: the workspace (its files), a git revision or a DVC experiment (DVC's file system at
that commit: git for params.yaml, the DVC cache for the outs), or a registered version (its
training run and its evaluation, in the MLflow store).

A side is the params it ran with (as MLflow logs them: strings), its test metrics, the per-digit
means, the per-epoch curves, the evaluate stage's figures, and, where the store registered its
model file, its version, that version's aliases and links.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vae_mnist.common import history
from vae_mnist.common.config import PARAMS_FILE, flatten, load_config, parse_yaml
from vae_mnist.common.errors import ConfigError, ReportError, VaeMnistError
from vae_mnist.common.pipeline import (
    FIGURES_DIR,
    METRICS_FILE,
    PER_DIGIT_FILE,
    PIPELINE_FILE,
)
from vae_mnist.common.quantities import EPOCH_NAMES, TEST, metric
from vae_mnist.tracking import versions
from vae_mnist.tracking.lineage import read_lineage
from vae_mnist.tracking.registry import champion_of
from vae_mnist.tracking.store import require_store, shown_uri

WORKSPACE = "workspace"
DVC_LOCK = "dvc.lock"
_VERSION = re.compile(r"v?\d+|@.+")  # 3, v3, @champion: a registered version, never a revision


@dataclass(frozen=True)
class Tracked:
    """Where the store holds a side: its registered version and that version's standing."""

    model: str
    version: str
    aliases: tuple[str, ...]
    run_url: str
    version_url: str
    champion: str | None  # the version that holds the champion alias now


@dataclass(frozen=True)
class Side:
    name: str  # as the user named it
    label: str  # what it is: `workspace`, `HEAD (e2eb3e1)`, `experiment lr2 (7db3085)`, ...
    params: dict[str, str]
    metrics: dict[str, float]  # test/<quantity>
    test_images: str  # which test images evaluation used (metrics.json's own line)
    per_digit: dict[str, dict[str, float]]
    curves: dict[str, list[tuple[int, float]]]  # history quantity -> (epoch, value)
    figures: dict[str, bytes]  # file name -> PNG
    model_sha256: str | None
    tracked: Tracked | None
    notes: list[str] = field(default_factory=list)


class Files:
    """The files of a tree: the workspace's own, or DVC's view of a commit."""

    def __init__(
        self,
        read: Callable[[str], bytes | None],
        listed: Callable[[str], list[str]],
        cached: bool = False,
    ) -> None:
        self.read, self.listed = read, listed
        self.cached = cached  # the outs come from the DVC cache (a commit), not the workspace

    @classmethod
    def workspace(cls, root: Path) -> Files:
        def read(path: str) -> bytes | None:
            return (root / path).read_bytes() if (root / path).is_file() else None

        def listed(folder: str) -> list[str]:
            found = root / folder
            return sorted(p.name for p in found.iterdir() if p.is_file()) if found.is_dir() else []

        return cls(read, listed)

    @classmethod
    def revision(cls, root: Path, commit: str, label: str) -> Files:
        # DVC takes a second to load: only for a revision or an experiment
        from dvc.api import DVCFileSystem

        fs = DVCFileSystem(str(root), rev=commit)

        def read(path: str) -> bytes | None:
            if not fs.isfile(path):
                return None
            try:
                return fs.read_bytes(path)
            except Exception as error:  # an out whose files neither the cache nor a remote has
                raise ReportError(
                    f"{label}: {path} is in its dvc.lock but not in the DVC cache or remote "
                    f"({type(error).__name__}): `dvc pull` it, or `dvc repro` at that commit"
                ) from None

        def listed(folder: str) -> list[str]:
            if not fs.isdir(folder):
                return []
            return sorted(Path(p).name for p in fs.ls(folder, detail=False) if fs.isfile(p))

        return cls(read, listed, cached=True)


def resolve(ref: str, root: Path, model_name: str) -> Side:
    """The side `ref` names: `workspace`, a version (3, v3, @alias), a git revision, a DVC
    experiment, or an alias (champion); ReportError when it is none of them."""
    if ref == WORKSPACE:
        return from_files(ref, WORKSPACE, Files.workspace(root), model_name)
    if _VERSION.fullmatch(ref):
        return from_version(ref, model_name)
    if (found := revision(root, ref)) is not None:
        commit, label = found
        return from_files(ref, label, Files.revision(root, commit, label), model_name)
    try:
        return from_version(ref, model_name)
    except ReportError as error:
        raise ReportError(
            f"{ref!r} is no git revision or DVC experiment of this repository, nor a version "
            f"of {model_name} ({error})"
        ) from None


def revision(root: Path, ref: str) -> tuple[str, str] | None:
    """(commit, label) of a git revision or a DVC experiment; None: `ref` is neither."""
    # DVC takes a second to load: only for a revision or an experiment
    from dvc.repo import Repo
    from dvc.repo.experiments.utils import resolve_name
    from dvc.scm import RevError, resolve_rev

    with Repo(str(root)) as repo:
        try:
            commit = resolve_rev(repo.scm, ref)
        except RevError:
            return None
        experiment = ref not in ("HEAD",) and resolve_name(repo.scm, ref).get(ref) is not None
        try:
            own = repo.scm.resolve_rev(ref) == commit  # a branch, tag or commit of git's own
        except Exception:
            own = False
    kind = "experiment " if experiment and not own else ""
    return commit, f"{kind}{ref} ({commit[:7]})"


def from_files(name: str, label: str, files: Files, model_name: str) -> Side:
    """A side from a tree's files: params.yaml, and the train and evaluate stages' outs."""
    notes: list[str] = []
    params = params_of(files, label, notes)
    found = outs(files, label)
    evaluation, model_file, history_dir = found.evaluation, found.model, found.history
    document = files.read(f"{evaluation}/{METRICS_FILE}")
    if document is None and files.cached and evaluation in (files.read(DVC_LOCK) or b"").decode():
        raise ReportError(
            f"{label}: its {evaluation} (in its {DVC_LOCK}) is neither in the DVC cache nor in a "
            "remote: `dvc fetch --all-commits` brings it from a remote, or `dvc repro` there"
        )
    if document is None:
        raise ReportError(
            f"{label} has no evaluation: no {evaluation}/{METRICS_FILE} (run `dvc repro` there, "
            "or compare another side)"
        )
    evaluated = json.loads(document)
    records = json.loads(files.read(f"{evaluation}/{PER_DIGIT_FILE}") or b"[]")
    curves = {}
    for quantity in EPOCH_NAMES.values():
        text = files.read(history.metric_file(Path(history_dir), quantity).as_posix())
        if text is not None:
            curves[quantity] = history.parse(text.decode("utf-8"), quantity)
    folder = f"{evaluation}/{FIGURES_DIR}"
    figures = {
        f: files.read(f"{folder}/{f}") or b"" for f in files.listed(folder) if f.endswith(".png")
    }
    model = files.read(model_file)
    digest = hashlib.sha256(model).hexdigest() if model is not None else None
    return Side(
        name=name,
        label=label,
        params=params,
        metrics={metric(TEST, k): float(v) for k, v in sorted(evaluated[TEST].items())},
        test_images=str(evaluated.get("test_images", "")),
        per_digit=_per_digit(records),
        curves=curves,
        figures=figures,
        model_sha256=digest,
        tracked=tracked_by_model(model_name, digest, notes) if digest else None,
        notes=notes,
    )


def params_of(files: Files, label: str, notes: list[str] | None = None) -> dict[str, str]:
    """params.yaml as MLflow logs it (strings), validated as the stages validate it; an older
    params.yaml that today's rules reject is shown as written (and `notes` say why)."""
    text = files.read(PARAMS_FILE.as_posix())
    if text is None:
        raise ReportError(f"{label} has no {PARAMS_FILE}")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / PARAMS_FILE).write_bytes(text)
        try:
            return {
                k: str(v)
                for k, v in sorted(load_config(Path(folder) / PARAMS_FILE).effective().items())
            }
        except ConfigError as error:
            said = str(error).replace(folder + "/", "")
    try:
        raw = parse_yaml(text, f"{label}: {PARAMS_FILE}")
    except ConfigError:
        raw = None
    if not isinstance(raw, dict):
        raise ReportError(f"{label}: {said}")
    if notes is not None:
        notes.append(f"its {said} (today's rules): its params are shown as written")
    return {k: str(v) for k, v in sorted(flatten(raw).items())}


@dataclass(frozen=True)
class Outs:
    """Where a tree's dvc.yaml puts what the report reads, found by role rather than by stage or
    position, so a stage added between train and evaluate (or an out added to one) moves nothing:
    the model is the registered artifact, the evaluation the out holding the metrics file, the
    history the out holding the plotted training curves."""

    model: str
    history: str
    evaluation: str


def outs(files: Files, label: str) -> Outs:
    declared = parse_yaml(files.read(PIPELINE_FILE) or b"{}", f"{label}: {PIPELINE_FILE}")
    declared = declared if isinstance(declared, dict) else {}
    paths = [
        o if isinstance(o, str) else next(iter(o))
        for stage in (declared.get("stages") or {}).values()
        for o in (stage.get("outs") or [])
    ]
    models = [a.get("path") for a in (declared.get("artifacts") or {}).values()
              if a.get("type") == "model"]  # fmt: skip
    metrics = [str(m) for m in declared.get("metrics") or []]
    curves = [str(y) for plot in declared.get("plots") or [] if isinstance(plot, dict)
              for spec in plot.values() for y in (spec.get("y") or {})]  # fmt: skip

    def holding(files_: list[str], but: tuple[str, ...] = ()) -> list[str]:
        return [p for p in paths if p not in but and any(f.startswith(f"{p}/") for f in files_)]

    evaluation = holding(metrics)
    history = holding(curves, but=tuple(evaluation))
    if len(models) != 1 or models[0] not in paths or len(evaluation) != 1 or len(history) != 1:
        raise ReportError(
            f"{label}: its {PIPELINE_FILE} is not this pipeline's (one model artifact, one out "
            "holding the metrics file, one holding the training curves)"
        )
    return Outs(models[0], history[0], evaluation[0])


def _per_digit(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {str(r["digit"]): {k: float(v) for k, v in r.items() if k != "digit"} for r in records}


def tracked_by_model(model_name: str, digest: str, notes: list[str]) -> Tracked | None:
    """The version that registered these model bytes, if the store holds one."""
    try:
        require_store()
        number = versions.with_model(model_name, digest)
    except VaeMnistError as error:
        notes.append(f"not looked up in the MLflow store: {error}")
        return None
    if number is None:
        notes.append(f"no version of {model_name} in {shown_uri()} has this model file")
        return None
    return tracked(model_name, number)


def tracked(model_name: str, number: str) -> Tracked:
    record = versions.record(model_name, number)
    return Tracked(
        model=model_name,
        version=number,
        aliases=record.aliases,
        run_url=record.run_url,
        version_url=versions.version_url(model_name, number),
        champion=champion_of(model_name),
    )


def from_version(ref: str, model_name: str) -> Side:
    """A registered version: its training run (params, curves, test metrics, figures) and its
    latest evaluation (per-digit means, which test images)."""
    try:
        require_store()
        number = versions.find_version(model_name, ref)
    except VaeMnistError as error:
        raise ReportError(str(error)) from None
    label = f"{model_name} v{number}"
    lineage = read_lineage(model_name, number)
    if not lineage.metrics:
        raise ReportError(f"{label} has no evaluation: its training run holds no test metrics")
    with tempfile.TemporaryDirectory() as folder:
        wanted = [METRICS_FILE, PER_DIGIT_FILE]
        run = lineage.evaluation_run
        found = versions.run_files(run, wanted, Path(folder)) if run else {}
        evaluated = json.loads(found[METRICS_FILE].read_text()) if METRICS_FILE in found else {}
        records = json.loads(found[PER_DIGIT_FILE].read_text()) if PER_DIGIT_FILE in found else []
        figures_dir = versions.run_folder(lineage.run_id, FIGURES_DIR, Path(folder) / "run")
        pictures = sorted(figures_dir.glob("*.png")) if figures_dir else []
        figures = {p.name: p.read_bytes() for p in pictures}
    return Side(
        name=ref,
        label=label,
        params=dict(sorted(lineage.params.items())),
        metrics=lineage.metrics,
        test_images=str(evaluated.get("test_images", "")),
        per_digit=_per_digit(records),
        curves=versions.history(lineage.run_id, list(EPOCH_NAMES.values())),
        figures=figures,
        model_sha256=lineage.model_sha256,
        tracked=tracked(model_name, number),
    )
