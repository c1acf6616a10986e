"""The explorer's web app: one page, and the JSON endpoints it calls.

Every failure the user can fix (no such version, no decoder, a store that stopped answering, a
request out of range) answers `{"error": "<one line>"}` with a 4xx/5xx status, which the page
shows in its banner, and is logged as that one line: never a stack trace.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from vae_mnist.apps.explorer.library import MAX_POINTS, MAX_STEPS, Library, pixels
from vae_mnist.common.errors import ExplorerError, TrackingError
from vae_mnist.tracking import versions
from vae_mnist.tracking.store import shown_uri

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("vae_mnist.apps.explorer")
Point = Annotated[list[float], Field(min_length=2, max_length=2)]


class DecodeRequest(BaseModel):
    version: str
    points: list[Point] = Field(min_length=1, max_length=MAX_POINTS)


def _problem(status: int, message: str) -> JSONResponse:
    log.error("%s", message)
    return JSONResponse({"error": message}, status_code=status)


def create_app(library: Library, default: str) -> FastAPI:
    """The app over `library`; `default` names the version the page opens on (a number or an
    alias, looked up on each visit: an alias may have moved)."""
    app = FastAPI(title="vae-mnist explorer", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(ExplorerError)
    def not_found(_: Request, error: ExplorerError) -> JSONResponse:
        return _problem(404, str(error))

    @app.exception_handler(TrackingError)
    def store_down(_: Request, error: TrackingError) -> JSONResponse:
        return _problem(503, str(error))

    @app.exception_handler(RequestValidationError)
    def bad_request(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if part != "body")
        return _problem(422, f"bad request: {where}: {first['msg']}")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/versions")
    def all_versions() -> dict:
        """Every version, newest first, with its aliases, test metrics and run link."""
        records = versions.describe(library.model_name)
        return {
            "model": library.model_name,
            "store": shown_uri(),
            "default": library.version(default),
            "versions": [record.__dict__ for record in records],
        }

    @app.get("/api/versions/{ref}")
    def version(ref: str) -> dict:
        """A version (number or alias), loaded: its plane and the test set's points on it."""
        shown = library.get(ref)
        points = np.round(shown.plane.project(shown.z_mean), 4)
        return {
            **shown.record.__dict__,
            "latent_dim": shown.latent_dim,
            "axes": shown.plane.axes.split(", "),
            "principal": shown.plane.principal,
            "points": points.tolist(),
            "labels": shown.labels.tolist(),
            "test_images": _matching_test_images(library, len(shown.labels)),
        }

    @app.post("/api/decode")
    def decode(request: DecodeRequest) -> dict:
        """The version's decoder at points of its plane."""
        shown = library.get(request.version)
        images = shown.at(np.asarray(request.points, np.float64))
        return {"version": shown.record.version, "images": pixels(images)}

    @app.get("/api/interpolate")
    def interpolate(
        version: str,
        a: Annotated[int, Query(ge=0)],
        b: Annotated[int, Query(ge=0)],
        steps: Annotated[int, Query(ge=2, le=MAX_STEPS)] = 10,
    ) -> dict:
        """The decoder along the line between test images a and b's latent means."""
        shown = library.get(version)
        images = shown.between(a, b, steps)
        return {
            "version": shown.record.version,
            "images": pixels(images),
            "labels": [int(shown.labels[a]), int(shown.labels[b])],
        }

    @app.get("/api/test-images/{index}")
    def test_image(index: int) -> dict:
        """A test image as the preprocess stage wrote it, to show beside the decoder's."""
        images = library.test_images
        if images is None:
            raise ExplorerError("no test images here: the preprocess stage's folder is missing")
        if not 0 <= index < len(images):
            raise ExplorerError(f"no test image {index}: there are {len(images)}")
        return {"index": index, "image": pixels(images[index : index + 1])[0]}

    return app


def _matching_test_images(library: Library, count: int) -> bool:
    """Whether the local test images are the ones the version's latent means belong to."""
    return library.test_images is not None and len(library.test_images) == count
