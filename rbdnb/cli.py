"""The ``rbdnb`` command line: a thin front end over the library.

Exit codes: 0 success, 1 an rbdnb error (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys

from .errors import InvalidArgument, RbdnbError
from .sandbox import DEFAULT_OSD_SIZE, STORES, Sandbox, default_dir


# Every leaf command that changes something takes --dry-run (and --no-dry-run, to act when
# $RBDNB_DRY_RUN=1 makes dry runs the default). The others only read; a test keeps this so.
READ_ONLY = {("sandbox", "status"), ("sandbox", "env")}


def _dry_run_option(parser) -> None:
    parser.add_argument("--dry-run", action=argparse.BooleanOptionalAction, default=None,
                        help="show what would be done and change nothing (default: "
                             "$RBDNB_DRY_RUN)")


def _dry(args) -> bool:
    from .base.settings import settings
    return settings.resolve_dry_run(getattr(args, "dry_run", None))


def cli_words(keyword: str, value) -> str | None:
    """How a fix the core names reads on the command line."""
    if keyword == "confirm":
        return "add -p confirm True (rbdnb run), or pass confirm=True (Python)"
    if keyword == "free_space":
        return f"free space with %rbd free-space {value or 'POOL'}/IMAGE ... --yes (in a " \
               f"notebook) or rbdnb.free_space()"
    return None


def _sandbox_parser(sub) -> None:
    sandbox = sub.add_parser("sandbox", help="the embedded Ceph + libvirt sandbox",
                             description="Start, inspect and stop the embedded single-node "
                                         "Ceph cluster and libvirt, on loopback.")
    ssub = sandbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    dir_help = f"sandbox directory (default: {default_dir()}, or $RBDNB_SANDBOX_DIR)"

    up = ssub.add_parser("up", help="start the sandbox (reports the running one if already up)")
    up.add_argument("--dir", help=dir_help)
    up.add_argument("--osd-size", default=DEFAULT_OSD_SIZE,
                    help=f"OSD capacity, e.g. 8G (default {DEFAULT_OSD_SIZE}); "
                         "memstore keeps the data in RAM")
    up.add_argument("--store", choices=STORES, default="memstore",
                    help="OSD object store: memstore (RAM, default) or bluestore on a file")
    up.add_argument("--port", type=int, help="monitor port on 127.0.0.1 (default: a free one)")
    up.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to wait for health (default 120)")
    up.add_argument("--hosts", type=int, metavar="N",
                    help="libvirt hosts (hypervisors) of the sandbox, 1-8: hosts 2..N are "
                         "libvirt daemons of their own, for a fleet and live migration "
                         "(default: as many as it has, 1 for a new one)")
    up.add_argument("--sites", type=int, metavar="N",
                    help="Ceph clusters, 1-2: site b is a second cluster, with an rbd-mirror "
                         "daemon on each site, for disaster recovery (default: as many as it "
                         "has, 1 for a new one)")
    up.add_argument("--json", action="store_true", help="print the status as JSON")
    _dry_run_option(up)

    status = ssub.add_parser("status", help="daemons, pids, health, fsid, conf, libvirt URI")
    status.add_argument("--dir", help=dir_help)
    status.add_argument("--json", action="store_true", help="print JSON")

    env = ssub.add_parser("env", help="print export lines for eval: CEPH_CONF, libvirt URI")
    env.add_argument("--dir", help=dir_help)

    down = ssub.add_parser("down", help="stop the processes the sandbox started")
    down.add_argument("--dir", help=dir_help)
    down.add_argument("--keep", action="store_true",
                      help="keep the state (conf, keys, data) so that `up` restarts it")
    _dry_run_option(down)

    smoke = ssub.add_parser("smoke", help="create and list an RBD image on the sandbox")
    smoke.add_argument("--dir", help=dir_help)
    _dry_run_option(smoke)


def _guest_parser(sub) -> None:
    guest = sub.add_parser("guest", help="a small guest that boots offline",
                           description="Make a small bootable guest from this host's kernel "
                                       "and busybox, for VMs on RBD without a cloud image.")
    gsub = guest.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = gsub.add_parser("build", help="write OUT.qcow2 with its kernel and initrd beside it")
    build.add_argument("out", metavar="OUT.qcow2")
    build.add_argument("--json", action="store_true", help="print how to boot it as JSON")
    _dry_run_option(build)


def _kernel_parser(sub) -> None:
    kernel = sub.add_parser("kernel", help="the Jupyter kernel 'Python 3 (rbdnb)'")
    ksub = kernel.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = ksub.add_parser("install", help="install the kernel spec (into the venv)")
    install.add_argument("--user", action="store_true", help="for this user instead")
    _dry_run_option(install)


def _lab_parser(sub) -> None:
    lab = sub.add_parser("lab", help="rbdnb's JupyterLab extension and server extension")
    lsub = lab.add_subparsers(dest="action", required=True, metavar="ACTION")
    _dry_run_option(lsub.add_parser(
        "install", help="link the built frontend into this environment and enable the server "
                        "extension (scripts/build-frontend.sh builds it)"))


def _run_parser(sub) -> None:
    run = sub.add_parser("run", help="execute a runbook with papermill (unattended)",
                         description="Execute a runbook on the rbdnb kernel. Exit codes: 0 ok, "
                                     "2 bad parameters, 3 cluster unreachable, 4 a step failed.")
    run.add_argument("notebook")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"))
    run.add_argument("--parameters", metavar="FILE.json",
                     help="parameters as a JSON object (values keep their JSON types); "
                          "-p pairs override them")
    run.add_argument("--output", "-o", help="executed notebook (default runs/NAME.ipynb)")
    run.add_argument("--html", help="also render HTML here")
    run.add_argument("--json", action="store_true", help="print the outcome as JSON")
    _dry_run_option(run)
    docs = sub.add_parser("docs", help="HTML documentation from executed runbooks")
    dsub = docs.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = dsub.add_parser("build", help="execute every runbook and write a static site")
    build.add_argument("outdir")
    build.add_argument("--runbooks", help="directory of runbooks (default: the ones that "
                       "come with rbdnb)")
    build.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                       metavar=("NAME", "VALUE"),
                       help="for every runbook that has it; RUNBOOK.NAME for one runbook")
    build.add_argument("--scale", metavar="CSV", help="add a page of the cost curves from "
                       "rbdnb bench scale --output CSV")
    _dry_run_option(build)


def _bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="benchmark an RBD image; compare rbdnb with the "
                                         "native tools",
                           description="Benchmark an RBD image with rbd bench, fio's rbd "
                                       "engine or rbdnb's native librbd engine.")
    bsub = bench.add_subparsers(dest="action", required=True, metavar="ACTION")
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument("--conf", help="ceph.conf (default: the running sandbox, $CEPH_CONF)")
    conn.add_argument("--id", default="admin", help="cephx user (default admin)")
    conn.add_argument("--keyring", help="keyring file (default: as the conf says)")
    for name, helptext in (("run", "one run: IOPS, MiB/s, latencies"),
                           ("matrix", "every combination of engines, io types, sizes and "
                                      "queue depths")):
        p = bsub.add_parser(name, help=helptext, parents=[conn])
        p.add_argument("image", metavar="POOL/IMAGE")
        many = name == "matrix"
        p.add_argument("--engine", "-e", nargs="+" if many else None, default=["native"]
                       if many else "native", help="native, rbd or fio")
        p.add_argument("--io-type", "-t", nargs="+" if many else None,
                       default=["randwrite"] if many else "randwrite",
                       help="read, write, randread, randwrite or mixed")
        p.add_argument("--io-size", "-s", nargs="+" if many else None,
                       default=["4K"] if many else "4K", help="e.g. 4K, 64K, 4M")
        p.add_argument("--queue-depth", "-q", type=int, nargs="+" if many else None,
                       default=[16] if many else 16, help="I/Os in flight")
        p.add_argument("--total", help="amount of I/O per run (default 256M)")
        p.add_argument("--seconds", type=float, help="duration per run instead of --total")
        p.add_argument("--rw-mix-read", type=int, default=50,
                       help="read percentage of mixed runs (default 50)")
        p.add_argument("--output", "-o", help="save the results (.csv or .parquet)")
        p.add_argument("--plot", help="save a plot of the results (.png or .svg)")
        p.add_argument("--json", action="store_true", help="print JSON rows")
        if many:
            p.add_argument("--repeat", type=int, default=1, help="runs of each combination")
        _dry_run_option(p)
    cmp_ = bsub.add_parser("compare", help="same-run ratios of rbdnb vs rbd bench, rbd ls, "
                                           "rbd clone, qemu-img and rbd import")
    cmp_.add_argument("--conf", help="an existing cluster's conf (default: a sandbox of its own)")
    cmp_.add_argument("--repeat", type=int, default=3, help="interleaved runs per case (3)")
    cmp_.add_argument("--clones", type=int, default=100)
    cmp_.add_argument("--quick", action="store_true", help="smaller engine runs")
    cmp_.add_argument("--output", "-o", help="save the table (.csv or .parquet)")
    _dry_run_option(cmp_)
    scl = bsub.add_parser("scale", help="rbdnb vs the rbd CLI as a pool grows to N images: "
                                        "time, ratio and cost per image for each N")
    scl.add_argument("--conf", help="an existing cluster's conf (default: a sandbox of its own)")
    scl.add_argument("--sizes", default="100,1000,10000",
                     help="the pool's sizes, comma-separated (default 100,1000,10000)")
    scl.add_argument("--repeat", type=int, default=3, help="interleaved runs per case (3)")
    scl.add_argument("--output", "-o", help="save the table (.csv or .parquet)")
    scl.add_argument("--plot", help="save the cost curves (.png or .svg)")
    _dry_run_option(scl)


def _cmd_bench(args) -> int:
    from . import bench
    if args.action == "compare" and _dry(args):
        where = f"pool rbdnb-compare of {args.conf}" if args.conf else \
            "a sandbox of its own in a temporary directory"
        print(f"plan: rbdnb bench compare\n  # would create {where}, run the cases "
              f"({args.repeat} interleaved runs each, {args.clones} clones) and remove it "
              f"again; a dry run starts nothing")
        return 0
    if args.action == "scale":
        from .base.units import check_int
        try:
            sizes = [check_int(int(x), "--sizes", 1, 100000) for x in args.sizes.split(",")]
            check_int(args.repeat, "--repeat", 1, 100)
        except ValueError:
            raise InvalidArgument(f"--sizes {args.sizes!r} is not valid: expected whole "
                                  f"numbers separated by commas, e.g. 100,1000") from None
        if _dry(args):
            where = f"pool rbdnb-scale of {args.conf}" if args.conf else \
                "a sandbox of its own in a temporary directory"
            print(f"plan: rbdnb bench scale\n  # would create {where}, grow it to "
                  f"{', '.join(map(str, sizes))} clones, time each operation against the "
                  f"rbd CLI ({args.repeat} interleaved runs) and remove it again; a dry run "
                  f"starts nothing")
            return 0
        from .sandbox.scale import format_table, plot, scale
        df = scale(args.conf, sizes=sizes, repeat=args.repeat)
        print(format_table(df))
        if args.output:
            bench.save(df, args.output)
        if args.plot:
            plot(df, args.plot)
        return 0
    if args.action == "compare":
        from .sandbox.compare import compare, format_table
        df = compare(args.conf, repeat=args.repeat, clones=args.clones, quick=args.quick)
        print(format_table(df))
        if args.output:
            bench.save(df, args.output)
        return 0
    from .ceph.cluster import connect
    with connect(args.conf, client=args.id, keyring=args.keyring) as cluster:
        if _dry(args):
            many = args.action == "matrix"
            print(bench.matrix(cluster, args.image, args.engine if many else [args.engine],
                               args.io_type if many else [args.io_type],
                               args.io_size if many else [args.io_size],
                               args.queue_depth if many else [args.queue_depth],
                               total=args.total, seconds=args.seconds,
                               rw_mix_read=args.rw_mix_read, dry_run=True))
            return 0
        if args.action == "run":
            result = bench.run(cluster, args.image, args.engine, args.io_type, args.io_size,
                               args.queue_depth, total=args.total, seconds=args.seconds,
                               rw_mix_read=args.rw_mix_read)
            df = result.to_frame()
            print(json.dumps(result.to_dict()) if args.json else str(result))
        else:
            df = bench.matrix(cluster, args.image, args.engine, args.io_type, args.io_size,
                              args.queue_depth, total=args.total, seconds=args.seconds,
                              rw_mix_read=args.rw_mix_read, repeat=args.repeat)
            if args.json:
                print(df.to_json(orient="records"))
            else:
                cols = ["engine", "io_type", "io_size", "queue_depth", "iops", "mib_s",
                        "lat_mean_us", "lat_p99_us"]
                print(df[cols].round(1).to_string(index=False))
    if args.output:
        bench.save(df, args.output)
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        bench.plot(df).savefig(args.plot, dpi=100)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``rbdnb`` command line (argparse), every sub-command with its help."""
    parser = argparse.ArgumentParser(prog="rbdnb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _sandbox_parser(sub)
    _guest_parser(sub)
    _kernel_parser(sub)
    _lab_parser(sub)
    _run_parser(sub)
    _bench_parser(sub)
    return parser


def _cmd_guest(args) -> int:
    from .virt.guest import build
    if _dry(args):
        print(build(args.out, dry_run=True))
        return 0
    boot = build(args.out)
    if args.json:
        print(json.dumps(boot.to_json(), indent=2))
    else:
        print(f"guest disk {boot.image}\n  kernel  {boot.kernel}\n  initrd  {boot.initrd}\n"
              f"  cmdline {boot.cmdline}\n  console marker: {boot.marker}")
    return 0


def _cmd_sandbox(args) -> int:
    if args.action == "up":
        box = Sandbox(args.dir, osd_size=args.osd_size, store=args.store, port=args.port,
                      timeout=args.timeout, hosts=args.hosts, sites=args.sites)
        if _dry(args):
            print(box.up(dry_run=True))
            return 0
        status = box.up()
        if args.json:
            print(json.dumps(status.to_json(), indent=2))
        else:
            print(status.summary())
            print("\nPoint tools at it:\n"
                  f"  eval \"$(rbdnb sandbox env{_dir_arg(args)})\"   "
                  "# sets CEPH_CONF and LIBVIRT_DEFAULT_URI\n"
                  f"  rbd -c {shlex.quote(status.conf)} ls\n"
                  f"  virsh -c {status.libvirt_uri} list --all")
        return 0
    box = Sandbox(args.dir)
    if args.action == "status":
        status = box.status()
        print(json.dumps(status.to_json(), indent=2) if args.json else status.summary())
        return 0 if status.running else 3
    if args.action == "env":
        for name, value in box.env().items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if args.action == "down":
        if _dry(args):
            print(box.down(keep=args.keep, dry_run=True))
            return 0
        stopped = box.down(keep=args.keep)
        print(f"stopped or removed: {', '.join(stopped)}" if stopped else "nothing was running")
        if not args.keep:
            print(f"removed the sandbox state in {box.dir}")
        return 0
    if args.action == "smoke":
        from .ceph.cluster import connect
        from .sandbox.smoke import run_smoke
        if not box.is_running():
            print(f"rbdnb: the sandbox in {box.dir} is not running: run `rbdnb sandbox up`",
                  file=sys.stderr)
            return 1
        with connect(str(box.conf_path), keyring=str(box.keyring_path)) as cluster:
            print(run_smoke(cluster, dry_run=_dry(args)))
        return 0
    raise AssertionError(args.action)  # pragma: no cover


def _dir_arg(args) -> str:
    return f" --dir {shlex.quote(args.dir)}" if args.dir else ""


def main(argv: list[str] | None = None) -> int:
    """``rbdnb ...``: run one command; returns the exit status (1 on an rbdnb error, one line on
    stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "sandbox":
            return _cmd_sandbox(args)
        if args.command == "guest":
            return _cmd_guest(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "run":
            from .runbooks.run import convert_value, read_parameters_file, run_runbook
            params = read_parameters_file(args.parameters) if args.parameters else {}
            params.update({k: convert_value(v) for k, v in args.parameter})
            if _dry(args):
                params["dry_run"] = True  # refused if the runbook has no dry_run parameter
            o = run_runbook(args.notebook, params, output=args.output, html_out=args.html)
            if args.json:
                print(json.dumps(dataclasses.asdict(o), indent=2))
                return o.exit_code
            s = o.summary
            print(f"{o.notebook}: {o.status}" + (f" ({o.message})" if o.message else "")
                  + (f"; {s.get('changed')} of {s.get('steps')} steps changed something"
                     if s else "") + (f"; executed notebook {o.output}"
                                      if os.path.exists(o.output) else "")
                  + (f", HTML {o.html}" if o.html else ""),
                  file=sys.stdout if o.exit_code == 0 else sys.stderr)
            return o.exit_code
        if args.command == "docs":
            from .runbooks.run import build_docs, convert_value
            params = {k: convert_value(v) for k, v in args.parameter}
            if _dry(args):
                params["dry_run"] = True
            from .runbooks import bundled
            outcomes = build_docs(args.outdir, args.runbooks or bundled(), parameters=params,
                                  scale=args.scale)
            for o in outcomes:
                print(f"{os.path.basename(o.notebook)}: {o.status}")
            print(f"site: {os.path.join(args.outdir, 'index.html')}")
            return 0 if all(o.exit_code == 0 for o in outcomes) else 4
        if args.command == "lab":
            from .labext import install as lab_install
            if _dry(args):
                changes = lab_install(dry_run=True)
                print("\n".join(f"would {c}" for c in changes) if changes else
                      "JupyterLab extension: nothing to do")
                return 0
            changes = lab_install()
            print("\n".join(changes) if changes else "JupyterLab extension: unchanged")
            return 0
        if args.command == "kernel":
            from .runbooks.kernelspec import install
            if _dry(args):
                print(install(user=args.user, dry_run=True))
                return 0
            print(f"kernel 'Python 3 (rbdnb)' in {install(user=args.user)}")
            return 0
    except RbdnbError as exc:
        from .base.secret import redact
        print(f"rbdnb: {redact(exc.worded(cli_words))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rbdnb: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")  # pragma: no cover
    return 2
