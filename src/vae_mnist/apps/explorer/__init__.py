"""The latent-space explorer: a local web page on the registered versions (`make explore`)."""
