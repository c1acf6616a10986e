"""DVC stage `download`: the four MNIST files, verified, into the folder given.

Mirrors: the public ones, or the directory or URL in MNIST_MIRROR.
"""

import argparse
from pathlib import Path

from vae_mnist.common.config import load_config
from vae_mnist.common.errors import reports_errors


@reports_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path, help="where the .gz files go (a DVC out)")
    args = parser.parse_args()
    config = load_config()  # a bad param fails at once, before the heavy imports below
    from vae_mnist.stages.download import download

    download(config, args.out_dir)


if __name__ == "__main__":
    main()
