"""Local locks: one rbdnb process at a time per object on this host.

Two callers of the same step at once (a scheduled runbook overlapping a person, two
notebooks importing the same golden image) must not interleave: the second waits for
the first, then finds the work done and says so truthfully. A lock is an ``flock`` on a
file under :func:`paths.runtime_dir`, so a process that dies, even by SIGKILL, drops it
at once; the file names who holds it, for the message of a caller that gave up waiting.

Across hosts rbdnb does not lock: it relies on operations that are atomic in Ceph (an
image appears under its name only once complete; see :mod:`rbdnb.ceph.transfer`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time

from ..base import paths
from ..errors import Locked
from ..base.waiting import wait_until

DEFAULT_WAIT = 600.0


def default_wait() -> float:
    """Seconds to wait for another process's lock: ``$RBDNB_LOCK_WAIT``, else 600."""
    try:
        value = float(os.environ.get("RBDNB_LOCK_WAIT", DEFAULT_WAIT))
    except ValueError:
        return DEFAULT_WAIT
    return value if 0 <= value <= 86400 else DEFAULT_WAIT


def lock_dir():
    """The directory of rbdnb's local locks (0700, under the runtime dir), made if missing."""
    paths.ensure_runtime_dir()
    return paths.ensure_dir(paths.runtime_dir() / "locks", paths.PRIVATE_DIR_MODE)


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096) or b"{}")
        since = time.strftime("%H:%M:%S", time.localtime(data["since"]))
        return f"pid {data['pid']}, since {since}: {data['what']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def held(key: str, *, what: str, wait: float | None = None, on_wait=None):
    """Hold the lock named ``key`` for the body; wait up to ``wait`` s for it.

    ``what`` says what the holder does (shown to a caller that waits in vain);
    ``on_wait(holder)`` is called once if the lock is taken when we arrive.
    Raises :class:`Locked` naming the holder if it is not free within ``wait``.
    """
    wait = default_wait() if wait is None else wait
    name = hashlib.sha256(key.encode()).hexdigest()[:24] + ".lock"
    fd = os.open(lock_dir() / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        told = []

        def taken() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            if not told and on_wait is not None:
                on_wait(_holder(fd))
                told.append(True)
            return False

        if not wait_until(taken, wait, interval=0.1):
            raise Locked(f"{what}: another rbdnb process on this host is at it "
                         f"({_holder(fd)}) and did not finish within {wait:g} s: "
                         f"try again when it has ended")
        record = json.dumps({"pid": os.getpid(), "since": time.time(), "what": what})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_HELD: dict[str, "Held"] = {}


class Held:
    """A lock taken now and released by :meth:`release` (or when the process ends):
    for a runbook, which holds its lock from its first cell to its summary.

    A process that takes a key it holds already (a person running a runbook's first cell
    again, in the same kernel, after a step failed) hands the lock over to the new holder
    rather than wait for itself."""

    def __init__(self, key: str, *, what: str, wait: float | None = None, on_wait=None):
        previous = _HELD.pop(key, None)
        if previous is not None:
            previous.release()
        self.key = key
        self._cm = held(key, what=what, wait=wait, on_wait=on_wait)
        self._cm.__enter__()
        self.active = True
        _HELD[key] = self

    def release(self) -> None:
        if self.active:
            self.active = False
            if _HELD.get(self.key) is self:
                del _HELD[self.key]
            self._cm.__exit__(None, None, None)
