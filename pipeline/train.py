"""DVC stage `train`: fit the VAE on the processed arrays; write the model and its history."""

import argparse
import sys
from pathlib import Path

from vae_mnist.common.config import load_config
from vae_mnist.common.errors import reports_errors
from vae_mnist.common.tensorflow_env import quiet_tensorflow
from vae_mnist.training.cluster import local_workers


@reports_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("processed_dir", type=Path, help="the preprocess stage's folder")
    parser.add_argument("model", type=Path, help="the .keras file to write (a DVC out)")
    parser.add_argument("history", type=Path, help="the DVCLive folder to write (DVC plots)")
    args = parser.parse_args()
    config = load_config()  # a bad param fails at once, before the heavy imports below
    quiet_tensorflow(config.floats)  # before TensorFlow is imported (here, or a worker)
    with local_workers(config.train.distribution, sys.argv):
        from vae_mnist.stages.train import train

        train(config, args.processed_dir, args.model, args.history)


if __name__ == "__main__":
    main()
