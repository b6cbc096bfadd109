"""Same-run ratios of rbdnb against the native tools: ``rbdnb bench compare``.

    rbdnb bench compare [--conf CEPH_CONF] [--repeat 3] [--quick]

Without ``--conf`` it starts a sandbox of its own in a temporary directory and
stops it at the end; with it, it works in a pool of its own (``rbdnb-compare``)
that it deletes afterwards. Every case runs rbdnb and the native tool back to
back, ``repeat`` times interleaved, and reports the medians and their ratio
against the goals:

* native engine vs ``rbd bench``: 4K random write, 16 in flight (IOPS, goal >= 90%);
* native engine vs ``rbd bench``: 4M sequential write, 16 in flight (MiB/s, goal >= 95%);
* list on an open connection vs ``rbd ls`` (goal >= 10x faster);
* ``clone_many`` of N clones vs N x ``rbd clone`` (goal >= 5x faster);
* import of a 1 GiB raw image with 256 MiB of data: rbdnb vs ``qemu-img convert``
  and ``rbd import`` (goal: no slower than the fastest).

This is a benchmark, not a test: it prints figures; the exit status is 0 when
it ran, whatever the ratios.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

MiB = 1024**2


@dataclass
class Row:
    """One comparison: rbdnb's figure, the native tool's in the same run, their ratio and the goal."""
    case: str
    rbdnb: str
    native: str
    ratio: float
    goal: str
    goal_ratio: float

    @property
    def met(self) -> bool:
        return self.ratio >= self.goal_ratio


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _cli(cluster, *argv: str) -> None:
    from ..base import proc as _proc
    _proc.run([argv[0], *cluster.cli_args(), *argv[1:]], timeout=600)


def bench_engines(cluster, pool: str, repeat: int, quick: bool) -> list[Row]:
    """native vs rbd bench on one image, interleaved."""
    import rbdnb
    from ..bench import run
    spec = f"{pool}/compare-bench"
    rbdnb.create_image(cluster, spec, "2G", exist_ok=True)
    cases = [("4K random write, QD16", "randwrite", "4K", "64M" if quick else "256M",
              "iops", "IOPS", 0.90),
             ("4M sequential write, QD16", "write", "4M", "512M" if quick else "2G",
              "mib_s", "MiB/s", 0.95)]
    run(cluster, spec, "native", "write", "4M", 16, total="2G")  # allocate every object once
    rows = []
    for title, io_type, size, total, metric, unit, goal in cases:
        ours, theirs = [], []
        # One unmeasured run first: the first run after a change of workload pays for the
        # cluster's transition (measured: a 4M run right after 4K random writes is 2-4x
        # slower, whichever engine it is). Then the engines alternate which goes first.
        run(cluster, spec, "rbd", io_type, size, 16, total=total)
        for r in range(repeat):
            order = ("native", "rbd") if r % 2 == 0 else ("rbd", "native")
            for engine in order:
                value = getattr(run(cluster, spec, engine, io_type, size, 16, total=total),
                                metric)
                (ours if engine == "native" else theirs).append(value)
        o, t = statistics.median(ours), statistics.median(theirs)
        rows.append(Row(f"native engine: {title}", f"{o:,.0f} {unit}",
                        f"rbd bench {t:,.0f} {unit}", o / t, f">= {goal:.0%} of rbd bench",
                        goal))
    rbdnb.remove_image(cluster, spec, confirm=True)
    return rows


def bench_list(cluster, pool: str, calls: int) -> Row:
    """Listing a pool of 20 images: ``image_names`` against ``rbd ls``."""
    import rbdnb
    for i in range(20):
        rbdnb.create_image(cluster, f"{pool}/list-{i:02d}", "1G", exist_ok=True)
    ours = _timed(lambda: [rbdnb.image_names(cluster, pool) for _ in range(calls)]) / calls
    theirs = _timed(lambda: [_cli(cluster, "rbd", "ls", pool) for _ in range(calls)]) / calls
    return Row("list images (per call)", f"{ours * 1e3:.2f} ms", f"rbd ls {theirs * 1e3:.1f} ms",
               theirs / ours, ">= 10x faster", 10.0)


def bench_clones(cluster, pool: str, count: int, repeat: int) -> Row:
    """Cloning many VM disks from a golden snapshot: ``clone_many`` against ``rbd clone`` in a
    loop."""
    import rbdnb
    rbdnb.create_image(cluster, f"{pool}/golden", "10G", exist_ok=True)
    rbdnb.create_snapshot(cluster, f"{pool}/golden@base", exist_ok=True)
    rbdnb.protect_snapshot(cluster, f"{pool}/golden@base")  # both sides start protected
    ours, theirs = [], []
    for r in range(repeat):  # interleaved; the median of each side is reported
        ours.append(_timed(lambda: rbdnb.clone_many(cluster, f"{pool}/golden@base",
                                                    f"{pool}/ours{r}-{{i:03d}}", count=count)))
        theirs.append(_timed(lambda: [_cli(cluster, "rbd", "clone", f"{pool}/golden@base",
                                           f"{pool}/cli{r}-{i:03d}") for i in range(count)]))
    o, t = statistics.median(ours), statistics.median(theirs)
    return Row(f"{count} clones", f"{o:.2f} s", f"{count} x rbd clone {t:.2f} s", t / o,
               ">= 5x faster", 5.0)


def _make_sparse_raw(path: Path, size: int, data: int) -> None:
    """A raw disk of ``size`` bytes with ``data`` bytes of random data in 4 MiB runs."""
    chunk = os.urandom(4 * MiB)
    stride = size // (data // len(chunk))
    with open(path, "wb") as fh:
        fh.truncate(size)
        for off in range(0, size, stride):
            fh.seek(off)
            fh.write(chunk)


def bench_import(cluster, pool: str, repeat: int, tmp: Path) -> Row:
    """Importing a raw image: ``import_image`` against ``qemu-img convert`` and ``rbd import``."""
    import rbdnb
    from ..base import proc as _proc
    from ..ceph import qemu
    src = tmp / "disk.raw"
    _make_sparse_raw(src, 1024 * MiB, 256 * MiB)
    times: dict[str, list[float]] = {"rbdnb": [], "qemu-img convert": [], "rbd import": []}
    for r in range(repeat):
        for name in times:  # interleaved, so that drift in the machine hits all alike
            dest = f"{pool}/imp-{name.split()[0]}-{r}"
            if name == "rbdnb":
                t = _timed(lambda: rbdnb.import_image(cluster, src, dest))
            elif name == "qemu-img convert":
                target = qemu.rbd_filename(dest, cluster)
                t = _timed(lambda: _proc.run(["qemu-img", "convert", "-f", "raw", "-O", "raw",
                                              str(src), target], timeout=600))
            else:
                t = _timed(lambda: _cli(cluster, "rbd", "import", "--no-progress", str(src),
                                        dest))
            times[name].append(t)
            rbdnb.remove_image(cluster, dest, confirm=True)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    fastest = min(med["qemu-img convert"], med["rbd import"])
    return Row("import 1G raw (256M data)", f"{med['rbdnb']:.2f} s",
               f"qemu-img {med['qemu-img convert']:.2f} s, rbd import {med['rbd import']:.2f} s",
               fastest / med["rbdnb"], ">= 1.0x the fastest", 1.0)


def scratch_pool(stack: ExitStack, conf: str | None, pool: str):
    """A connection to ``conf`` (a sandbox of its own in a temporary directory when None)
    and a pool ``pool`` on it, both undone when ``stack`` closes; (cluster, conf)."""
    import rbdnb
    if conf is None:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{pool}-")))
        # Each clone is a few small objects and omap entries: 8G of memstore is ample.
        box = rbdnb.Sandbox(tmp / "sandbox", osd_size="8G")
        box.up()
        stack.callback(box.down)
        conf = str(box.conf_path)
    cluster = stack.enter_context(rbdnb.connect(conf))
    rbdnb.create_pool(cluster, pool, 32, exist_ok=True)
    stack.callback(lambda: rbdnb.delete_pool(cluster, pool, confirm=True))
    return cluster, conf


def compare(conf: str | None = None, *, repeat: int = 3, clones: int = 100,
            list_calls: int = 30, quick: bool = False, log=print):
    """Run every case and return a DataFrame (case, rbdnb, native, ratio, goal, met)."""
    import pandas as pd
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rbdnb-compare-")))
        pool = "rbdnb-compare"
        cluster, conf = scratch_pool(stack, conf, pool)
        log(f"cluster {cluster.fsid} ({conf}); medians of {repeat} interleaved runs")
        rows = bench_engines(cluster, pool, repeat, quick)
        rows.append(bench_list(cluster, pool, list_calls))
        rows.append(bench_clones(cluster, pool, clones, repeat))
        rows.append(bench_import(cluster, pool, repeat, tmp))
    return pd.DataFrame([{"case": r.case, "rbdnb": r.rbdnb, "native (same run)": r.native,
                          "ratio": round(r.ratio, 3), "goal": r.goal, "met": r.met}
                         for r in rows])


def format_table(df) -> str:
    """The comparison as a fixed-width text table."""
    lines = [f"{'case':<40} {'rbdnb':>13}  {'native (same run)':<44} {'ratio':>7}  goal"]
    for _, r in df.iterrows():
        ratio = f"{r['ratio']:.0%}" if r["ratio"] < 2 and "%" in r["goal"] else \
            f"{r['ratio']:.1f}x"
        lines.append(f"{r['case']:<40} {r['rbdnb']:>13}  {r['native (same run)']:<44} "
                     f"{ratio:>7}  {r['goal']} {'(met)' if r['met'] else '(NOT met)'}")
    return "\n".join(lines)
