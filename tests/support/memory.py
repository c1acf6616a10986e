"""A built VAE of the MLP kind at given widths: the decoder whose layers the memory check reads."""

from tests.support.configs import override
from vae_mnist.common.config import Config
from vae_mnist.model.vae import build_vae


def decoder(config: Config, hidden_units: list[int], latent_dim: int | None = None):
    changes = {"model.mlp.hidden_units": hidden_units}
    if latent_dim is not None:
        changes["model.latent_dim"] = latent_dim
    return build_vae(override(config, changes).model, True, 0)
