"""Model cards: what the registry shows for each version, and evaluating again never stacks two."""

from __future__ import annotations

import keras

from vae_mnist.common.config import Config
from vae_mnist.model.vae import build_vae, describe
from vae_mnist.tracking.cards import (
    TEST_HEADING,
    model_description,
    version_card,
    with_test_results,
)

MACHINE = {
    "id": "68ff23331cca", "cpu": "AMD EPYC (family 25, model 17, stepping 1)",
    "isa": ["avx2", "avx512f"], "cores": 2, "python": "3.11.7", "tensorflow": "2.21.0",
    "keras": "3.15.1", "numpy": "2.4.6", "settings": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "uv_lock": "ad5b17fcc369e2adb2dab14d65914ee409caac8df525ee81c356259d3d803e00",
}  # fmt: skip


CARD = version_card(
    "vae-mnist", "3", "run123", {"train.epochs": 12}, {"train": "ab12", "val": "cd34"},
    {"best_epoch": 12, "best.val/neg_elbo": 142.66077}, "f00d", MACHINE,
    "mlp: encoder images 28x28, dense_0 16, z_mean 2; decoder z 2, logits 784",
)  # fmt: skip


def test_a_version_card_says_where_the_model_came_from_and_how_to_load_it() -> None:
    assert "trained by run `run123`" in CARD
    assert "`mnist-train` ab12, `mnist-val` cd34" in CARD
    assert "best_epoch 12, best.val/neg_elbo 142.6608" in CARD  # seven significant digits
    assert "`train.epochs=12`" in CARD and "sha256 `f00d`" in CARD
    assert 'mlflow.pyfunc.load_model("models:/vae-mnist/3")' in CARD
    assert TEST_HEADING not in CARD


def test_a_version_card_names_its_kind_and_network_layer_by_layer(tiny: Config) -> None:
    assert "Network (mlp): encoder images 28x28, dense_0 16, z_mean 2; decoder z 2" in CARD
    keras.backend.clear_session()  # Keras' layer-name counters, as in a fresh stage
    vae = build_vae(tiny.model, True, 0)
    assert describe(vae, "mlp") == (
        "mlp: encoder images 28x28, flatten 784, dense_0 32, dense_1 16, z_mean 3, z_log_var 3; "
        "decoder z 3, dense_0 16, dense_1 32, logits 784, image_logits 28x28x1"
    )


def test_a_version_card_names_the_machine_it_was_trained_on() -> None:
    assert (
        "Machine `68ff23331cca`: AMD EPYC (family 25, model 17, stepping 1) (avx2, avx512f), "
        "2 cores; Python 3.11.7, TensorFlow 2.21.0, Keras 3.15.1, NumPy 2.4.6; settings "
        "TF_ENABLE_ONEDNN_OPTS=0; uv.lock sha256 `ad5b17fcc369`."
    ) in CARD


def test_test_results_replace_earlier_ones_and_keep_the_rest() -> None:
    once = with_test_results(
        CARD, "eval1", {"test/neg_elbo": 141.4473, "test/mse": 0.0366491}, "runs:/run123/figures"
    )
    twice = with_test_results(once, "eval2", {"test/neg_elbo": 141.4473}, "runs:/run123/figures")
    assert once.startswith(CARD) and twice.startswith(CARD)
    assert twice.count(TEST_HEADING) == 1 and "eval1" not in twice and "eval2" in twice
    assert "test/neg_elbo 141.4473, test/mse 0.0366491" in once
    assert "Figures: `runs:/run123/figures`" in twice


def test_the_registered_model_says_what_champion_means_and_how_to_load_it() -> None:
    text = model_description("vae-mnist")
    assert 'mlflow.pyfunc.load_model("models:/vae-mnist@champion")' in text
    assert "lowest\ntest -ELBO" in text or "lowest test -ELBO" in text
    assert "checkpoint/vae.keras" in text
