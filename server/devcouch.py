"""A local CouchDB-compatible server (pouchdb-server from npm) for the demo and the tests.

Production runs Apache CouchDB 3 (see deploy/); this is only the embedded development store.
"""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

__all__ = ["LocalCouch", "LocalCouchError", "find_node_modules", "free_port"]

_START_TIMEOUT_S = 60.0


class LocalCouchError(RuntimeError):
    """pouchdb-server could not be started or configured."""


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the process that started it dies, however it dies."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_node_modules() -> Path:
    """The repository's node_modules (GRIDPATROL_NODE_MODULES overrides)."""
    configured = os.environ.get("GRIDPATROL_NODE_MODULES")
    candidates = [Path(configured)] if configured else []
    candidates += [Path(__file__).resolve().parents[1] / "node_modules", Path.cwd() / "node_modules"]
    for candidate in candidates:
        if (candidate / "pouchdb-server").is_dir():
            return candidate
    raise LocalCouchError(
        "node_modules with pouchdb-server not found: run ./run demo or ./run test (they npm ci)"
    )


class LocalCouch:
    """Starts pouchdb-server on a port, with data in ``data_dir`` (or in memory), and an admin account."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        in_memory: bool = False,
        node_modules: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.in_memory = in_memory
        self.node_modules = node_modules or find_node_modules()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        node = shutil.which("node")
        if node is None:
            raise LocalCouchError("node is not installed")
        script = self.node_modules / "pouchdb-server" / "bin" / "pouchdb-server"
        args = [node, str(script), "--port", str(self.port), "--host", "127.0.0.1", "--no-stdout-logs"]
        args += ["--config", str(self.data_dir / "config.json")]
        args += ["--in-memory"] if self.in_memory else ["--dir", str(self.data_dir)]
        log = (self.data_dir / "pouchdb-server.out").open("ab")
        self.process = subprocess.Popen(  # noqa: S603  (fixed argv, no shell)
            args,
            cwd=self.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509  (only prctl, safe before exec)
        )
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalCouchError(f"pouchdb-server exited with {self.process.returncode}; see {log.name}")
            try:
                if httpx.get(self.url + "/", timeout=1.0).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise LocalCouchError(f"pouchdb-server did not answer on {self.url} within {_START_TIMEOUT_S:.0f}s")

    def ensure_admin(self, username: str, password: str) -> None:
        """Create the admin account while the server is still an "admin party"; check it otherwise."""
        if httpx.get(self.url + "/_session", auth=(username, password), timeout=5.0).status_code == 200:
            probe = httpx.get(self.url + "/_config/admins", auth=(username, password), timeout=5.0)
            if probe.status_code == 200 and username in probe.json():
                return
        response = httpx.put(f"{self.url}/_config/admins/{username}", json=password, timeout=5.0)
        if response.status_code != 200:
            raise LocalCouchError(
                f"cannot create admin {username!r} ({response.status_code}): the data folder "
                f"{self.data_dir} belongs to another admin; remove it to start afresh"
            )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """Stop abruptly (tests of CouchDB going away)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
