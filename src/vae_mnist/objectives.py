"""The VAE's objective in nats per image: reconstruction, KL, their sum (the negative ELBO).

Bernoulli likelihood on the 784 pixels, computed from logits so that it stays finite where the
decoder is confident, and summed over pixels (not averaged): the classic script's
`binary_crossentropy * 784`, and the unit papers report MNIST results in.
"""

from __future__ import annotations

from keras import ops


def reconstruction_nats(x, logits):
    """-log p(x|z) per image: sigmoid cross-entropy summed over pixels; x and logits (B, ...)."""
    x = ops.reshape(x, (ops.shape(x)[0], -1))
    logits = ops.reshape(logits, (ops.shape(logits)[0], -1))
    # softplus(l) - x*l == -[x log s(l) + (1-x) log(1-s(l))], without computing log(s(l)).
    return ops.sum(ops.softplus(logits) - x * logits, axis=-1)


def kl_nats(z_mean, z_log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per image, in closed form."""
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


LOG_2PI = 1.8378770664093453


def gaussian_log_density(z, mean, log_var):
    """log N(z; mean, exp(log_var)) summed over the last axis."""
    return -0.5 * ops.sum(LOG_2PI + log_var + ops.square(z - mean) * ops.exp(-log_var), axis=-1)


def log_importance_weights(log_px_z, z, z_mean, z_log_var):
    """log w = log p(x|z) + log p(z) - log q(z|x); z (k, B, latent), log_px_z (k, B)."""
    log_pz = gaussian_log_density(z, ops.zeros_like(z), ops.zeros_like(z))
    log_qz = gaussian_log_density(z, z_mean[None], z_log_var[None])
    return log_px_z + log_pz - log_qz


def iwae_bound(log_weights):
    """The importance-weighted bound (Burda et al. 2015) per image from log weights (k, B):
    log (1/k) sum_k w_k, through a stable log-sum-exp. k = 1 gives the ELBO estimate."""
    k = ops.shape(log_weights)[0]
    return ops.logsumexp(log_weights, axis=0) - ops.log(ops.cast(k, log_weights.dtype))
