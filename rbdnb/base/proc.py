"""Running external programs and managing the daemons rbdnb itself started.

Programs run from argument lists, never through a shell, always with a timeout.
A daemon is remembered by its pid *and* its start time (from ``/proc``), so a pid
that the kernel has since given to another process is never signalled.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import CommandFailed, MissingTool, Timeout
from .waiting import wait_until

# Program -> Debian package that ships it; used to say what to install.
PACKAGES = {
    "ceph": "ceph-common",
    "ceph-authtool": "ceph-common",
    "monmaptool": "ceph-common",
    "rbd": "ceph-common",
    "rados": "ceph-common",
    "ceph-mon": "ceph-mon",
    "ceph-osd": "ceph-osd",
    "ceph-mgr": "ceph-mgr",
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "libvirtd": "libvirt-daemon-system",
    "virtlogd": "libvirt-daemon-system",
    "virsh": "libvirt-clients",
    "fio": "fio",
    "busybox": "busybox-static",
}

# Colour escapes some tools put in their messages (stripped before they reach a user).
ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXTRA_PATH = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def which(program: str) -> str:
    """Return the path of ``program`` or raise :class:`MissingTool` naming its package."""
    found = shutil.which(program)
    if found is None:
        found = shutil.which(program, path=os.pathsep.join(_EXTRA_PATH))
    if found is None:
        raise MissingTool(program, PACKAGES.get(program, program))
    return found


def quote(argv: list[str]) -> str:
    """Render an argument list as a shell-quoted command line, for display only."""
    return shlex.join(str(a) for a in argv)


_PROGRESS_LINE = re.compile(r"\d+% complete|\.\.\.(done|failed)\.$")
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+\+\d{4} [0-9a-f]+ -?\d+ ")


def failure_line(stderr: str, returncode: int) -> str:
    """The last line of a program's stderr that says what went wrong: progress lines
    (``Removing image: 0% complete...failed.``) passed over, a Ceph log line's timestamp
    and thread cut off."""
    lines = [_LOG_PREFIX.sub("", ln.strip()) for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not _PROGRESS_LINE.search(ln)]
    return (useful or lines or [f"exit status {returncode}"])[-1]


def run(argv: list[str], *, timeout: float, input: bytes | None = None,
        env: dict[str, str] | None = None, check: bool = True,
        what: str | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` (no shell) and return the completed process.

    Raises :class:`Timeout` if it runs longer than ``timeout`` seconds (the
    process is killed), and :class:`CommandFailed` on a non-zero exit when
    ``check`` is true; the message names the program and its last error line.
    """
    argv = [str(a) for a in argv]
    program = os.path.basename(argv[0])
    argv[0] = which(argv[0]) if os.sep not in argv[0] else argv[0]
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                              env=env, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Timeout(f"{what or program} did not finish within {timeout:g} s") from None
    if check and proc.returncode != 0:
        stderr = ANSI.sub("", proc.stderr.decode(errors="replace"))
        raise CommandFailed(f"{what or program} failed: {failure_line(stderr, proc.returncode)}",
                            argv=argv, returncode=proc.returncode, stderr=stderr)
    return proc


@dataclass
class Watched:
    """A program :func:`watch` is running: the process, the seconds since it started, and
    what it has written to stdout so far (``fresh``: since the last tick), and to stderr
    (``errors``, ``fresh_errors``)."""

    proc: subprocess.Popen
    elapsed: float = 0.0
    output: bytes = b""
    fresh: bytes = b""
    errors: bytes = b""        # stderr so far (some tools report progress there)
    fresh_errors: bytes = b""


def watch(argv: list[str], on_tick: Callable[[Watched], None], *,
          env: dict[str, str] | None = None, interval: float = 0.05,
          what: str | None = None, stdin=None, stdout=None) -> tuple[str, str]:
    """Run ``argv`` (no shell), calling ``on_tick`` every ``interval`` s while it runs and
    once after it ends; return its (stdout, stderr) as text, colour escapes removed.

    The one streaming runner: ``on_tick`` reports progress from the output, sends the
    process a signal, or raises (a stall, a timeout) -- the process is then killed. Output
    goes through files, not pipes, so a program that writes much never blocks on us.
    ``stdin``/``stdout``: open binary files to read from / write to instead (what a line's
    ``< FILE`` and ``> FILE`` name); the output is then not kept.
    Raises :class:`CommandFailed` on a non-zero exit, naming ``what`` and its last error line.
    """
    argv = [str(a) for a in argv]
    program = os.path.basename(argv[0])
    argv[0] = which(argv[0]) if os.sep not in argv[0] else argv[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=stdout or out, stderr=err,
                                stdin=stdin or subprocess.DEVNULL, env=env)
        state = Watched(proc)
        start = time.monotonic()
        try:
            while True:
                done = proc.poll() is not None
                out.seek(len(state.output))
                state.fresh = out.read()
                state.output += state.fresh
                err.seek(len(state.errors))
                state.fresh_errors = err.read()
                state.errors += state.fresh_errors
                state.elapsed = time.monotonic() - start
                on_tick(state)
                if done:
                    break
                time.sleep(interval)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = ANSI.sub("", err.read().decode(errors="replace"))
    stdout = state.output.decode(errors="replace")
    if proc.returncode != 0:
        raise CommandFailed(f"{what or program} failed: "
                            f"{failure_line(stderr or stdout, proc.returncode)}",
                            argv=argv, returncode=proc.returncode, stderr=stderr)
    return stdout, stderr


def start_time(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] == b"Z":  # a zombie has exited; it only waits to be reaped
        return None
    return int(fields[19])


@dataclass(frozen=True)
class ProcessRef:
    """A process rbdnb started, identified by pid and start time."""

    name: str
    pid: int
    started: int

    @classmethod
    def of(cls, name: str, pid: int) -> "ProcessRef | None":
        ticks = start_time(pid)
        return None if ticks is None else cls(name, pid, ticks)

    def alive(self) -> bool:
        return start_time(self.pid) == self.started

    def stop(self, timeout: float = 15.0) -> bool:
        """Send SIGTERM, then SIGKILL after ``timeout`` s (at once if 0). True if it was running.

        A stopped (frozen) process is continued after SIGTERM, so it can act on it."""
        if not self.alive():
            return False
        if timeout > 0:
            _signal(self.pid, signal.SIGTERM)
            _signal(self.pid, signal.SIGCONT)
        if timeout <= 0 or not _wait_gone(self, timeout):
            _signal(self.pid, signal.SIGKILL)
            _wait_gone(self, 5.0)
        return True

    def to_json(self) -> dict:
        return {"name": self.name, "pid": self.pid, "started": self.started}

    @classmethod
    def from_json(cls, data: dict) -> "ProcessRef":
        return cls(data["name"], int(data["pid"]), int(data["started"]))


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(ref: ProcessRef, timeout: float) -> bool:
    def gone() -> bool:
        _reap(ref.pid)
        return not ref.alive()
    return bool(wait_until(gone, timeout, interval=0.05))


def _reap(pid: int) -> None:
    # Daemons that double-fork are not our children; waitpid then raises ChildProcessError.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def processes_named(programs: tuple[str, ...], needle: str) -> list[tuple[int, list[str]]]:
    """(pid, argv) of this user's live processes running one of ``programs`` whose command
    line has ``needle`` as an argument (e.g. a sandbox's conf path): to find daemons by
    what they are, whatever pid they were given when they respawned."""
    found = []
    uid = os.geteuid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) in programs and needle in argv \
                and start_time(int(entry)) is not None:
            found.append((int(entry), argv))
    return found


def read_pidfile(path: str) -> int | None:
    """The pid in a pid file, or None if it is missing or unreadable."""
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def unix_socket_answers(path: str, timeout: float = 2) -> bool:
    """Whether something accepts connections on the unix socket ``path`` (a frozen daemon
    still does: the kernel queues them; ask it something to know it answers)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def bounded(fn, timeout: float, what: str, *, on_late=None):
    """``fn()`` in a worker thread, waited for ``timeout`` s at most (then :class:`Timeout`).

    For library calls that have no timeout of their own (``libvirt.open`` on a frozen
    daemon blocks forever). A call that returns after we gave up is handed to
    ``on_late(value)`` (e.g. to close a connection nobody will use).
    """
    box: dict = {}
    lock = threading.Lock()

    def run():
        try:
            value = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
            return
        with lock:
            if box.get("abandoned"):
                if on_late is not None:
                    try:
                        on_late(value)
                    except Exception:
                        pass
                return
            box["value"] = value

    worker = threading.Thread(target=run, name="rbdnb-bounded", daemon=True)
    worker.start()
    worker.join(timeout)
    with lock:
        if worker.is_alive() and "value" not in box and "error" not in box:
            box["abandoned"] = True
            raise Timeout(f"{what}: no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]
