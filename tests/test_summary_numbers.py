"""Numbers of metrics.json at their edges: a latent dimension is active only when the variance
of its mean is strictly above the threshold (Burda et al.'s Cov_x(E[z|x]) > 0.01)."""

from __future__ import annotations

import numpy as np

from vae_mnist.metrics import ACTIVE_UNIT_THRESHOLD, summarise


def test_a_latent_dimension_whose_variance_is_exactly_the_threshold_is_not_active() -> None:
    # first column: mean -0.2, variance (4 * 0.05**2 + 0.2**2) / 5 = 0.01 exactly in binary
    # floating point too; second: variance 0.24; third: constant
    z_mean = np.array(
        [
            [-0.25, 0.0, 1.0],
            [-0.25, 1.0, 1.0],
            [-0.25, 0.0, 1.0],
            [-0.25, 1.0, 1.0],
            [0.0, 0.0, 1.0],
        ],
        np.float32,
    )
    assert np.var(z_mean[:, 0].astype(np.float64)) == ACTIVE_UNIT_THRESHOLD
    terms = {name: np.ones(5) for name in ("reconstruction", "kl", "neg_elbo", "neg_iwae", "mse")}
    terms["z_mean"] = z_mean
    assert summarise(terms, np.arange(5, dtype=np.uint8))["test"]["active_units"] == 1
