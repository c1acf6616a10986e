"""Model cards: the descriptions the Model Registry shows for the registered model and each version.

Plain text in, Markdown out (the MLflow UI renders descriptions as Markdown). The train stage
writes a version's card; the evaluate stage adds its test results under TEST_HEADING, replacing
any it added before, so that evaluating again never stacks two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vae_mnist.tracking import names

TEST_HEADING = "### Test results"


def model_description(model_name: str) -> str:
    """What every version of the registered model is, and how to use one."""
    return f"""\
Variational autoencoder on MNIST (Keras 3), trained by the vae-mnist DVC pipeline: an encoder to
a small latent space and a decoder back, of the kind params.yaml's `model.kind` names (each
version's card gives its network), trained on the negative ELBO (binary cross-entropy over 784
pixels + KL, in nats per image).

Each version is one training run; its description is its model card (data, params, validation
and test numbers, figures). The alias `{names.CHAMPION}` points at the version with the lowest
test -ELBO.

- Served model (an image batch of shape (n, 28, 28) in [0, 1] -> its reconstruction):
  `mlflow.pyfunc.load_model("models:/{model_name}@{names.CHAMPION}")`
- The whole VAE (encoder, decoder, sampling; what the evaluate stage measures):
  `{names.CHECKPOINT}/vae.keras` in the version's files, the same bytes as the DVC artifact;
  load it with `vae_mnist.model.vae.load_vae`."""


def version_card(
    model_name: str,
    version: str,
    run_id: str,
    params: Mapping[str, Any],
    data: Mapping[str, str],
    summary: Mapping[str, float],
    digest: str,
    machine: Mapping[str, Any],
    network: str,
) -> str:
    """A version's card as the train stage knows it: its network, where it came from, on what
    machine, and how it validated."""
    lines = [
        f"**{model_name} v{version}**, trained by run `{run_id}`.",
        "",
        f"Network ({network.split(':')[0]}): {network.split(': ', 1)[-1]}.",
        "",
        "Data (MLflow dataset digests): "
        + ", ".join(f"`{names.dataset_name(split)}` {d}" for split, d in data.items()),
        "",
        "Validation, at the epoch whose weights it holds (nats per image): "
        + ", ".join(f"{name} {_number(value)}" for name, value in summary.items()),
        "",
        "Params: " + ", ".join(f"`{key}={value}`" for key, value in params.items()),
        "",
        f"Checkpoint `{names.CHECKPOINT}/vae.keras`, sha256 `{digest}`.",
        "",
        machine_line(machine),
        f'Load: `mlflow.pyfunc.load_model("models:/{model_name}/{version}")`.',
    ]
    return "\n".join(lines)


def machine_line(machine: Mapping[str, Any]) -> str:
    """Where the version was computed (machine.fingerprint): the same machine id rebuilds the
    same bytes; another is expected to match within seed noise."""
    settings = ", ".join(f"{k}={v}" for k, v in machine["settings"].items()) or "none"
    isa = ", ".join(machine["isa"]) or "no vector extension known"
    lock = machine["uv_lock"][:12] if machine["uv_lock"] else "none"
    software = ", ".join(
        f"{name} {machine[key]}"
        for name, key in (("Python", "python"), ("TensorFlow", "tensorflow"), ("Keras", "keras"),
                          ("NumPy", "numpy"))
    )  # fmt: skip
    return (
        f"Machine `{machine['id']}`: {machine['cpu']} ({isa}), {machine['cores']} cores; "
        f"{software}; settings {settings}; uv.lock sha256 `{lock}`."
    )


def with_test_results(
    card: str, run_id: str, metrics: Mapping[str, float], figures_uri: str
) -> str:
    """The card with the evaluate stage's results in place of any earlier ones."""
    kept = card.split(TEST_HEADING)[0].rstrip()
    section = [
        TEST_HEADING,
        "",
        f"Evaluated by run `{run_id}` (nats per image unless named otherwise): "
        + ", ".join(f"{name} {_number(value)}" for name, value in metrics.items()),
        "",
        f"Figures: `{figures_uri}`",
    ]
    return "\n\n".join(part for part in (kept, "\n".join(section)) if part)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.7g}"
