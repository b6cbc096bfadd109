"""The fault suite: faults injected from outside, the way Ceph's own thrashing tests do.

Each scenario gets a sandbox of its own (so a frozen or killed daemon, a full OSD or a
killed process cannot disturb another), kills or freezes a process or daemon in the
middle of an operation, and then checks four things: nothing hangs past its bound (every
step runs under a hard limit), the error is typed and one line, no data is lost
(checksums against the source, read with the real ``rbd`` CLI), and a re-run converges
to the complete state. The clients use short timeouts (5 s) so that the suite stays short.

At the end, a table: scenario, time to answer, outcome.
"""
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rbdnb
from rbdnb.sandbox import Sandbox
from tests.conftest import start_sandbox  # noqa: F401 (the scenarios import it from here)

ROOT = Path(__file__).resolve().parents[2]
CLIENT_TIMEOUT = 5          # the clients' timeout in these scenarios (seconds)
RESULTS: list[tuple[str, float, str]] = []


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    terminalreporter.section("fault suite: scenario, time to answer, outcome")
    width = max(len(r[0]) for r in RESULTS)
    terminalreporter.write_line(f"{'scenario':<{width}}  {'answer':>8}  outcome")
    for scenario, seconds, outcome in RESULTS:
        terminalreporter.write_line(f"{scenario:<{width}}  {seconds:>7.1f}s  {outcome}")


@pytest.fixture
def record(request):
    """record(seconds, outcome): one row of the table, for this scenario."""
    name = request.node.name.removeprefix("test_")

    def add(seconds: float, outcome: str, scenario: str | None = None):
        RESULTS.append((scenario or name, seconds, outcome))
    return add


@pytest.fixture
def fresh(tmp_path):
    """A sandbox for one scenario (memstore, 4G), taken down afterwards; nothing of it
    may be left running."""
    box = start_sandbox(tmp_path / "sandbox", osd_size="4G")
    yield box
    for pid in daemon_pids(box).values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # a scenario that failed may have left one frozen
    box.down()
    assert not running_under(box.dir), "the sandbox left a process running"


def running_under(directory: Path) -> list[int]:
    from rbdnb.base import proc as _proc
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(directory) in cmdline and _proc.start_time(int(entry.name)) is not None:
                pids.append(int(entry.name))
    return pids


def settle(box: Sandbox, timeout: float = 300) -> list[str]:
    """What an operator does after a fault: ``rbdnb sandbox up`` -- which waits until the
    sandbox is healthy and brings back what is missing (a thawed OSD that the monitor marked
    down rejoins and its PGs peer; PGs left laggy by the freeze are re-peered) -- until every
    pool answers a read. A PG can turn laggy only after `up` found the cluster healthy (ops
    held during the freeze run into the expired lease): then `up` runs again and heals it.
    Returns what ``up`` brought back."""
    deadline = time.monotonic() + timeout
    env = {**os.environ, **box.env()}
    repaired: list[str] = []
    while True:
        up = subprocess.run([sys.executable, "-m", "rbdnb", "sandbox", "up", "--dir",
                             str(box.dir), "--json"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True,
                            timeout=max(60, deadline - time.monotonic()))
        if up.returncode != 0:
            detail = subprocess.run(["ceph", "health", "detail", "--connect-timeout", "10"],
                                    env=env, capture_output=True, text=True, timeout=60)
            pytest.fail(f"sandbox up after the fault: {up.stderr.strip()[-500:]}; "
                        f"{detail.stdout.strip()[-500:]}")
        repaired += json.loads(up.stdout).get("restarted", [])
        unreadable = _unreadable_pool(env)
        if unreadable is None:
            return repaired
        if time.monotonic() > deadline:
            pytest.fail(f"pool {unreadable[0]} not readable {timeout:g} s after the fault: "
                        f"{unreadable[1]}")
        time.sleep(5)


def _unreadable_pool(env) -> tuple[str, str] | None:
    """(pool, error) of the first pool that does not answer a listing, or None."""
    pools = subprocess.run(["ceph", "osd", "pool", "ls", "--connect-timeout", "10"], env=env,
                           capture_output=True, text=True, timeout=60).stdout.split()
    for pool in pools:
        for argv in (["rados", "-p", pool, "ls"], ["rbd", "ls", pool]):
            probe = subprocess.run(argv + ["--rados-osd-op-timeout", "10"], env=env,
                                   capture_output=True, text=True, timeout=60)
            if probe.returncode != 0:
                return pool, probe.stderr.strip()[-300:]
    return None


def daemon_pids(box: Sandbox) -> dict[str, int]:
    return {r.name: r.pid for r in box._found_daemons()}


@contextlib.contextmanager
def frozen(pid: int):
    """SIGSTOP ``pid`` for the body; SIGCONT whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def within(seconds: float, fn, what: str):
    """Run ``fn()`` with a hard bound: the scenario fails (never hangs) if it is not done."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    t0 = time.monotonic()
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{what} hung: no answer within {seconds:g} s")
    elapsed = time.monotonic() - t0
    if "error" in box:
        raise box["error"]
    return box["value"], elapsed


def answer(seconds: float, fn, what: str):
    """``within``, expecting an rbdnb error: returns (error, elapsed)."""
    def call():
        try:
            fn()
        except rbdnb.RbdnbError as exc:
            return exc
        return None
    error, elapsed = within(seconds, call, what)
    assert error is not None, f"{what} did not fail"
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text, text
    return error, elapsed


class Worker:
    """An rbdnb operation in a process of its own (tests/faults/worker.py)."""

    def __init__(self, operation: str, conf: str, timeout: float = 30, **args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.worker", operation,
             json.dumps({"conf": conf, "timeout": timeout, **args})],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            start_new_session=True)
        self.lines: list[str] = []
        self.done_fraction = 0.0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            self.lines.append(line)
            if line.startswith("progress "):
                done, total = map(int, line.split()[1:3])
                self.done_fraction = done / max(1, total)

    def wait_for(self, condition, timeout: float = 120, what: str = "the worker") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"{what}: the worker ended before the fault could be injected: "
                            f"{self.lines[-3:]} {self.proc.stderr.read()[-500:]}")
            if time.monotonic() > deadline:
                self.kill(group=True)
                pytest.fail(f"{what}: condition not reached within {timeout:g} s")
            time.sleep(0.01)

    def kill(self, group: bool) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)

    def finish(self, timeout: float) -> tuple[int, float]:
        """Wait for the worker's own end (bounded); returns (exit status, seconds)."""
        t0 = time.monotonic()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(group=True)
            pytest.fail(f"the worker hung: no answer within {timeout:g} s: {self.lines[-3:]}")
        self._reader.join(timeout=10)
        return code, time.monotonic() - t0

    @property
    def error(self) -> str:
        return next((ln for ln in self.lines if ln.startswith("error ")), "")


def cli(box: Sandbox, *argv: str, json_out: bool = False, timeout: float = 120, check=True):
    env = {**os.environ, **box.env()}
    argv = list(argv) + (["--format", "json"] if json_out else [])
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout) if json_out else proc


def rbd_sha256(box: Sandbox, spec: str) -> str:
    """SHA-256 of an image (or snapshot) as the real ``rbd export`` writes it."""
    env = {**os.environ, **box.env()}
    proc = subprocess.Popen(["rbd", "export", "--no-progress", spec, "-"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    digest = hashlib.sha256()
    for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
        digest.update(chunk)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-300:]
    return digest.hexdigest()


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_random(path: Path, size: int, seed: int = 7) -> Path:
    """A file of ``size`` pseudo-random bytes (fast, reproducible)."""
    import random
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 4 << 20)
            fh.write(rng.randbytes(n))
            left -= n
    return path


def fill_image(cluster, spec: str, size: int, seed: int = 3) -> None:
    """Write ``size`` pseudo-random bytes at the start of an image (through librbd)."""
    import random
    from rbdnb.ceph.images import open_image
    from rbdnb.base.specs import parse_spec
    rng = random.Random(seed)
    with open_image(cluster, parse_spec(spec)) as image:
        for offset in range(0, size, 4 << 20):
            image.write(rng.randbytes(min(4 << 20, size - offset)), offset)
