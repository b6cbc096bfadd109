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

The modules: :mod:`~rbdnb.bench.cases` (a case, checked before any I/O),
:mod:`~rbdnb.bench.engines` (the engines behind one name -> engine registry),
:mod:`~rbdnb.bench.native` and :mod:`~rbdnb.bench.tools` (the native engine; the external
programs' arguments and output), :mod:`~rbdnb.bench.plot`.

Read and mixed runs read data that is there: the image is pre-filled once
(sequential 4M writes over all of it) and marked with image metadata
``rbdnb.bench.prefilled``.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import asdict, dataclass
from typing import Callable

from ..ceph.cluster import Cluster
from ..errors import ImageNotFound, InvalidArgument, PoolNotFound
from ..base.plan import Plan
from ..base.specs import ImageSpec, parse_spec
from ..base.units import check_int, format_size, parse_size
from .cases import ENGINES, IO_TYPES, MAX_QUEUE_DEPTH, MAX_SECONDS, Case, all_cases, make_case
from .engines import REGISTRY, native_image

PREFILL_KEY = "rbdnb.bench.prefilled"

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
    with native_image(cluster, spec, chunk) as img:
        img.run(io_size=chunk, queue_depth=16, reads=0.0, random_offsets=False,
                count=size // chunk, seconds=None, progress=progress)
    from ..ceph.images import open_image
    with open_image(cluster, spec) as image:
        image.metadata_set(PREFILL_KEY, str(size))
    return "filled"


def _check_case(cluster: Cluster, spec: ImageSpec, case: Case, image_size: int) -> None:
    if case.io_size > image_size:
        raise InvalidArgument(f"io size {format_size(case.io_size)} is larger than image "
                              f"{spec} ({format_size(image_size)})")
    REGISTRY[case.engine].check(cluster, spec, case)


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
    case = make_case(engine, io_type, io_size, queue_depth, total, seconds, rw_mix_read)
    image_size = _image_size(cluster, spec)
    _check_case(cluster, spec, case, image_size)
    if dry_run:
        plan = Plan(f"benchmark {spec}: {engine} {io_type} {format_size(case.io_size)} "
                    f"QD{queue_depth}")
        if prefill_reads:
            _plan_prefill(plan, cluster, spec, [case])
        REGISTRY[case.engine].plan(plan, cluster, spec, case, image_size)
        return plan
    if case.io_type != "read" and case.io_type != "randread":
        cluster.check_writable(spec.pool)
    if case.io_type in ("read", "randread", "mixed") and prefill_reads:
        prefill(cluster, spec)
    return _run_case(cluster, spec, case, image_size, progress)


def _run_case(cluster: Cluster, spec: ImageSpec, case: Case, image_size: int,
              progress: Progress | None) -> BenchResult:
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    runner = REGISTRY[case.engine]
    measured = runner.run(cluster, spec, case, image_size, progress)
    client = runner.client_for(case)
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


def validate(engines=("native",), io_types=("randwrite",), io_sizes=("4K",),
             queue_depths=(16,), *, total=None, seconds=None, rw_mix_read: int = 50) -> int:
    """Check a matrix's parameters without a cluster; return the number of runs."""
    return len(all_cases(engines, io_types, io_sizes, queue_depths, total, seconds, rw_mix_read))


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
    cases = all_cases(engines, io_types, io_sizes, queue_depths, total, seconds, rw_mix_read)
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
            REGISTRY[case.engine].plan(plan, cluster, spec, case, image_size)
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

__all__ = ["ENGINES", "IO_TYPES", "MAX_QUEUE_DEPTH", "MAX_SECONDS", "BenchResult", "run", "matrix", "validate", "ratios",
           "prefill", "is_prefilled", "plot", "save", "load"]
