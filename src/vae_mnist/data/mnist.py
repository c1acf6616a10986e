"""The four MNIST files as published: names, the digest and size of each one's content, and which
two make each split (the shapes they hold: common/mnist.py)."""

from __future__ import annotations

from dataclasses import dataclass

from vae_mnist.common.quantities import TEST, TRAIN


@dataclass(frozen=True)
class MnistFile:
    name: str
    sha256: str  # of the decompressed IDX content: any honest gzip of the file matches
    size: int  # decompressed bytes


MNIST_FILES: dict[str, MnistFile] = {
    f.name: f
    for f in (
        MnistFile(
            "train-images-idx3-ubyte.gz",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            47_040_016,
        ),
        MnistFile(
            "train-labels-idx1-ubyte.gz",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            60_008,
        ),
        MnistFile(
            "t10k-images-idx3-ubyte.gz",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            7_840_016,
        ),
        MnistFile(
            "t10k-labels-idx1-ubyte.gz",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            10_008,
        ),
    )
}
SPLIT_FILES = {
    TRAIN: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    TEST: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
