"""Same-run ratios of rbdnb's core against the native tools.

    .venv/bin/python -m tests.benchmarks.core_ops [--conf CEPH_CONF] [--clones 100] [--repeat 3]

Without ``--conf`` it starts a sandbox of its own in a temporary directory and
stops it at the end. It prints, for each case, rbdnb's time, the native tool's,
and the ratio, against the goals of the core issue:

* list on an open connection vs ``rbd ls`` (goal >= 10x faster);
* ``clone_many`` of N clones vs N x ``rbd clone`` (goal >= 5x faster);
* import of a 1 GiB raw image with 256 MiB of data: rbdnb vs plain
  ``qemu-img convert`` vs ``rbd import`` (goal: rbdnb no slower than the fastest).

This is a benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import rbdnb
from rbdnb import qemu

MiB = 1024**2


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cli(conf: str, *argv: str) -> None:
    subprocess.run(list(argv) + ["--conf", conf], check=True, capture_output=True, timeout=300)


def bench_list(cluster, conf: str, pool: str, calls: int) -> tuple[float, float]:
    for i in range(20):
        rbdnb.create_image(cluster, f"{pool}/list-{i:02d}", "1G", exist_ok=True)
    ours = timed(lambda: [rbdnb.image_names(cluster, pool) for _ in range(calls)]) / calls
    theirs = timed(lambda: [cli(conf, "rbd", "ls", pool) for _ in range(calls)]) / calls
    return ours, theirs


def bench_clones(cluster, conf: str, pool: str, count: int, repeat: int) -> tuple[float, float]:
    rbdnb.create_image(cluster, f"{pool}/golden", "10G", exist_ok=True)
    rbdnb.create_snapshot(cluster, f"{pool}/golden@base", exist_ok=True)
    rbdnb.protect_snapshot(cluster, f"{pool}/golden@base")  # both sides start protected
    ours, theirs = [], []
    for r in range(repeat):  # interleaved; the median of each side is reported
        ours.append(timed(lambda: rbdnb.clone_many(cluster, f"{pool}/golden@base",
                                                   f"{pool}/ours{r}-{{i:03d}}", count=count)))
        theirs.append(timed(lambda: [cli(conf, "rbd", "clone", f"{pool}/golden@base",
                                         f"{pool}/cli{r}-{i:03d}") for i in range(count)]))
    return statistics.median(ours), statistics.median(theirs)


def make_sparse_raw(path: Path, size: int, data: int) -> None:
    """A raw disk of ``size`` bytes with ``data`` bytes of random data in 4 MiB runs."""
    chunk = os.urandom(4 * MiB)
    stride = size // (data // len(chunk))
    with open(path, "wb") as fh:
        fh.truncate(size)
        for off in range(0, size, stride):
            fh.seek(off)
            fh.write(chunk)


def bench_import(cluster, conf: str, pool: str, repeat: int, tmp: Path) -> dict[str, float]:
    src = tmp / "disk.raw"
    make_sparse_raw(src, 1024 * MiB, 256 * MiB)
    times: dict[str, list[float]] = {"rbdnb": [], "qemu-img convert": [], "rbd import": []}
    for r in range(repeat):
        for name in times:  # interleaved, so that drift in the machine hits all alike
            dest = f"{pool}/imp-{name.split()[0]}-{r}"
            if name == "rbdnb":
                t = timed(lambda: rbdnb.import_image(cluster, src, dest))
            elif name == "qemu-img convert":
                target = qemu.rbd_filename(dest, cluster)
                t = timed(lambda: subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "raw",
                                                  str(src), target], check=True, timeout=600))
            else:
                t = timed(lambda: cli(conf, "rbd", "import", "--no-progress", str(src), dest))
            times[name].append(t)
            rbdnb.remove_image(cluster, dest, confirm=True)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", help="an existing cluster's ceph.conf (default: own sandbox)")
    parser.add_argument("--clones", type=int, default=100)
    parser.add_argument("--list-calls", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rbdnb-bench-")))
        if args.conf:
            conf = args.conf
        else:
            box = rbdnb.Sandbox(tmp / "sandbox", osd_size="8G")
            box.up()
            stack.callback(box.down)
            conf = str(box.conf_path)
        cluster = stack.enter_context(rbdnb.connect(conf))
        pool = "rbdnb-bench"
        rbdnb.create_pool(cluster, pool, 32, exist_ok=True)
        stack.callback(lambda: rbdnb.delete_pool(cluster, pool, confirm=True))
        print(f"cluster {cluster.fsid} ({conf}); medians of {args.repeat} interleaved runs")

        list_ours, list_cli = bench_list(cluster, conf, pool, args.list_calls)
        clone_ours, clone_cli = bench_clones(cluster, conf, pool, args.clones, args.repeat)
        imports = bench_import(cluster, conf, pool, args.repeat, tmp)

    fastest_native = min(imports["qemu-img convert"], imports["rbd import"])
    rows = [
        ("list (per call)", f"{list_ours * 1e3:.2f} ms", f"rbd ls {list_cli * 1e3:.1f} ms",
         list_cli / list_ours, ">= 10x"),
        (f"{args.clones} clones", f"{clone_ours:.2f} s",
         f"{args.clones} x rbd clone {clone_cli:.2f} s", clone_cli / clone_ours, ">= 5x"),
        ("import 1G raw (256M data)", f"{imports['rbdnb']:.2f} s",
         f"qemu-img {imports['qemu-img convert']:.2f} s, rbd import {imports['rbd import']:.2f} s",
         fastest_native / imports["rbdnb"], ">= 1.0x vs fastest"),
    ]
    print(f"{'case':<28} {'rbdnb':>10}  {'native (same run)':<42} {'ratio':>7}  goal")
    for case, ours, native, ratio, goal in rows:
        print(f"{case:<28} {ours:>10}  {native:<42} {ratio:>6.1f}x  {goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
