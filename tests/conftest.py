"""Shared fixtures: the read-only reference data in ../shared (LLP annotations, one real clip)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    env = os.environ.get("AVVP_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = _shared()
    if not (path / "llp").is_dir():
        pytest.skip(f"reference data not found at {path} (set AVVP_SHARED)")
    return path


@pytest.fixture(scope="session")
def llp_dir(shared_dir: Path) -> Path:
    return shared_dir / "llp"


@pytest.fixture(scope="session")
def sample_clip(shared_dir: Path) -> Path:
    return shared_dir / "llp" / "sample" / "BjCEufrlXm4.mp4"


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread (and leave the other core to other jobs);
    the setting is restored for the next test module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # yt-dlp closes its first probe request early; that is not an error here


@pytest.fixture()
def server(tmp_path_factory, sample_clip):
    """Serve a folder holding the real sample clip as ``BjCEufrlXm4.mp4`` on 127.0.0.1 (tests never
    use the internet); yields (url_template, served folder, paths requested)."""
    root = tmp_path_factory.mktemp("www")
    shutil.copy(sample_clip, root / "BjCEufrlXm4.mp4")
    hits: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            hits.append(self.path)
            super().do_GET()

    srv = _Server(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/{{id}}.mp4", root, hits
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """One uninterrupted run of every stage of the DAG through the CLI on tiny data (the fault
    matrix's reference, tests/test_fault_matrix.py); the matrix table is written when it ends."""
    from test_fault_matrix import reference_run

    yield from reference_run(tmp_path_factory)
