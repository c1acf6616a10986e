"""The plane the latent space is shown on: the latent plane itself when it has two dimensions,
else the plane through the mean of the test set's latent means along their top two principal
directions. The figures draw on it, and the explorer maps clicks on it back to latent codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatentPlane:
    """`origin + coordinates @ basis` is the latent code at plane coordinates (x, y); `scale` is
    the standard deviation of the latent means along each axis."""

    origin: np.ndarray  # (d,)
    basis: np.ndarray  # (2, d), orthonormal rows
    scale: np.ndarray  # (2,)
    axes: str  # the axes' names, "first, second"

    @classmethod
    def of(cls, z_mean: np.ndarray) -> LatentPlane:
        """The plane of these latent means. The principal directions come from a thin SVD of
        the (N, d) centred means: no N x N matrix, whatever N."""
        d = z_mean.shape[1]
        if d == 2:
            identity = np.eye(2)
            return cls(np.zeros(2, np.float32), identity, z_mean.std(axis=0), "z[0], z[1]")
        origin = z_mean.mean(axis=0)
        centred = z_mean - origin
        _, s, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
        return cls(origin, vt[:2], s[:2] / np.sqrt(len(z_mean)), "PC 1, PC 2")

    @property
    def principal(self) -> bool:
        """Whether the plane is a projection (latent_dim > 2) rather than the latent plane."""
        return self.basis.shape[1] != 2

    def project(self, z: np.ndarray) -> np.ndarray:
        """(N, 2) plane coordinates of (N, d) latent codes."""
        if not self.principal:
            return z
        return (z - self.origin) @ self.basis.T

    def lift(self, points: np.ndarray) -> np.ndarray:
        """(N, d) float32 latent codes at (N, 2) plane coordinates."""
        if not self.principal:
            return np.asarray(points, np.float32)
        return (self.origin + np.asarray(points) @ self.basis).astype(np.float32)
