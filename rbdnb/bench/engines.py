"""The benchmark engines behind one registry (name -> engine): each checks that it can run a
case, writes the case into a plan, and runs it, returning what it measured.

``rbd``     the ``rbd bench`` CLI (``full-seq`` for read/write, ``rand`` otherwise); no latencies.
``fio``     ``fio --ioengine=rbd --output-format=json``.
``native``  librbd's asynchronous C API in this process (:mod:`rbdnb.bench.native`).
"""

from __future__ import annotations

import os
import signal
import tempfile
from typing import Callable

from ..base import proc as _proc
from ..base.plan import Plan
from ..base.specs import ImageSpec
from ..base.units import format_size
from ..ceph.cluster import Cluster
from ..errors import InvalidArgument, Timeout
from .cases import Case
from .native import NativeImage
from .tools import ToolRun, conf_with, fio_args, parse_fio, parse_rbd_bench, rbd_bench_args

Progress = Callable[[int, int], None]

# At and above this I/O size the native engine writes without librbd's cache: the
# C API must copy every buffer the cache holds, and for large writes that copy
# costs more than the cache's early acknowledgements gain (measured: 4M sequential
# writes 80% of rbd bench with the cache, 99% without; 4K random writes need it).
NATIVE_ZERO_COPY_FROM = 1 << 20


class Engine:
    """What every engine does; ``client`` names what does the I/O, for the results."""

    name = ""
    client = ""

    def check(self, cluster: Cluster, spec: ImageSpec, case: Case) -> None:
        """Refuse, before any I/O, a case this engine cannot run (its program missing)."""

    def plan(self, plan: Plan, cluster: Cluster, spec: ImageSpec, case: Case,
             image_size: int) -> None:
        """Add the case to ``plan``: the equivalent command line, or a note."""
        raise NotImplementedError

    def run(self, cluster: Cluster, spec: ImageSpec, case: Case, image_size: int,
            progress: Progress | None) -> ToolRun:
        """Run the case; what it measured."""
        raise NotImplementedError

    def client_for(self, case: Case) -> str:
        """What does the I/O of ``case``, as the results name it."""
        return self.client


class Native(Engine):
    """librbd's C API in this process."""

    name = "native"

    def client_for(self, case: Case) -> str:
        return "librbd C API, " + ("no cache, zero-copy" if case.io_size >= NATIVE_ZERO_COPY_FROM
                                   else "writearound cache")

    def plan(self, plan, cluster, spec, case, image_size):
        amount = f"{format_size(case.total)}" if case.total else f"{case.seconds:g} s"
        plan.note(f"native: {case.io_type} {format_size(case.io_size)} x {amount} at queue "
                  f"depth {case.queue_depth}, librbd in this process")

    def run(self, cluster, spec, case, image_size, progress):
        with native_image(cluster, spec, case.io_size) as image:
            res = image.run(io_size=case.io_size, queue_depth=case.queue_depth,
                            reads=case.reads,
                            random_offsets=case.io_type.startswith("rand") or
                            case.io_type == "mixed",
                            count=case.total // case.io_size if case.total else None,
                            seconds=case.seconds, progress=progress)
        return ToolRun(res.ops, res.read_ops, res.bytes, res.seconds, res.lat_mean_us,
                       res.lat_p50_us, res.lat_p99_us, res.lat_max_us)


def native_image(cluster: Cluster, spec: ImageSpec, io_size: int) -> NativeImage:
    """``spec`` opened through librbd's C API, set up for I/Os of ``io_size``."""
    settings = {}
    if io_size >= NATIVE_ZERO_COPY_FROM:
        settings = {"rbd_cache": "false", "rbd_disable_zero_copy_writes": "false"}
    return NativeImage(cluster.conffile, cluster.client, cluster.keyring, spec.pool,
                       spec.namespace, spec.image, cluster.timeout, settings)


class _Program(Engine):
    """An engine that is an external program."""

    def check(self, cluster, spec, case):
        _proc.which(self.name)

    @staticmethod
    def timeout(cluster: Cluster, case: Case) -> float:
        """How long the program may take: its duration (or a generous multiple of the
        expected time) plus two client timeouts."""
        if case.seconds is not None:
            return case.seconds + 2 * cluster.timeout
        return max(20 * case.expected_seconds, 120.0) + 2 * cluster.timeout

    @staticmethod
    def run_program(argv: list[str], cluster: Cluster, case: Case, *, env: dict | None,
                    stop_after: float | None, progress: Progress | None) -> str:
        """Run the program, reporting elapsed time as progress; its stdout. With
        ``stop_after``, it is sent SIGINT after that many seconds."""
        program = os.path.basename(argv[0])
        hint = int(case.expected_seconds * 1000)
        timeout = _Program.timeout(cluster, case)
        interrupted = []

        def tick(w: _proc.Watched) -> None:
            if w.proc.poll() is not None:
                return
            if stop_after is not None and w.elapsed >= stop_after and not interrupted:
                w.proc.send_signal(signal.SIGINT)
                interrupted.append(True)
            if w.elapsed > timeout:
                raise Timeout(f"{program} did not finish within {timeout:g} s")
            if progress is not None:
                progress(min(int(w.elapsed * 1000), hint), hint)

        stdout, _ = _proc.watch(argv, tick, env=env, interval=0.1)
        if progress is not None:
            progress(hint, hint)
        return stdout


class RbdBench(_Program):
    """``rbd bench``: no duration option, so a timed run asks for far more than it can do
    and is interrupted (SIGINT) at the time; it then flushes and prints its totals."""

    name = "rbd"
    client = "rbd bench"

    def argv(self, cluster, spec, case):
        total = case.total or (1 << 50) // case.io_size * case.io_size
        return rbd_bench_args(spec.image_path, io_type=case.io_type, io_size=case.io_size,
                              queue_depth=case.queue_depth, total=total,
                              rw_mix_read=case.rw_mix_read, cli_args=cluster.cli_args(),
                              timeout=cluster.timeout)

    def plan(self, plan, cluster, spec, case, image_size):
        plan.add(*self.argv(cluster, spec, case))
        if case.seconds:
            plan.note(f"rbd bench is interrupted after {case.seconds:g} s (it has no "
                      f"duration option); it then flushes and prints its totals")

    def run(self, cluster, spec, case, image_size, progress):
        out = self.run_program(self.argv(cluster, spec, case), cluster, case, env=None,
                               stop_after=case.seconds, progress=progress)
        return parse_rbd_bench(out, case.io_size)


class Fio(_Program):
    """fio's rbd engine, with the same client settings as the other engines."""

    name = "fio"
    client = "fio rbd engine"

    def check(self, cluster, spec, case):
        super().check(cluster, spec, case)
        if spec.namespace:
            raise InvalidArgument(f"fio's rbd engine cannot open images in a namespace ({spec})")

    def argv(self, cluster, spec, case, image_size):
        return fio_args(spec.pool, spec.image, client=cluster.client, io_type=case.io_type,
                        io_size=case.io_size, queue_depth=case.queue_depth,
                        image_size=image_size, total=case.total, seconds=case.seconds,
                        rw_mix_read=case.rw_mix_read)

    def plan(self, plan, cluster, spec, case, image_size):
        plan.add(*self.argv(cluster, spec, case, image_size))

    def run(self, cluster, spec, case, image_size, progress):
        t = str(int(max(1, cluster.timeout)))
        options = {"rbd_cache_writethrough_until_flush": "false", "client_mount_timeout": t,
                   "rados_mon_op_timeout": t, "rados_osd_op_timeout": t}
        if cluster.keyring:
            options["keyring"] = cluster.keyring
        with open(cluster.conffile) as fh:
            text = conf_with(fh.read(), f"client.{cluster.client}", options)
        with tempfile.TemporaryDirectory(prefix="rbdnb-fio-") as tmp:
            conf = os.path.join(tmp, "ceph.conf")
            with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
                fh.write(text)
            env = {**os.environ, "CEPH_CONF": conf}
            env.pop("CEPH_ARGS", None)
            out = self.run_program(self.argv(cluster, spec, case, image_size), cluster, case,
                                   env=env, stop_after=None, progress=progress)
        return parse_fio(out)


REGISTRY: dict[str, Engine] = {e.name: e for e in (Native(), RbdBench(), Fio())}


def engine(name: str) -> Engine:
    """The engine called ``name`` (a name :func:`~rbdnb.bench.cases.make_case` checked)."""
    return REGISTRY[name]
