"""DVC stage `evaluate`: test metrics and figures of the trained VAE; the `champion` alias."""

import argparse
from pathlib import Path

from vae_mnist.common.config import load_config
from vae_mnist.common.errors import reports_errors
from vae_mnist.common.tensorflow_env import quiet_tensorflow


@reports_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path, help="the train stage's .keras file")
    parser.add_argument("processed_dir", type=Path, help="the preprocess stage's folder")
    parser.add_argument("history", type=Path, help="the train stage's DVCLive folder")
    parser.add_argument(
        "out_dir", type=Path, help="where metrics.json, per_digit.json, figures/ and latent/ go"
    )
    args = parser.parse_args()
    config = load_config()  # a bad param fails at once, before the heavy imports below
    quiet_tensorflow(config.floats)  # before TensorFlow is imported (here, or a worker)
    from vae_mnist.stages.evaluate import evaluate

    metrics = evaluate(config, args.model, args.processed_dir, args.history, args.out_dir)
    test = metrics["test"]
    print(
        f"test -ELBO {test['neg_elbo']:.2f} nats, IWAE bound ({metrics['iwae_samples']} samples) "
        f"{test['neg_iwae']:.2f}, KL {test['kl']:.2f}, active units {test['active_units']}"
    )


if __name__ == "__main__":
    main()
