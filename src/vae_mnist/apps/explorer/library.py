"""The versions the explorer has loaded: each one's decoder, compiled once, its latent plane and
the test set's latent means from its evaluation; loaded on first use and kept."""

from __future__ import annotations

import base64
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vae_mnist.common.errors import DataError, ExplorerError
from vae_mnist.common.pipeline import LATENT_FILES
from vae_mnist.common.quantities import TEST
from vae_mnist.data.arrays import load_split
from vae_mnist.evaluation.plane import LatentPlane
from vae_mnist.tracking import versions
from vae_mnist.tracking.versions import VersionRecord

MAX_POINTS = 1024  # per decode request
MAX_STEPS = 64  # per interpolation
KEPT = 8  # loaded versions kept; the least recently used goes first


def pixels(images: np.ndarray) -> list[str]:
    """Each (28, 28) image in [0, 1] as base64 of its 784 bytes (0 = white, 255 = ink): what
    the page paints, far smaller than JSON numbers."""
    grey = np.clip(np.rint(np.asarray(images) * 255), 0, 255).astype(np.uint8)
    return [base64.b64encode(image.tobytes()).decode("ascii") for image in grey]


def compiled_decoder(checkpoint: Path) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """The checkpoint's decoder as one compiled function, codes (N, d) -> images (N, 28, 28) in
    [0, 1]; and d. Compiled for any N, so a request never waits on a retrace."""
    # TensorFlow takes seconds to load: only when this runs
    import keras
    import tensorflow as tf

    from vae_mnist.model.files import load_vae

    decoder = load_vae(checkpoint).decoder
    latent_dim = int(decoder.inputs[0].shape[-1])
    signature = [tf.TensorSpec([None, latent_dim], tf.float32)]

    @tf.function(input_signature=signature)
    def decode(codes: tf.Tensor) -> tf.Tensor:
        return keras.ops.sigmoid(decoder(codes, training=False))[..., 0]

    decode(tf.zeros([1, latent_dim]))  # traced now, not on the page's first click
    return (lambda codes: decode(np.asarray(codes, np.float32)).numpy()), latent_dim


@dataclass(frozen=True)
class Explorable:
    """One version, ready to decode anywhere on its plane."""

    record: VersionRecord
    decode: Callable[[np.ndarray], np.ndarray]
    plane: LatentPlane
    z_mean: np.ndarray  # (N, d), the test set's latent means
    labels: np.ndarray  # (N,)

    @property
    def latent_dim(self) -> int:
        return self.z_mean.shape[1]

    def at(self, points: np.ndarray) -> np.ndarray:
        """The decoder's images at plane coordinates (N, 2)."""
        return self.decode(self.plane.lift(points))

    def between(self, a: int, b: int, steps: int) -> np.ndarray:
        """The decoder's images along the straight line from test image a's code to b's."""
        for index in (a, b):
            if not 0 <= index < len(self.z_mean):
                raise ExplorerError(f"no test image {index}: there are {len(self.z_mean)}")
        t = np.linspace(0, 1, steps, dtype=np.float32)[:, None]
        return self.decode((1 - t) * self.z_mean[a] + t * self.z_mean[b])


class Library:
    """The registered model's versions, each loaded once, into one temporary folder."""

    def __init__(self, model_name: str, test_images: Path | None = None) -> None:
        self.model_name = model_name
        self._folder = tempfile.TemporaryDirectory(prefix="vae-explorer-")
        self._loaded: dict[str, Explorable] = {}
        self._lock = threading.Lock()
        self.test_images = _test_images(test_images)

    def close(self) -> None:
        self._folder.cleanup()

    def version(self, ref: str) -> str:
        """The version number a number or an alias names now (an alias may have moved)."""
        return versions.find_version(self.model_name, ref)

    def get(self, ref: str) -> Explorable:
        """The version, loaded; a version already loaded costs no call to the store."""
        number = ref if ref.isdigit() and ref in self._loaded else self.version(ref)
        with self._lock:
            if (found := self._loaded.pop(number, None)) is None:
                found = self._load(number)
            self._loaded[number] = found  # now the most recently used
            while len(self._loaded) > KEPT:
                del self._loaded[next(iter(self._loaded))]
            return found

    def _load(self, number: str) -> Explorable:
        record = versions.record(self.model_name, number)
        folder = Path(self._folder.name) / number
        checkpoint = versions.download_checkpoint(self.model_name, number, folder / "model")
        latent = versions.download_latent(self.model_name, number, record.run_id, folder)
        z_mean, labels = (np.load(latent / name, allow_pickle=False) for name in LATENT_FILES)
        try:
            decode, latent_dim = compiled_decoder(checkpoint)
        except DataError as error:
            raise ExplorerError(
                f"{self.model_name} v{number} has no usable decoder: {error}"
            ) from None
        if z_mean.ndim != 2 or z_mean.shape != (len(labels), latent_dim):
            raise ExplorerError(
                f"{self.model_name} v{number}: its latent means have shape {z_mean.shape}, not "
                f"({len(labels)}, {latent_dim}) as its decoder and labels say"
            )
        return Explorable(record, decode, LatentPlane.of(z_mean), z_mean, labels)


def _test_images(folder: Path | None) -> np.ndarray | None:
    """The test images the page shows beside the decoder's, from the preprocess stage's folder;
    None (the page shows the decoder's images only) when it is not there."""
    if folder is None or not folder.is_dir():
        return None
    return load_split(folder, TEST)[0]
