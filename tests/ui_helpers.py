"""Helpers shared by the UI tests: a service over its own copy of the seed index, a live server."""

from __future__ import annotations

import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

from rag import Pipeline, Settings, load_index
from ui.app import build_app, launch
from ui.service import Service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_service(
    root: Path, seed_settings, embedder, generator=None, reader=None, **changes
) -> Service:
    """A service over its own copy of the seed index, so uploads and removals stay local."""
    index_dir = root / "index"
    shutil.copytree(seed_settings.index_dir, index_dir)
    settings = Settings.load(
        env={},
        index_dir=str(index_dir),
        models_dir=str(root / "models"),
        port=free_port(),
        **changes,
    )
    index = load_index(settings, embedder)
    return Service(settings, embedder, Pipeline(settings, index, embedder, generator, reader))


@contextmanager
def running(service: Service, auth=None):
    """The app on 127.0.0.1:<free port>; yields its URL, closes the server after."""
    demo = build_app(service)
    _, url, _ = launch(demo, service.settings, auth=auth, block=False, quiet=True)
    try:
        yield url
    finally:
        demo.close()
