"""The cost of rbdnb against the rbd CLI as a pool grows: ``rbdnb bench scale``.

    rbdnb bench scale [--conf CEPH_CONF] [--sizes 100,1000,10000] [--repeat 3]
                      [--plot scale.png] [--output scale.csv]

Without ``--conf`` it starts a sandbox of its own in a temporary directory (a memstore
OSD sized for the largest pool) and stops it at the end; with it, it works in a pool of
its own (``rbdnb-scale``) that it deletes afterwards. The pool grows to each N in turn:
N clones of one golden snapshot (image size small), made by ``clone_many``. At each N,
every operation runs rbdnb and the rbd CLI back to back, ``repeat`` times interleaved,
and the medians, their ratio and the cost per image are printed:

* clone fan-out: ``clone_many`` of the new clones vs ``rbd clone`` (the CLI timed on a
  sample of the same clones, its cost per clone scaled to the count);
* long listing: ``list_images`` vs ``rbd ls -l --format json``;
* names: ``image_names`` vs ``rbd ls --format json``;
* children of the golden snapshot: ``children`` vs ``rbd children --format json``.

The process's peak RSS is reported after each N (memory must stay flat as N grows).
This is a benchmark, not a test: the exit status is 0 when it ran, whatever the ratios.
"""

from __future__ import annotations

import resource
import statistics
import time
from contextlib import ExitStack
from .compare import scratch_pool

GOALS = {"long listing": 3.0, "names": 1.0, "children": 2.0, "clone fan-out": 5.0}
CLI_CLONE_SAMPLE = 100  # rbd clone is timed on this many clones at most, per N


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _cli(cluster, *argv: str) -> None:
    from ..base import proc as _proc
    _proc.run([argv[0], *cluster.cli_args(), *argv[1:]], timeout=3600)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _row(n: int, op: str, ours: list[float], theirs: list[float], per: int, cli: str) -> dict:
    o, t = statistics.median(ours), statistics.median(theirs)
    return {"N": n, "operation": op, "rbdnb_s": round(o, 3), "cli_s": round(t, 3),
            "ratio": round(t / o, 2), "rbdnb_ms_per_image": round(o / per * 1e3, 3),
            "cli_ms_per_image": round(t / per * 1e3, 3),
            "spread_rbdnb": round(max(ours) - min(ours), 3),
            "spread_cli": round(max(theirs) - min(theirs), 3),
            "goal": f">= {GOALS[op]:g}x", "met": t / o >= GOALS[op], "cli": cli,
            "peak_rss_mib": round(_peak_rss_mib(), 1)}


def grow(cluster, pool: str, golden: str, have: int, n: int, log=print) -> dict:
    """Clones ``have`` .. ``n - 1`` made by ``clone_many``; a sample of as many more by
    ``rbd clone`` (timed, then removed). Returns the fan-out's row."""
    import rbdnb
    from ..ceph import images
    count = n - have
    ours = _timed(lambda: rbdnb.clone_many(cluster, golden, f"{pool}/vm-{{i:05d}}",
                                           count=count, start=have))
    sample = min(count, CLI_CLONE_SAMPLE)
    theirs = _timed(lambda: [_cli(cluster, "rbd", "clone", golden, f"{pool}/cli-{i:05d}")
                             for i in range(sample)])
    for i in range(sample):
        images.remove_image(cluster, f"{pool}/cli-{i:05d}", confirm=True)
    scaled = theirs / sample * count  # the CLI's cost per clone, for the same count
    log(f"N={n}: {count} clones by clone_many in {ours:.1f} s; rbd clone "
        f"{theirs / sample * 1e3:.1f} ms each ({sample} timed)")
    row = _row(n, "clone fan-out", [ours], [scaled], count,
               f"rbd clone x {sample}, scaled to {count}")
    return row


def measure(cluster, pool: str, golden: str, n: int, repeat: int, log=print) -> list[dict]:
    """The read operations at N images (the golden one included), interleaved."""
    import rbdnb
    cases = [
        ("long listing", lambda: rbdnb.list_images(cluster, pool),
         ("rbd", "ls", "-l", "--format", "json", pool), "rbd ls -l --format json"),
        ("names", lambda: rbdnb.image_names(cluster, pool),
         ("rbd", "ls", "--format", "json", pool), "rbd ls --format json"),
        ("children", lambda: rbdnb.children(cluster, golden),
         ("rbd", "children", "--format", "json", golden), "rbd children --format json"),
    ]
    rows = []
    for op, ours_fn, argv, cli in cases:
        ours, theirs = [], []
        for r in range(repeat):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for side in order:
                if side == 0:
                    ours.append(_timed(ours_fn))
                else:
                    theirs.append(_timed(lambda: _cli(cluster, *argv)))
        rows.append(_row(n, op, ours, theirs, n, cli))
        log(f"N={n}: {op}: rbdnb {statistics.median(ours):.2f} s, {cli} "
            f"{statistics.median(theirs):.2f} s")
    return rows


def scale(conf: str | None = None, *, sizes=(100, 1000, 10000), repeat: int = 3, log=print):
    """Grow a pool to each of ``sizes`` clones and measure; a tidy DataFrame, one row per
    (N, operation)."""
    import pandas as pd
    import rbdnb
    sizes = sorted(set(int(s) for s in sizes))
    rows = []
    with ExitStack() as stack:
        pool = "rbdnb-scale"
        cluster, conf = scratch_pool(stack, conf, pool)
        golden = f"{pool}/golden@base"
        rbdnb.create_image(cluster, f"{pool}/golden", "64M", exist_ok=True)
        rbdnb.create_snapshot(cluster, golden, exist_ok=True)
        rbdnb.protect_snapshot(cluster, golden)
        log(f"cluster {cluster.fsid} ({conf}); medians of {repeat} interleaved runs")
        have = 0
        for n in sizes:
            rows.append(grow(cluster, pool, golden, have, n, log))
            have = n
            rows += measure(cluster, pool, golden, n, repeat, log)
    return pd.DataFrame(rows)


def format_table(df) -> str:
    """The scale table as fixed-width text, one line per (N, operation)."""
    lines = [f"{'N':>6} {'operation':<14} {'rbdnb':>9} {'cli':>9} {'ratio':>6} "
             f"{'ms/img rbdnb':>12} {'ms/img cli':>10} {'RSS MiB':>8}  goal"]
    for _, r in df.iterrows():
        lines.append(f"{r['N']:>6} {r['operation']:<14} {r['rbdnb_s']:>8.2f}s {r['cli_s']:>8.2f}s "
                     f"{r['ratio']:>5.1f}x {r['rbdnb_ms_per_image']:>12.2f} "
                     f"{r['cli_ms_per_image']:>10.2f} {r['peak_rss_mib']:>8.0f}  "
                     f"{r['goal']} {'(met)' if r['met'] else '(NOT met)'}; vs {r['cli']}")
    return "\n".join(lines)


def plot(df, path=None):
    """Cost per image against N, one panel per operation (rbdnb and the CLI); a Figure,
    saved to ``path`` if given."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ops = list(dict.fromkeys(df["operation"]))
    fig, axes = plt.subplots(1, len(ops), figsize=(4 * len(ops), 3.4), squeeze=False)
    for ax, op in zip(axes[0], ops):
        d = df[df["operation"] == op].sort_values("N")
        ax.plot(d["N"], d["rbdnb_ms_per_image"], "o-", label="rbdnb")
        ax.plot(d["N"], d["cli_ms_per_image"], "s--", label=d["cli"].iloc[-1].split(" --")[0].split(" x ")[0])
        ax.set_xscale("log")
        ax.set_title(op)
        ax.set_xlabel("images in the pool (N)")
        ax.set_ylabel("ms per image")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
