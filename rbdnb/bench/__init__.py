"""Benchmarks of an RBD image: ``rbd bench``, fio's rbd engine and a native librbd engine.

Every run gives one tidy row: engine, parameters, IOPS, MiB/s, latencies where
the engine gives them, the cluster's fsid and a timestamp. A matrix of runs is
a :class:`pandas.DataFrame`, saved as CSV or Parquet and plotted with
:func:`plot`::

    import rbdnb
    from rbdnb import bench
    with rbdnb.connect() as cluster:
        r = bench.run(cluster, "rbd/bench", engine="native", io_type="randwrite",
                      io_size="4K", queue_depth=16, total="256M")
        df = bench.matrix(cluster, "rbd/bench", engines=["native", "rbd", "fio"],
                          io_types=["randwrite", "randread"], io_sizes=["4K", "64K"],
                          queue_depths=[1, 16])
        bench.plot(df)

Engines:

``rbd``     the ``rbd bench`` CLI (``full-seq`` pattern for read/write, ``rand``
            for randread/randwrite/mixed). It gives no latencies.
``fio``     ``fio --ioengine=rbd --output-format=json``.
``native``  librbd's asynchronous C API in this process (:mod:`rbdnb.bench.native`).

Read and mixed runs read data that is there: the image is pre-filled once
(sequential 4M writes over all of it) and marked with image metadata
``rbdnb.bench.prefilled``.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable

from ..base import proc as _proc
from ..ceph.cluster import Cluster
from ..errors import CommandFailed, ImageNotFound, InvalidArgument, PoolNotFound, Timeout
from ..base.plan import Plan
from ..base.specs import ImageSpec, parse_spec
from ..base.units import check_int, check_seconds, format_size, parse_size
from .native import NativeImage
from .tools import ToolRun, conf_with, fio_args, parse_fio, parse_rbd_bench, rbd_bench_args

ENGINES = ("native", "rbd", "fio")
IO_TYPES = ("read", "write", "randread", "randwrite", "mixed")
DEFAULT_TOTAL = "256M"
PREFILL_KEY = "rbdnb.bench.prefilled"
# At and above this I/O size the native engine writes without librbd's cache: the
# C API must copy every buffer the cache holds, and for large writes that copy
# costs more than the cache's early acknowledgements gain (measured: 4M sequential
# writes 80% of rbd bench with the cache, 99% without; 4K random writes need it).
NATIVE_ZERO_COPY_FROM = 1 << 20
MAX_QUEUE_DEPTH = 256
MAX_SECONDS = 3600

Progress = Callable[[int, int], None]

COLUMNS = ["engine", "image", "io_type", "io_size", "io_size_bytes", "queue_depth",
           "rw_mix_read", "ops", "bytes", "seconds", "iops", "mib_s", "lat_mean_us",
           "lat_p50_us", "lat_p99_us", "lat_max_us", "client", "fsid", "timestamp"]


@dataclass
class BenchResult:
    """One run of one engine on one image."""

    engine: str
    image: str
    io_type: str
    io_size: str
    io_size_bytes: int
    queue_depth: int
    rw_mix_read: int
    ops: int
    bytes: int
    seconds: float
    iops: float
    mib_s: float
    lat_mean_us: float
    lat_p50_us: float
    lat_p99_us: float
    lat_max_us: float
    client: str
    fsid: str
    timestamp: str

    def to_dict(self) -> dict:
        return asdict(self)

    def to_frame(self):
        import pandas as pd
        return pd.DataFrame([self.to_dict()], columns=COLUMNS)

    def __str__(self) -> str:
        lat = "" if math.isnan(self.lat_mean_us) else \
            f", latency mean {self.lat_mean_us:.0f} µs p99 {self.lat_p99_us:.0f} µs"
        return (f"{self.engine} {self.io_type} {self.io_size} QD{self.queue_depth} on "
                f"{self.image}: {self.iops:,.0f} IOPS, {self.mib_s:,.1f} MiB/s{lat}")

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()


# -- validation ---------------------------------------------------------------------------
def _check_choice(value, allowed, what: str) -> str:
    if value not in allowed:
        raise InvalidArgument(f"{what} {value!r} is not valid: expected one of "
                              f"{', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class _Case:
    engine: str
    io_type: str
    io_size: int
    queue_depth: int
    total: int | None
    seconds: float | None
    rw_mix_read: int


def _case(engine, io_type, io_size, queue_depth, total, seconds, rw_mix_read) -> _Case:
    _check_choice(engine, ENGINES, "engine")
    _check_choice(io_type, IO_TYPES, "io type")
    size = parse_size(io_size, what="io size", minimum=512, maximum=64 << 20)
    if size % 512:
        raise InvalidArgument(f"io size {io_size!r} is not a multiple of 512 bytes")
    check_int(queue_depth, "queue depth", 1, MAX_QUEUE_DEPTH)
    check_int(rw_mix_read, "read percentage", 0, 100)
    if total is not None and seconds is not None:
        raise InvalidArgument("give total= or seconds=, not both")
    if seconds is not None:
        check_seconds(seconds, "seconds", MAX_SECONDS)
        nbytes = None
    else:
        nbytes = parse_size(DEFAULT_TOTAL if total is None else total, what="total",
                            minimum=size)
        if nbytes % size:
            raise InvalidArgument(f"total {format_size(nbytes)} is not a whole number of "
                                  f"{format_size(size)} I/Os")
    return _Case(engine, io_type, size, queue_depth, nbytes,
                 float(seconds) if seconds is not None else None, rw_mix_read)


def _image_size(cluster: Cluster, spec: ImageSpec) -> int:
    from ..ceph.images import open_image
    with open_image(cluster, spec, read_only=True) as image:
        return image.size()


# -- pre-filling ------------------------------------------------------------------------------
def is_prefilled(cluster: Cluster, spec: str | ImageSpec) -> bool:
    """True if rbdnb pre-filled ``spec`` at its current size."""
    from ..ceph.images import open_image
    spec = parse_spec(spec)
    with open_image(cluster, spec, read_only=True) as image:
        try:
            return image.metadata_get(PREFILL_KEY) == str(image.size())
        except KeyError:
            return False
        except Exception as exc:  # rbd.ObjectNotFound: no such key
            if type(exc).__name__ == "ObjectNotFound":
                return False
            raise


def prefill(cluster: Cluster, spec: str | ImageSpec, *, progress: Progress | None = None,
            force: bool = False, dry_run: bool = False) -> "str | Plan":
    """Write the whole image once (sequential 4M writes) so reads read real data.

    Returns ``"unchanged"`` if it was pre-filled at this size already, else ``"filled"``;
    with ``dry_run`` the plan (nothing is written).
    """
    spec = parse_spec(spec)
    if dry_run:
        return Plan(f"pre-fill {spec}").add(
            "rbd", *cluster.cli_args(), "bench", "--io-type", "write", "--io-pattern", "seq",
            "--io-size", "4M", "--io-total", "<its size>", str(spec)).note(
            f"then image metadata {PREFILL_KEY} = its size; skipped if it is there already")
    if not force and is_prefilled(cluster, spec):
        return "unchanged"
    cluster.check_writable(spec.pool)
    size = _image_size(cluster, spec)
    chunk = 4 << 20 if size >= 4 << 20 else size - size % 512
    if chunk <= 0:
        raise InvalidArgument(f"image {spec} is too small to benchmark")
    with _native(cluster, spec, chunk) as img:
        img.run(io_size=chunk, queue_depth=16, reads=0.0, random_offsets=False,
                count=size // chunk, seconds=None, progress=progress)
    from ..ceph.images import open_image
    with open_image(cluster, spec) as image:
        image.metadata_set(PREFILL_KEY, str(size))
    return "filled"


def _native(cluster: Cluster, spec: ImageSpec, io_size: int) -> NativeImage:
    settings = {}
    if io_size >= NATIVE_ZERO_COPY_FROM:
        settings = {"rbd_cache": "false", "rbd_disable_zero_copy_writes": "false"}
    return NativeImage(cluster.conffile, cluster.client, cluster.keyring, spec.pool,
                       spec.namespace, spec.image, cluster.timeout, settings)


# -- plans ------------------------------------------------------------------------------------
def _plan_case(plan: Plan, cluster: Cluster, spec: ImageSpec, case: _Case,
               image_size: int) -> None:
    amount = f"{format_size(case.total)}" if case.total else f"{case.seconds:g} s"
    if case.engine == "rbd":
        total = case.total or (1 << 50) // case.io_size * case.io_size
        plan.add(*rbd_bench_args(spec.image_path, io_type=case.io_type, io_size=case.io_size,
                                 queue_depth=case.queue_depth, total=total,
                                 rw_mix_read=case.rw_mix_read, cli_args=cluster.cli_args(),
                                 timeout=cluster.timeout))
        if case.seconds:
            plan.note(f"rbd bench is interrupted after {case.seconds:g} s (it has no "
                      f"duration option); it then flushes and prints its totals")
    elif case.engine == "fio":
        plan.add(*fio_args(spec.pool, spec.image, client=cluster.client, io_type=case.io_type,
                           io_size=case.io_size, queue_depth=case.queue_depth,
                           image_size=image_size, total=case.total, seconds=case.seconds,
                           rw_mix_read=case.rw_mix_read))
    else:
        plan.note(f"native: {case.io_type} {format_size(case.io_size)} x {amount} at queue "
                  f"depth {case.queue_depth}, librbd in this process")


def _check_case(cluster: Cluster, spec: ImageSpec, case: _Case, image_size: int) -> None:
    if case.io_size > image_size:
        raise InvalidArgument(f"io size {format_size(case.io_size)} is larger than image "
                              f"{spec} ({format_size(image_size)})")
    if case.engine != "native":
        _proc.which(case.engine)
    if case.engine == "fio" and spec.namespace:
        raise InvalidArgument(f"fio's rbd engine cannot open images in a namespace ({spec})")


def _plan_prefill(plan: Plan, cluster: Cluster, spec: ImageSpec, cases) -> bool:
    needs = any(c.io_type in ("read", "randread", "mixed") for c in cases)
    try:
        filled = is_prefilled(cluster, spec)
    except (ImageNotFound, PoolNotFound):
        filled = False  # a plan for an image a later step makes
    if needs and not filled:
        plan.note(f"pre-fill {spec} first (sequential 4M writes over the whole image), "
                  f"so reads read data")
        return True
    return False


# -- one run ----------------------------------------------------------------------------------
def run(cluster: Cluster, spec: str | ImageSpec, engine: str = "native",
        io_type: str = "randwrite", io_size="4K", queue_depth: int = 16, *,
        total=None, seconds: float | None = None, rw_mix_read: int = 50,
        prefill_reads: bool = True, progress: Progress | None = None,
        dry_run: bool = False) -> "BenchResult | Plan":
    """Run one benchmark and return its :class:`BenchResult`.

    ``total`` (default 256M) is the amount of I/O, or ``seconds`` the duration.
    Every parameter is checked before any I/O; write runs first check the
    cluster can take writes (a full cluster would block them). ``dry_run``
    returns the plan (the equivalent command line) and does nothing.
    """
    spec = parse_spec(spec)
    case = _case(engine, io_type, io_size, queue_depth, total, seconds, rw_mix_read)
    image_size = _image_size(cluster, spec)
    _check_case(cluster, spec, case, image_size)
    if dry_run:
        plan = Plan(f"benchmark {spec}: {engine} {io_type} {format_size(case.io_size)} "
                    f"QD{queue_depth}")
        if prefill_reads:
            _plan_prefill(plan, cluster, spec, [case])
        _plan_case(plan, cluster, spec, case, image_size)
        return plan
    if case.io_type != "read" and case.io_type != "randread":
        cluster.check_writable(spec.pool)
    if case.io_type in ("read", "randread", "mixed") and prefill_reads:
        prefill(cluster, spec)
    return _run_case(cluster, spec, case, image_size, progress)


def _reads_fraction(case: _Case) -> float:
    if case.io_type in ("read", "randread"):
        return 1.0
    if case.io_type == "mixed":
        return case.rw_mix_read / 100
    return 0.0


def _run_case(cluster: Cluster, spec: ImageSpec, case: _Case, image_size: int,
              progress: Progress | None) -> BenchResult:
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    client = "librbd"
    if case.engine == "native":
        img = _native(cluster, spec, case.io_size)
        client = "librbd C API, " + ("no cache, zero-copy" if case.io_size >= NATIVE_ZERO_COPY_FROM
                                     else "writearound cache")
        with img:
            res = img.run(io_size=case.io_size, queue_depth=case.queue_depth,
                          reads=_reads_fraction(case),
                          random_offsets=case.io_type.startswith("rand") or
                          case.io_type == "mixed",
                          count=case.total // case.io_size if case.total else None,
                          seconds=case.seconds, progress=progress)
        measured = ToolRun(res.ops, res.read_ops, res.bytes, res.seconds, res.lat_mean_us,
                           res.lat_p50_us, res.lat_p99_us, res.lat_max_us)
    elif case.engine == "rbd":
        measured = _run_rbd_bench(cluster, spec, case, image_size, progress)
        client = "rbd bench"
    else:
        measured = _run_fio(cluster, spec, case, image_size, progress)
        client = "fio rbd engine"
    return BenchResult(
        engine=case.engine, image=str(spec), io_type=case.io_type,
        io_size=format_size(case.io_size), io_size_bytes=case.io_size,
        queue_depth=case.queue_depth,
        rw_mix_read=case.rw_mix_read if case.io_type == "mixed" else
        (100 if case.io_type in ("read", "randread") else 0),
        ops=measured.ops, bytes=measured.bytes, seconds=round(measured.seconds, 6),
        iops=measured.ops / measured.seconds,
        mib_s=measured.bytes / measured.seconds / (1 << 20),
        lat_mean_us=measured.lat_mean_us, lat_p50_us=measured.lat_p50_us,
        lat_p99_us=measured.lat_p99_us, lat_max_us=measured.lat_max_us,
        client=client, fsid=cluster.fsid, timestamp=stamp)


def _run_tool(argv: list[str], *, seconds_hint: float, timeout: float, env: dict | None,
              stop_after: float | None, progress: Progress | None) -> str:
    """Run a benchmark program, reporting elapsed time as progress; return its stdout.

    With ``stop_after``, the program is sent SIGINT after that many seconds
    (``rbd bench`` then stops, flushes and prints its result).
    """
    argv = [_proc.which(argv[0]), *argv[1:]]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env)
        start = time.monotonic()
        interrupted = False
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - start
                if stop_after is not None and elapsed >= stop_after and not interrupted:
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
                if elapsed > timeout:
                    raise Timeout(f"{os.path.basename(argv[0])} did not finish within "
                                  f"{timeout:g} s")
                if progress is not None:
                    progress(min(int(elapsed * 1000), int(seconds_hint * 1000)),
                             int(seconds_hint * 1000))
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise CommandFailed(f"{os.path.basename(argv[0])} failed: "
                            f"{_proc.failure_line(stderr or stdout, proc.returncode)}",
                            argv=argv, returncode=proc.returncode, stderr=stderr)
    if progress is not None:
        progress(int(seconds_hint * 1000), int(seconds_hint * 1000))
    return stdout


def _expected_seconds(case: _Case) -> float:
    # For progress only: a guess from a modest 50 MiB/s or 2000 IOPS, whichever is slower.
    if case.seconds is not None:
        return case.seconds
    ops = case.total / case.io_size
    return max(1.0, min(600.0, max(case.total / (50 << 20), ops / 2000)))


def _run_rbd_bench(cluster: Cluster, spec: ImageSpec, case: _Case, image_size: int,
                   progress: Progress | None) -> ToolRun:
    # rbd bench has no duration option: a timed run asks for far more than it can do
    # and is interrupted (SIGINT) at the time; it then flushes and prints its totals.
    total = case.total if case.total is not None else (1 << 50) // case.io_size * case.io_size
    argv = rbd_bench_args(spec.image_path, io_type=case.io_type, io_size=case.io_size,
                          queue_depth=case.queue_depth, total=total,
                          rw_mix_read=case.rw_mix_read, cli_args=cluster.cli_args(),
                          timeout=cluster.timeout)
    expected = _expected_seconds(case)
    out = _run_tool(argv, seconds_hint=expected, timeout=_tool_timeout(cluster, case, expected),
                    env=None, stop_after=case.seconds, progress=progress)
    return parse_rbd_bench(out, case.io_size)


def _tool_timeout(cluster: Cluster, case: _Case, expected: float) -> float:
    if case.seconds is not None:
        return case.seconds + 2 * cluster.timeout
    return max(20 * expected, 120.0) + 2 * cluster.timeout


def _run_fio(cluster: Cluster, spec: ImageSpec, case: _Case, image_size: int,
             progress: Progress | None) -> ToolRun:
    t = str(int(max(1, cluster.timeout)))
    options = {"rbd_cache_writethrough_until_flush": "false", "client_mount_timeout": t,
               "rados_mon_op_timeout": t, "rados_osd_op_timeout": t}
    if cluster.keyring:
        options["keyring"] = cluster.keyring
    with open(cluster.conffile) as fh:
        text = conf_with(fh.read(), f"client.{cluster.client}", options)
    argv = fio_args(spec.pool, spec.image, client=cluster.client, io_type=case.io_type,
                    io_size=case.io_size, queue_depth=case.queue_depth,
                    image_size=image_size, total=case.total, seconds=case.seconds,
                    rw_mix_read=case.rw_mix_read)
    expected = _expected_seconds(case)
    with tempfile.TemporaryDirectory(prefix="rbdnb-fio-") as tmp:
        conf = os.path.join(tmp, "ceph.conf")
        with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            fh.write(text)
        env = {**os.environ, "CEPH_CONF": conf}
        env.pop("CEPH_ARGS", None)
        out = _run_tool(argv, seconds_hint=expected,
                        timeout=_tool_timeout(cluster, case, expected), env=env,
                        stop_after=None, progress=progress)
    return parse_fio(out)


def _cases(engines, io_types, io_sizes, queue_depths, total, seconds,
           rw_mix_read) -> list[_Case]:
    """Every combination, checked, engines innermost."""
    lists = {"engines": engines, "io_types": io_types, "io_sizes": io_sizes,
             "queue_depths": queue_depths}
    for name, values in lists.items():
        if isinstance(values, (str, int)) or not list(values):
            raise InvalidArgument(f"{name} {values!r} is not valid: expected a non-empty list")
    return [_case(e, t, s, q, total, seconds, rw_mix_read)
            for t in io_types for s in io_sizes for q in queue_depths for e in engines]


def validate(engines=("native",), io_types=("randwrite",), io_sizes=("4K",),
             queue_depths=(16,), *, total=None, seconds=None, rw_mix_read: int = 50) -> int:
    """Check a matrix's parameters without a cluster; return the number of runs."""
    return len(_cases(engines, io_types, io_sizes, queue_depths, total, seconds, rw_mix_read))


def ratios(df, baseline: str = "rbd", metric: str = "iops"):
    """Each engine's ``metric`` as a fraction of ``baseline``'s, per case (same run)."""
    keys = ["io_type", "io_size", "queue_depth"]
    table = df.pivot_table(index=keys, columns="engine", values=metric, aggfunc="median")
    if baseline not in table.columns:
        raise InvalidArgument(f"no {baseline} runs in the results to compare with")
    out = table.div(table[baseline], axis=0).drop(columns=[baseline])
    out.columns = [f"{c} / {baseline}" for c in out.columns]
    return out.round(3)


# -- a matrix of runs -------------------------------------------------------------------------
def matrix(cluster: Cluster, spec: str | ImageSpec, engines=("native",),
           io_types=("randwrite",), io_sizes=("4K",), queue_depths=(16,), *,
           total=None, seconds: float | None = None, rw_mix_read: int = 50,
           repeat: int = 1, progress: Progress | None = None, dry_run: bool = False,
           image_size=None):
    """Run every combination and return one DataFrame row per run.

    Engines are interleaved innermost, so the engines of one case run back to
    back against the same cluster state. Every combination is validated before
    the first run. ``progress(done, total)`` counts finished runs. A dry run of an
    image that does not exist yet (a runbook's plan) takes its size as ``image_size``.
    """
    import pandas as pd
    spec = parse_spec(spec)
    cases = _cases(engines, io_types, io_sizes, queue_depths, total, seconds, rw_mix_read)
    check_int(repeat, "repeat", 1, 100)
    cases = [c for _ in range(repeat) for c in cases]
    if dry_run and image_size is not None:
        image_size = parse_size(image_size, what="image size")
    else:
        image_size = _image_size(cluster, spec)
    for case in cases:
        _check_case(cluster, spec, case, image_size)
    if dry_run:
        plan = Plan(f"benchmark {spec}: {len(cases)} runs")
        _plan_prefill(plan, cluster, spec, cases)
        for case in cases:
            _plan_case(plan, cluster, spec, case, image_size)
        return plan
    if any(c.io_type not in ("read", "randread") for c in cases):
        cluster.check_writable(spec.pool)
    if any(c.io_type in ("read", "randread", "mixed") for c in cases):
        prefill(cluster, spec)
    rows = []
    if progress:
        progress(0, len(cases))
    for i, case in enumerate(cases):
        rows.append(_run_case(cluster, spec, case, image_size, None).to_dict())
        if progress:
            progress(i + 1, len(cases))
    return pd.DataFrame(rows, columns=COLUMNS)


# -- saving and loading -------------------------------------------------------------------
def save(df, path: str) -> str:
    """Write results to ``path``: ``.csv`` or ``.parquet`` (by its suffix)."""
    kind = _kind(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if kind == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def load(path: str):
    """Read results saved by :func:`save`."""
    import pandas as pd
    kind = _kind(path)
    if not os.path.isfile(path):
        raise InvalidArgument(f"results file {path} does not exist")
    df = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    missing = [c for c in ("engine", "io_type", "io_size", "queue_depth", "iops", "mib_s")
               if c not in df.columns]
    if missing:
        raise InvalidArgument(f"{path} is not a benchmark results file: no column "
                              f"{', '.join(missing)}")
    return df


def _kind(path: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgument(f"path {path!r} is not valid")
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in (".csv", ".parquet"):
        raise InvalidArgument(f"results file {path} must end in .csv or .parquet")
    return suffix[1:]


from .plot import plot  # noqa: E402

__all__ = ["ENGINES", "IO_TYPES", "BenchResult", "run", "matrix", "validate", "ratios",
           "prefill", "is_prefilled", "plot", "save", "load"]
