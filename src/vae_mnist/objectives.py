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
