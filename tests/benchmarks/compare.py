"""Same-run ratios of rbdnb against the native tools (all goals, one table).

    .venv/bin/python -m tests.benchmarks.compare [--conf CEPH_CONF] [--repeat 3]

The same as ``rbdnb bench compare``; see :mod:`rbdnb.sandbox.compare`.
"""

from rbdnb.cli import main

if __name__ == "__main__":
    import sys
    raise SystemExit(main(["bench", "compare", *sys.argv[1:]]))
