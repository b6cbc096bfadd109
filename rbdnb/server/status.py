"""The cluster status for the status bar: cached, refreshed off the event loop, bounded."""

from __future__ import annotations

import asyncio
import time

from ..base.secret import redact
from .snapshot import Snapshot, snapshot


class StatusCache:
    """One snapshot shared by every request for ``ttl`` seconds.

    The snapshot is taken in a worker thread (librados and virsh block); concurrent
    requests share one refresh; a request waits ``timeout`` seconds at most and then
    gets the last snapshot, marked stale, or an 'UNREACHABLE' one.
    """

    def __init__(self, *, conf: str | None, libvirt_uri: str | None, ttl: float = 5,
                 timeout: float = 10):
        self.conf, self.libvirt_uri, self.ttl, self.timeout = conf, libvirt_uri, ttl, timeout
        self._last: Snapshot | None = None
        self._pending: asyncio.Future | None = None

    async def get(self) -> dict:
        now = time.time()
        if self._pending is not None and self._pending.done():
            # A refresh that outlasted an earlier request's wait: keep what it found.
            if not self._pending.cancelled() and self._pending.exception() is None:
                self._last = self._pending.result()
            self._pending = None
        if self._last is not None and now - self._last.checked_at < self.ttl:
            return {**self._last.to_json(), "cached": True, "stale": False}
        if self._pending is None or self._pending.done():
            loop = asyncio.get_running_loop()
            # The cluster timeout stays below ours, so a refresh normally ends in time.
            self._pending = loop.run_in_executor(
                None, lambda: snapshot(self.conf, libvirt_uri=self.libvirt_uri,
                                       timeout=max(1, self.timeout / 2)))
        try:
            self._last = await asyncio.wait_for(asyncio.shield(self._pending), self.timeout)
            return {**self._last.to_json(), "cached": False, "stale": False}
        except asyncio.TimeoutError:
            if self._last is not None:
                return {**self._last.to_json(), "cached": True, "stale": True}
            return self._unreachable(f"no answer from the cluster within {self.timeout:g} s")
        except Exception as exc:  # a failure of the check itself: shown, not a 500
            return self._unreachable(f"the status check failed: {type(exc).__name__}: {exc}")

    @staticmethod
    def _unreachable(message: str) -> dict:
        snap = Snapshot(reachable=False, health="UNREACHABLE", message=redact(message),
                        checked_at=time.time())
        return {**snap.to_json(), "cached": False, "stale": True}
