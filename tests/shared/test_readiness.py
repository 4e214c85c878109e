"""Issue 43, item 1: readiness always arrives. A request that loads the model while the
warm-up thread does must break neither; a warm-up that fails says why on ``/ready``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import httpx
from fastapi.testclient import TestClient

from cubemem import MemoryOS
from cubemem.server.app import create_app
from cubemem.server.routes.service import Readiness

from .conftest import free_port, stop


def test_two_threads_loading_the_embedder_at_once_both_get_vectors():
    """Two fresh embedders in a fresh interpreter, each loaded by its own thread at the same
    moment, as the warm-up thread and a request's thread of ``cubemem serve`` do. Importing
    sentence-transformers from both at once broke one of them (a partly initialised
    ``transformers``: ``cannot import name 'is_torch_npu_available'``)."""
    code = textwrap.dedent(
        """
        import threading
        from cubemem import SentenceTransformerEmbedder

        start, errors, shapes = threading.Barrier(2), [], []

        def load():
            start.wait()
            try:
                shapes.append(SentenceTransformerEmbedder().embed_query("hello").shape)
            except BaseException as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=load) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert shapes == [(384,), (384,)], shapes
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_failed_warm_up_keeps_ready_at_503_with_the_reason(tmp_path, embedder):
    with MemoryOS(tmp_path / "m", embedder=embedder) as os_:
        app = create_app(os_)
        app.state.readiness = readiness = Readiness(ready=False)
        client = TestClient(app)

        def broken() -> dict:
            raise ImportError("cannot import name 'is_torch_npu_available'")

        readiness.run(broken)  # the warm-up thread's body: it must not die silently
        answer = client.get("/ready")
        assert answer.status_code == 503
        assert answer.json()["status"] == "failed"
        assert "is_torch_npu_available" in answer.json()["reason"]
        assert client.get("/health").json()["ready"] is False


def test_readiness_ends_once_whichever_comes_first():
    readiness = Readiness(ready=False)
    readiness.finish({"cold": {}})
    readiness.fail("too late")  # a second ending changes nothing
    assert readiness.ready and readiness.error is None
    readiness.run(lambda: {"cold": {"x": "y"}})
    assert readiness.cold == {}


def test_serve_turns_ready_when_a_write_arrives_during_the_warm_up(server_folder):
    """The issue's reproduction: ``cubemem serve`` on a root with a cube, a waited write sent
    as soon as it listens, then ``/ready`` must turn 200."""
    root = server_folder("ready") / "root"
    with MemoryOS(root) as os_:
        os_.create_cube("team")
        _, key = os_.access.create_agent("admin", trust=1.0, operator=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root.parent / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "cubemem.cli", "serve", "--data", str(root),
                "--port", str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()  # it exited: say why
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.02)
        written = httpx.post(
            f"{url}/v1/cubes/team/memories",
            json={"content": "hello", "wait": True},
            headers={"Authorization": f"Bearer {key}"},
            timeout=300,
        )
        assert written.status_code == 201, written.text
        while time.monotonic() < deadline:
            ready = httpx.get(f"{url}/ready", timeout=5)
            if ready.status_code == 200 or ready.json().get("status") == "failed":
                break
            time.sleep(0.1)
        assert ready.status_code == 200, (ready.json(), log_path.read_text())
    finally:
        stop(process)
