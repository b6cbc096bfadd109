"""Time from `rbdnb sandbox up` to a healthy cluster (goal: under 15 s on 2 cores).

    .venv/bin/python -m tests.benchmarks.sandbox_start [--runs 3] [--store memstore]

Each run starts a fresh sandbox in a temporary directory, records when each phase was
done (files written, monitor up, all daemons up, libvirt serving, healthy), and stops
it. A run is also timed as a whole command (`rbdnb sandbox up` in a subprocess) so the
figure includes Python start-up. This is a benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rbdnb.sandbox import Sandbox

GOAL_SECONDS = 15.0
PHASES = ("files", "mon", "daemons", "libvirt", "healthy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", default="memstore", choices=("memstore", "bluestore"))
    parser.add_argument("--osd-size", default="8G")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="rbdnb-bench-") as tmp:
        for i in range(args.runs):
            box = Sandbox(Path(tmp) / f"run{i}", store=args.store, osd_size=args.osd_size)
            status = box.up()
            box.down()
            rows.append(status.timings)
        cmd_dir = Path(tmp) / "cli"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "rbdnb", "sandbox", "up", "--dir", str(cmd_dir),
                        "--store", args.store, "--osd-size", args.osd_size],
                       check=True, capture_output=True)
        whole = time.monotonic() - t0
        Sandbox(cmd_dir).down()

    print(f"sandbox up -> healthy, {args.store}, OSD {args.osd_size}, {args.runs} runs "
          f"(seconds since up() began)")
    print("run  " + "  ".join(f"{p:>8}" for p in PHASES))
    for i, row in enumerate(rows):
        print(f"{i:<4} " + "  ".join(f"{row.get(p, float('nan')):8.2f}" for p in PHASES))
    healthy = [row["healthy"] for row in rows]
    median = statistics.median(healthy)
    print(f"median to healthy: {median:.2f} s; whole `rbdnb sandbox up` command: {whole:.2f} s; "
          f"goal < {GOAL_SECONDS:.0f} s: {'met' if max(median, whole) < GOAL_SECONDS else 'NOT met'}"
          f" ({GOAL_SECONDS / max(median, whole):.1f}x under the goal)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
