"""`python -m vae_mnist`: the same as the `vae-mnist` command."""

from vae_mnist.cli import main

main()
