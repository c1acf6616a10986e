"""Evaluation speed: the IWAE bound against this machine's GEMM limit, and the figures, in one run.

The IWAE bound with k samples on N test images runs the decoder k*N times (and the encoder N
times); its limit is the forward GEMMs of those passes at the measured numpy fp32 rate. Target:
within 2x of that limit; all figures together in a few seconds.

    python benchmarks/evaluate_throughput.py [--images 10000] [--samples 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from train_throughput import gemm_seconds, layer_shapes  # this folder's other benchmark

from vae_mnist.common.config import load_config
from vae_mnist.common.mnist import IMAGE_SHAPE
from vae_mnist.common.quantities import EPOCH_NAMES
from vae_mnist.training.callbacks import EpochLog

ROWS = 16_384  # GEMM rows per measured call, as evaluation batches them


def forward_gemm_seconds(shapes: list[tuple[int, int]], rows: int, repeats: int = 20) -> float:
    """Median seconds for one forward pass of `rows` rows through layers of these shapes."""
    rng = np.random.default_rng(0)
    operands = [
        (rng.standard_normal((rows, i), dtype=np.float32),
         rng.standard_normal((i, o), dtype=np.float32))
        for i, o in shapes
    ]  # fmt: skip
    return gemm_seconds(operands, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    config = load_config(args.params)
    encoder, decoder = layer_shapes(config)  # the built networks' Dense layers
    passes = args.images * args.samples
    limit = forward_gemm_seconds(decoder, ROWS) * passes / ROWS
    limit += forward_gemm_seconds(encoder, min(ROWS, args.images)) * args.images / ROWS
    flops = 2 * passes * sum(i * o for i, o in decoder)

    from vae_mnist.evaluation.metrics import per_image_terms, summarise
    from vae_mnist.model.vae import build_vae
    from vae_mnist.stages.evaluate import render_figures

    vae = build_vae(config.model, False, config.seed)
    rng = np.random.default_rng(0)
    images = rng.random((args.images, *IMAGE_SHAPE), dtype=np.float32)
    labels = (np.arange(args.images) % 10).astype(np.uint8)
    per_image_terms(vae, images[: 2 * ROWS // args.samples], args.samples, 0)  # compile
    start = time.perf_counter()
    terms = per_image_terms(vae, images, args.samples, 0)
    iwae = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as folder:
        history = Path(folder) / "training"  # one epoch, through the train stage's DVCLive logger
        epoch = dict(zip(EPOCH_NAMES, (200, 190, 10, 199, 189, 10, 1e-3, 1), strict=True))
        EpochLog(history).on_epoch_end(0, epoch)
        start = time.perf_counter()
        summary = summarise(terms, labels)
        render_figures(vae, images, labels, terms, summary, history, Path(folder), config.seed)
        figures = time.perf_counter() - start

    print(f"IWAE bound, k={args.samples}, {args.images} images: "
          f"{passes / 1e6:.1f}M decoder passes, {flops / 1e12:.2f} TFLOP")  # fmt: skip
    print(f"GEMM limit      {limit:7.2f} s")
    print(f"project         {iwae:7.2f} s  ({passes / iwae / 1e3:.0f}k decoder passes/s)")
    print(f"project / limit {iwae / limit:7.2f}x  (target <= 2)")
    print(f"all figures     {figures:7.2f} s")


if __name__ == "__main__":
    main()
