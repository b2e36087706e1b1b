"""`make run` (scripts/run.py) supervises the web server and the worker that runs the jobs."""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tailor_run", ROOT / "scripts" / "run.py")
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)


class FakeProcess:
    """Stands in for subprocess.Popen: exits with `code` after `lives` polls (never if None)."""

    def __init__(self, name: str, *, lives: int | None = None, code: int = 0) -> None:
        self.name, self.lives, self.code = name, lives, code
        self.returncode: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        if self.returncode is None and self.lives is not None:
            self.lives -= 1
            if self.lives < 0:
                self.returncode = self.code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.returncode = -sig

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Clock:
    """A fake clock; sleep() advances it and raises KeyboardInterrupt after `ticks` sleeps."""

    def __init__(self, ticks: int = 1_000) -> None:
        self.now, self.ticks = 0.0, ticks

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.ticks -= 1
        if self.ticks < 0:
            raise KeyboardInterrupt
        self.now += seconds


def supervise(web: FakeProcess, workers: list[FakeProcess], clock: Clock) -> tuple[int, list]:
    started: list[FakeProcess] = []

    def start_worker() -> FakeProcess:
        worker = workers.pop(0) if workers else FakeProcess("worker")
        started.append(worker)
        return worker

    code = run.supervise(lambda: web, start_worker, clock=clock, sleep=clock.sleep)
    return code, started


def test_a_dead_worker_is_restarted_after_a_pause_and_the_web_server_keeps_running(capsys):
    web = FakeProcess("web")
    clock = Clock(ticks=20)

    code, started = supervise(web, [FakeProcess("worker", lives=2, code=-9)], clock)

    assert code == 0  # Ctrl-C at the end
    assert len(started) == 2
    assert web.signals == [signal.SIGTERM]  # still running until Ctrl-C stopped it
    assert started[1].signals == [signal.SIGTERM]
    err = capsys.readouterr().err
    assert "the Celery worker exited (code -9); restarting it in 1s" in err


def test_a_worker_that_keeps_dying_stops_everything_with_an_error(capsys):
    web = FakeProcess("web")
    dying = [FakeProcess("worker", lives=0, code=1) for _ in range(10)]

    code, started = supervise(web, dying, Clock())

    assert code == 1
    assert len(started) == run.WORKER_MAX_RESTARTS + 1
    assert web.signals == [signal.SIGTERM]
    assert (
        "the Celery worker exited (code 1) 6 times within 60s; stopping" in capsys.readouterr().err
    )


def test_worker_deaths_spread_over_time_are_each_restarted():
    web = FakeProcess("web")
    # Each worker lives about 40 s (80 polls of 0.5 s): never 6 deaths within a minute.
    workers = [FakeProcess("worker", lives=80, code=1) for _ in range(12)]

    code, started = supervise(web, workers, Clock(ticks=12 * 100))

    assert code == 0
    assert len(started) >= 10


def test_a_dead_web_server_stops_the_worker_and_exits_non_zero(capsys):
    web = FakeProcess("web", lives=3, code=0)
    worker = FakeProcess("worker")

    code, _ = supervise(web, [worker], Clock())

    assert code == 1
    assert worker.signals == [signal.SIGTERM]
    assert "the web server exited (code 0); stopping the worker" in capsys.readouterr().err


def test_run_makes_everything_it_creates_private(monkeypatch):
    monkeypatch.setattr(run, "manage", lambda *args: None)
    monkeypatch.setattr(run, "supervise", lambda *args, **kwargs: 0)
    monkeypatch.setattr(run.signal, "signal", lambda *args: None)
    previous = os.umask(0o022)
    try:
        assert run.main() == 0
        assert os.umask(previous) == 0o077
    except BaseException:
        os.umask(previous)
        raise


@pytest.mark.parametrize("name", ["HOST", "PORT", "MAX_JOB_ATTEMPTS", "REQUIRE_SECRET_KEY"])
def test_env_example_lists_the_variable(name):
    lines = (ROOT / ".env.example").read_text().splitlines()
    assert any(line.startswith(f"{name}=") for line in lines)


def test_the_worker_starts_without_djangos_system_checks(monkeypatch):
    """A worker that runs the checks imports every view and the science libraries at start."""
    started = {}

    def popen(args, **kwargs):
        started.update(args=args, **kwargs)
        return FakeProcess("worker")

    monkeypatch.setattr(run.subprocess, "Popen", popen)
    monkeypatch.setenv("DATA_DIR", "/somewhere")
    run.start_worker()

    assert started["args"][started["args"].index("-A") + 1 :][:2] == ["marketing", "worker"]
    assert started["env"]["CELERY_SKIP_CHECKS"] == "1"
    assert started["env"]["DATA_DIR"] == "/somewhere"  # the rest of the environment is kept
