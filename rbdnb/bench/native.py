"""The native engine: in-process librbd asynchronous I/O at a fixed queue depth.

librbd's C API is called through :mod:`ctypes` on a connection of its own (the
Python bindings allocate a ``Completion`` object per I/O and call back into
Python from librbd's threads). Completions are reaped the way fio's rbd engine
does: librbd signals an eventfd (``rbd_set_image_notification``) and
``rbd_poll_io_events`` hands back every finished completion at once. Buffers,
offsets and the completion array are allocated before the clock starts; the
hot loop only submits, polls and releases.

The connection uses the rbd CLI's client settings (``rbd bench`` runs with
``rbd_cache_writethrough_until_flush = false``) and ends a write run with a
flush inside the timed span, as ``rbd bench`` does, so the two measure the same
thing. Every wait is bounded: a cluster that stops answering gives
:class:`~rbdnb.errors.Timeout`.
"""

from __future__ import annotations

import ctypes
import functools
import errno as E
import os
import random
import select
import time
from array import array
from dataclasses import dataclass

from ..errors import CephError, RbdnbError, Timeout
from ..ceph.translate import translate

# librados operation flags rbd bench passes as fadvise hints.
FADVISE_RANDOM = 0x4
FADVISE_SEQUENTIAL = 0x8
_EVENT_TYPE_EVENTFD = 2  # enum { EVENT_TYPE_PIPE = 1, EVENT_TYPE_EVENTFD = 2 }

# The rbd CLI's own client settings, applied so both engines measure the same client.
CLIENT_SETTINGS = {"rbd_cache_writethrough_until_flush": "false"}

_vp = ctypes.c_void_p
# Buffers still referenced by I/Os that never completed (a cluster that stopped
# answering): they must outlive the run, or librbd would write into freed memory.
_ABANDONED: list = []


@functools.cache
def _libs():
    """(librados, librbd) with the prototypes rbdnb calls, loaded once."""
    try:
        rados = ctypes.CDLL("librados.so.2")
        rbd = ctypes.CDLL("librbd.so.1")
    except OSError:
        from ..errors import MissingTool
        raise MissingTool("librbd.so.1", "librbd1") from None
    c_int, c_char_p, c_u64, c_size = ctypes.c_int, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_size_t
    pvp = ctypes.POINTER(_vp)
    protos = [
        (rados.rados_create2, c_int, [pvp, c_char_p, c_char_p, c_u64]),
        (rados.rados_conf_read_file, c_int, [_vp, c_char_p]),
        (rados.rados_conf_set, c_int, [_vp, c_char_p, c_char_p]),
        (rados.rados_connect, c_int, [_vp]),
        (rados.rados_shutdown, None, [_vp]),
        (rados.rados_ioctx_create, c_int, [_vp, c_char_p, pvp]),
        (rados.rados_ioctx_destroy, None, [_vp]),
        (rados.rados_ioctx_set_namespace, None, [_vp, c_char_p]),
        (rbd.rbd_open, c_int, [_vp, c_char_p, pvp, c_char_p]),
        (rbd.rbd_close, c_int, [_vp]),
        (rbd.rbd_get_size, c_int, [_vp, ctypes.POINTER(c_u64)]),
        (rbd.rbd_flush, c_int, [_vp]),
        (rbd.rbd_set_image_notification, c_int, [_vp, c_int, c_int]),
        (rbd.rbd_aio_create_completion, c_int, [_vp, _vp, pvp]),
        (rbd.rbd_aio_write2, c_int, [_vp, c_u64, c_size, _vp, _vp, c_int]),
        (rbd.rbd_aio_read2, c_int, [_vp, c_u64, c_size, _vp, _vp, c_int]),
        (rbd.rbd_poll_io_events, c_int, [_vp, pvp, c_int]),
        (rbd.rbd_aio_get_return_value, ctypes.c_ssize_t, [_vp]),
        (rbd.rbd_aio_get_arg, _vp, [_vp]),
        (rbd.rbd_aio_release, None, [_vp]),
    ]
    for func, restype, argtypes in protos:
        func.restype, func.argtypes = restype, argtypes
    return rados, rbd


@dataclass
class NativeRun:
    """What one native run measured (latencies in microseconds)."""

    ops: int
    read_ops: int
    bytes: int
    seconds: float
    lat_mean_us: float
    lat_p50_us: float
    lat_p99_us: float
    lat_max_us: float


class NativeImage:
    """An image opened through librbd's C API on a connection of its own.

    ``conffile``/``client``/``keyring`` are those of a :class:`~rbdnb.Cluster`;
    the connection gets the same timeouts. Use as a context manager.
    """

    def __init__(self, conffile: str, client: str, keyring: str | None, pool: str,
                 namespace: str, image: str, timeout: float, settings: dict | None = None):
        self.what = f"image {pool}/{namespace + '/' if namespace else ''}{image}"
        self.timeout = timeout
        self._rados = _vp()
        self._ioctx = _vp()
        self._image = _vp()
        self._efd = -1
        rados, rbd = _libs()
        self._check(rados.rados_create2(ctypes.byref(self._rados), b"ceph",
                                        f"client.{client}".encode(), 0), "cannot create a client")
        try:
            self._check(rados.rados_conf_read_file(self._rados, conffile.encode()),
                        f"cannot read {conffile}")
            t = str(int(max(1, timeout)))
            conf = {"client_mount_timeout": t, "rados_mon_op_timeout": t,
                    "rados_osd_op_timeout": t, **CLIENT_SETTINGS, **(settings or {})}
            if keyring:
                conf["keyring"] = keyring
            for key, value in conf.items():
                self._check(rados.rados_conf_set(self._rados, key.encode(), value.encode()),
                            f"cannot set {key}")
            self._connect_with_deadline()
            self._check(rados.rados_ioctx_create(self._rados, pool.encode(),
                                                 ctypes.byref(self._ioctx)), f"pool {pool}")
            if namespace:
                rados.rados_ioctx_set_namespace(self._ioctx, namespace.encode())
            self._check(rbd.rbd_open(self._ioctx, image.encode(), ctypes.byref(self._image),
                                     None), self.what)
            self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._check(rbd.rbd_set_image_notification(self._image, self._efd,
                                                       _EVENT_TYPE_EVENTFD),
                        f"{self.what}: cannot set up completion events")
        except BaseException:
            self.close()
            raise

    def _connect_with_deadline(self) -> None:
        # rados_connect honours client_mount_timeout; an unreachable monitor gives -ETIMEDOUT.
        rados, _ = _libs()
        ret = rados.rados_connect(self._rados)
        if ret < 0:
            raise Timeout(f"{self.what}: cannot reach the cluster within {self.timeout:g} s") \
                if -ret in (E.ETIMEDOUT, E.ENOENT, E.ECONNREFUSED) else self._error(ret, "connect")

    def _error(self, ret: int, what: str) -> RbdnbError:
        exc = OSError(-ret, os.strerror(-ret))
        exc.errno = -ret
        return translate(exc, what)

    def _check(self, ret: int, what: str) -> None:
        if ret < 0:
            raise self._error(ret, what)

    @property
    def size(self) -> int:
        _, rbd = _libs()
        size = ctypes.c_uint64()
        self._check(rbd.rbd_get_size(self._image, ctypes.byref(size)), self.what)
        return size.value

    def close(self) -> None:
        rados, rbd = _libs()
        if self._image:
            rbd.rbd_close(self._image)
            self._image = _vp()
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1
        if self._ioctx:
            rados.rados_ioctx_destroy(self._ioctx)
            self._ioctx = _vp()
        if self._rados:
            rados.rados_shutdown(self._rados)
            self._rados = _vp()

    def __enter__(self) -> "NativeImage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the benchmark loop ------------------------------------------------------------
    def run(self, *, io_size: int, queue_depth: int, reads: float, random_offsets: bool,
            count: int | None, seconds: float | None, seed: int = 1,
            progress=None) -> NativeRun:
        """Run ``count`` I/Os (or for ``seconds``) with ``queue_depth`` in flight.

        ``reads`` is the fraction of reads (0 writes only, 1 reads only). Offsets
        are random multiples of ``io_size`` across the image, or sequential from
        0, wrapping at its end. ``progress(done, total)`` is called about 4 times
        a second (``total`` is in I/Os, or in milliseconds for a timed run).
        """
        _, rbd = _libs()
        size = self.size
        slots_per_image = size // io_size
        if slots_per_image < 1:
            raise CephError(f"{self.what} is smaller than one I/O of {io_size} bytes")
        # Precompute a cycle of offsets and read/write choices: nothing is drawn in the loop.
        rng = random.Random(seed)
        cycle = count if count is not None else min(1 << 18, max(queue_depth, slots_per_image))
        if random_offsets:
            offsets = array("Q", (rng.randrange(slots_per_image) * io_size for _ in range(cycle)))
        else:
            offsets = array("Q", ((i % slots_per_image) * io_size for i in range(cycle)))
        if reads <= 0:
            is_read = bytes(cycle)
        elif reads >= 1:
            is_read = bytes([1]) * cycle
        else:
            is_read = bytes(1 if rng.random() < reads else 0 for _ in range(cycle))
        fadvise = FADVISE_RANDOM if random_offsets else FADVISE_SEQUENTIAL

        # One write buffer shared by all writes (never modified), one read buffer per slot.
        pattern = os.urandom(min(io_size, 1 << 16))
        wbuf = (ctypes.c_char * io_size).from_buffer_copy(
            (pattern * (io_size // len(pattern) + 1))[:io_size])
        rbufs = (ctypes.c_char * (io_size * queue_depth))() if reads > 0 else None
        wptr = ctypes.addressof(wbuf)
        rbase = ctypes.addressof(rbufs) if rbufs is not None else 0
        comps = (_vp * queue_depth)()
        slot_comp = _vp()
        started = array("q", bytes(8 * queue_depth))
        lat = array("q", bytes(8 * (count if count is not None else 1 << 16)))

        create, write, read = (rbd.rbd_aio_create_completion, rbd.rbd_aio_write2,
                               rbd.rbd_aio_read2)
        poll_events, get_ret, get_arg, release = (rbd.rbd_poll_io_events,
                                                  rbd.rbd_aio_get_return_value,
                                                  rbd.rbd_aio_get_arg, rbd.rbd_aio_release)
        image, byref_comp, now = self._image, ctypes.byref(slot_comp), time.perf_counter_ns
        poller = select.poll()
        poller.register(self._efd, select.POLLIN)
        wait_ms = int(self.timeout * 1000)
        efd = self._efd

        submitted = done = reads_done = errors = 0
        first_error = 0
        in_flight = 0
        t0 = now()
        deadline = t0 + int(seconds * 1e9) if seconds is not None else None
        report_every = 250_000_000
        next_report = t0 + report_every

        def submit(slot: int) -> None:
            nonlocal submitted, in_flight
            k = submitted % cycle
            create(slot + 1, None, byref_comp)  # the slot (+1: never NULL) is the arg
            started[slot] = now()
            if is_read[k]:
                ret = read(image, offsets[k], io_size, rbase + slot * io_size, slot_comp,
                           fadvise)
            else:
                ret = write(image, offsets[k], io_size, wptr, slot_comp, fadvise)
            if ret < 0:
                release(slot_comp)
                raise self._error(ret, f"{self.what}: cannot submit I/O")
            submitted += 1
            in_flight += 1

        def more() -> bool:
            if count is not None:
                return submitted < count
            return now() < deadline

        try:
            for slot in range(queue_depth):
                if not more():
                    break
                submit(slot)
            while in_flight:
                if not poller.poll(wait_ms):
                    raise Timeout(f"{self.what}: no I/O completed within {self.timeout:g} s")
                try:
                    os.eventfd_read(efd)
                except BlockingIOError:
                    pass
                n = poll_events(image, comps, queue_depth)
                while n > 0:
                    for i in range(n):
                        comp = comps[i]
                        slot = get_arg(comp) - 1
                        ret = get_ret(comp)
                        release(comp)
                        in_flight -= 1
                        t = now()
                        if ret < 0:
                            errors += 1
                            first_error = first_error or ret
                        else:
                            if done == len(lat):
                                lat.extend(lat)  # timed runs: grow by doubling
                            lat[done] = t - started[slot]
                            done += 1
                        if not errors and more():
                            submit(slot)
                    n = poll_events(image, comps, queue_depth)
                if progress is not None and now() >= next_report:
                    next_report += report_every
                    if count is not None:
                        progress(done, count)
                    else:
                        progress(min(int((now() - t0) / 1e6), int(seconds * 1000)),
                                 int(seconds * 1000))
            if errors:
                raise self._error(first_error, f"{self.what}: {errors} I/O(s) failed")
            if reads < 1:
                ret = rbd.rbd_flush(image)  # inside the timed span, as rbd bench does
                if ret < 0:
                    raise self._error(ret, f"{self.what}: flush failed")
            elapsed = (now() - t0) / 1e9
        except BaseException:
            if in_flight:
                # I/Os still reference these buffers: keep them alive, and leave the
                # connection open (closing it would wait for those I/Os).
                _ABANDONED.append((wbuf, rbufs, comps, self._rados, self._ioctx, self._image))
                self._image, self._ioctx, self._rados = _vp(), _vp(), _vp()
            raise
        if progress is not None:
            progress(count, count) if count is not None else progress(int(seconds * 1000),
                                                                      int(seconds * 1000))
        # Every submitted I/O completed (a failure raised above), so count reads exactly.
        reads_done = sum(is_read[k % cycle] for k in range(submitted)) if 0 < reads < 1 else \
            (done if reads >= 1 else 0)
        samples = sorted(lat[:done])
        return NativeRun(
            ops=done, read_ops=reads_done, bytes=done * io_size, seconds=elapsed,
            lat_mean_us=(sum(samples) / done / 1e3) if done else float("nan"),
            lat_p50_us=_percentile(samples, 50) / 1e3,
            lat_p99_us=_percentile(samples, 99) / 1e3,
            lat_max_us=(samples[-1] / 1e3) if samples else float("nan"))


def _percentile(sorted_samples, pct: float) -> float:
    """The nearest-rank percentile of already sorted samples (nan if none)."""
    if not sorted_samples:
        return float("nan")
    rank = max(1, min(len(sorted_samples), -(-len(sorted_samples) * pct // 100)))
    return float(sorted_samples[int(rank) - 1])
