"""A TCP proxy in front of PostgreSQL that a test can "restart", and a web server subprocess.

The machine's PostgreSQL serves other tests too, so a test never restarts it. What its clients
see of a restart is what `PgProxy.stop()` does: every open connection is cut at once (the
server's end too, so PostgreSQL rolls their transactions back and frees their locks), and new
connections are refused until `start()` listens on the same port again.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from django.conf import settings

from tests.integration.conftest import ROOT, WorkerProcess, stop_process, wait_for, worker_env

_CHUNK = 1 << 16
# What a job task logs each time it retries because the database cannot be reached
# (marketing.tasks.JobTask).
CUT = "the database cannot be reached"


class PgProxy:
    """Forwards 127.0.0.1:<port> to the test database's server, one thread per direction."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.connections = 0  # accepted since the proxy was made

    @classmethod
    def for_test_database(cls) -> PgProxy:
        db = settings.DATABASES["default"]
        return cls((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))

    def database_url(self) -> str:
        """The test database's DATABASE_URL, through this proxy."""
        db = settings.DATABASES["default"]
        return f"postgres://{db['USER'] or ''}@127.0.0.1:{self.port}/{db['NAME']}"

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        """Listen (again: on the same port as before)."""
        assert not self.running, "the proxy already runs"
        self._listener = self._listen()
        self._stopping.clear()
        self._accepting = threading.Thread(target=self._accept, daemon=True, name="pg-proxy")
        self._accepting.start()

    def stop(self) -> None:
        """Cut every forwarded connection and refuse new ones, as a server going down does."""
        assert self.running, "the proxy is not running"
        self._stopping.set()
        self._accepting.join(timeout=5)
        self._listener.close()  # connecting now gets "connection refused"
        self._listener = None
        with self._lock:
            cut, self._sockets = self._sockets, set()
        for sock in cut:
            _close(sock)

    def close(self) -> None:
        if self.running:
            self.stop()

    def _listen(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The cut connections leave this port in TIME_WAIT; listen on it again all the same.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.port:
            sock.bind(("127.0.0.1", self.port))
        else:
            # Below Linux's ephemeral range (32768+), so no outgoing connection takes the port
            # while the proxy is stopped.
            for _ in range(100):
                port = random.randint(15000, 30000)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                self.port = port
                break
            else:
                raise OSError("no free port for the PostgreSQL proxy")
        sock.listen(64)
        sock.settimeout(0.05)
        return sock

    def _accept(self) -> None:
        listener = self._listener
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                if self._stopping.is_set():
                    _close(client)
                    _close(server)
                    return
                self._sockets.update((client, server))
                self.connections += 1
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(_CHUNK):
                dst.sendall(data)
        # One side closed (or the proxy cut both): close the other, as a dropped link would.
        with self._lock:
            self._sockets.discard(src)
            self._sockets.discard(dst)
        _close(src)
        _close(dst)


def cut_paused_worker(
    proxy: PgProxy, worker: WorkerProcess, release: Path, *, retries: int = 3
) -> None:
    """Restart the "server" under a worker paused inside a job's transaction: stop the proxy,
    let the worker go on into the cut (create `release`), and return once the job's task
    retried `retries` times against the stopped proxy. The proxy stays stopped: the test
    looks at what the cut left, then starts it."""
    proxy.stop()
    release.touch()
    wait_for(
        lambda: worker.log().count(CUT) >= retries,
        timeout=60,
        what=f"the worker to retry {retries} times",
    )


def _close(sock: socket.socket) -> None:
    """Shut the socket down (waking the thread that reads it) and close it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class WebServer:
    """`gunicorn marketing.wsgi` as a subprocess (one sync worker), on the test database."""

    def __init__(self, log_dir: Path) -> None:
        self.log_path = log_dir / "web.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, env: dict[str, str]) -> None:
        with socket.socket() as probe:  # a free port (gunicorn does not report one it chose)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        full_env = {**worker_env(), "SECRET_KEY": settings.SECRET_KEY, **env}
        full_env.pop("DEBUG", None)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "marketing.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--timeout",
                "60",
                "--error-logfile",
                "-",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the web server exited:\n{self.log()}"
            try:
                requests.get(f"{self.url}/health/", timeout=30)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError(f"the web server did not answer within 30s:\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
