"""DVC stage `preprocess`: raw IDX files -> float32 train/val/test arrays and their stats."""

import argparse
from pathlib import Path

from vae_mnist.common.config import load_config
from vae_mnist.common.errors import reports_errors


@reports_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_dir", type=Path, help="the download stage's folder")
    parser.add_argument("out_dir", type=Path, help="where the arrays go (a DVC out)")
    args = parser.parse_args()
    config = load_config()  # a bad param fails at once, before the heavy imports below
    from vae_mnist.stages.preprocess import preprocess

    preprocess(config, args.raw_dir, args.out_dir)


if __name__ == "__main__":
    main()
