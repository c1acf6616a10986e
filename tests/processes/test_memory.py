"""The real evaluate script refuses an evaluate.iwae_samples that would not fit, before any
work. The estimate itself: tests/unit/evaluation/test_memory.py."""

from pathlib import Path

from tests.support.memory import decoder
from tests.support.paths import REPO
from tests.support.scripts import one_error_line, run_script
from vae_mnist.common.config import Config
from vae_mnist.model.files import save_vae


def test_the_evaluate_script_refuses_such_a_k_before_any_work(
    config: Config, tmp_path: Path
) -> None:
    """The real evaluate script, as DVC runs it: exit 2, one line, no outs and no MLflow store.
    Its decoder (512 latent dimensions, then 2,048 and 8,192 units) holds 11,264 floats a row:
    100,000 samples of it (the most params.yaml allows) would take 4.2 GiB."""
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    (tmp_path / "params.yaml").write_text(
        text.replace("[512, 256, 128]", "[8192, 2048]")
        .replace("latent_dim: 2", "latent_dim: 512")
        .replace("iwae_samples: 100", "iwae_samples: 100000"),
        encoding="utf-8",
    )
    (tmp_path / "dvc.yaml").write_bytes((REPO / "dvc.yaml").read_bytes())
    model = tmp_path / "vae.keras"
    save_vae(decoder(config, hidden_units=[8192, 2048], latent_dim=512), model)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_script(
        tmp_path, "evaluate.py", str(model), "processed", "history", "evaluation",
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert line.startswith("error: params.yaml: evaluate.iwae_samples = 100000 is not allowed")
    assert "11264 floats" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no outs, no mlflow.db
