"""``qemu-img`` against RBD: ``rbd:pool/image`` filenames, info, create, resize, convert.

QEMU reaches the cluster by conf path + client id + keyring path, given as
options in the ``rbd:`` filename; the key itself is never on a command line.
Values are escaped as QEMU's rbd driver requires (``\\`` before ``:``, ``@``,
``=`` and ``\\``). The client timeouts are passed the same way, so a stalled
cluster fails a conversion instead of hanging it.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Callable

from ..base import proc as _proc
from ..errors import CommandFailed, InvalidArgument, NotFound, Timeout
from ..base.plan import Plan, Result
from ..base.specs import ImageSpec, parse_spec
from ..base.units import format_size, parse_size

_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx", "qed")


def _escape(value: str) -> str:
    return re.sub(r"([\\:@=])", r"\\\1", value)


def rbd_filename(spec: str | ImageSpec, cluster=None, *, conffile: str | None = None,
                 client: str | None = None, keyring: str | None = None,
                 timeout: float | None = None) -> str:
    """``rbd:pool/image[@snap]:conf=...:id=...[:keyring=...]`` for qemu-img and QEMU."""
    spec = parse_spec(spec, snap="optional")
    if cluster is not None:
        conffile = conffile or cluster.conffile
        client = client or cluster.client
        keyring = keyring or cluster.keyring
        timeout = timeout or cluster.timeout
    out = f"rbd:{spec.image_path}" + (f"@{spec.snap}" if spec.snap else "")
    if conffile:
        out += f":conf={_escape(str(conffile))}"
    if client:
        out += f":id={_escape(client)}"
    if keyring:
        out += f":keyring={_escape(str(keyring))}"
    if timeout:
        t = str(int(max(1, timeout)))
        out += f":client_mount_timeout={t}:rados_osd_op_timeout={t}:rados_mon_op_timeout={t}"
    return out


def is_rbd(target: str) -> bool:
    """Whether a qemu-img target names an RBD image (``rbd:pool/image``)."""
    return isinstance(target, str) and target.startswith("rbd:")


def split_rbd(target: str) -> tuple[str, dict[str, str]]:
    """``rbd:pool/image[@snap][:key=value...]`` -> (``pool/image[@snap]``, options), as QEMU's
    rbd driver reads it (``\\`` escapes a ``:``)."""
    parts = re.split(r"(?<!\\):", target[len("rbd:"):])
    options = {}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq:
            raise InvalidArgument(f"{target}: option {part!r} is not key=value")
        options[key] = re.sub(r"\\(.)", r"\1", value)
    return parts[0], options


def _target(target, cluster) -> str:
    """A path stays a path; an ``rbd:pool/image`` or ImageSpec becomes a full rbd: filename:
    the cluster's conf, id, keyring and timeouts added where the name does not give its own
    (``rbd:pool/img:id=glance:conf=/etc/ceph/ceph.conf`` keeps them)."""
    if isinstance(target, ImageSpec):
        return rbd_filename(target, cluster)
    if not is_rbd(target) or cluster is None:
        return os.fspath(target)
    spec, given = split_rbd(target)
    full = rbd_filename(spec, cluster)
    _, ours = split_rbd(full)
    if "id" in given:
        ours.pop("keyring", None)  # that client's keyring is the one its conf names
    merged = {**ours, **given}
    return f"rbd:{spec}" + "".join(f":{k}={_escape(v)}" for k, v in merged.items())


def display_argv(argv: list[str]) -> list[str]:
    """The command as shown in a plan: rbd: options beyond conf/id/keyring left out."""
    return [re.sub(r":(client_mount_timeout|rados_osd_op_timeout|rados_mon_op_timeout)=\d+",
                   "", a) for a in argv]


def _check_format(fmt: str | None, what: str) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise InvalidArgument(f"{what} {fmt!r} is not valid: choose from {', '.join(FORMATS)}")


def info(target, cluster=None, *, timeout: float = 60) -> dict:
    """``qemu-img info --output=json``: virtual-size, format, actual-size, ...

    What is not there is a typed error naming it (ImageNotFound, PoolNotFound, NotFound for
    a file), as librbd or the file system says, not qemu-img's last line."""
    text = str(target)
    if isinstance(target, ImageSpec) or is_rbd(text):
        # (an rbd: name with its own conf= is another cluster's: qemu-img asks it)
        if cluster is not None and ":conf=" not in text:
            from .images import image_info
            image_info(cluster, target if isinstance(target, ImageSpec) else split_rbd(text)[0])
    elif not re.match(r"[a-z][a-z0-9+.-]*:", text) and not os.path.exists(text):
        raise NotFound(f"{target}: no such file")  # a local path (not nbd:, json:, ...)
    argv = ["qemu-img", "info", "--output=json", _target(target, cluster)]
    proc = _proc.run(argv, timeout=timeout, what=f"qemu-img info {_name(target)}")
    return json.loads(proc.stdout)


def _name(target) -> str:
    return str(target) if not is_rbd(str(target)) else "rbd:" + split_rbd(str(target))[0]


def current_size(target, cluster=None, *, timeout: float = 60) -> int | None:
    """The virtual size of what a target names, or None if there is nothing there (an RBD
    image is looked up with librbd -- not known without a cluster: None --; a file is asked
    of qemu-img)."""
    if is_rbd(str(target)) or isinstance(target, ImageSpec):
        from .images import image_info
        if cluster is None:
            return None
        spec = target if isinstance(target, ImageSpec) else split_rbd(target)[0]
        try:
            return image_info(cluster, spec).size
        except NotFound:
            return None
    if not os.path.exists(os.fspath(target)):
        return None
    return int(info(target, cluster, timeout=timeout)["virtual-size"])


def create(target, size, cluster=None, *, fmt: str = "raw", exist_ok: bool = False,
           dry_run: bool = False, timeout: float = 120) -> Result | Plan:
    """``qemu-img create -f FMT TARGET SIZE``. With ``exist_ok``, a target that exists is left
    as it is ("unchanged", its size said when it differs: a runbook creates 1G, then grows
    it); without, qemu-img itself overwrites a file and fails on an RBD image."""
    _check_format(fmt, "format")
    nbytes = parse_size(size, what="size")
    argv = ["qemu-img", "create", "-f", fmt, _target(target, cluster), str(nbytes)]
    plan = Plan(f"qemu-img create {_name(target)}").add(*display_argv(argv))
    if dry_run:
        return plan
    if exist_ok:
        found = current_size(target, cluster, timeout=timeout)
        if found == nbytes:
            return Result(plan.action, False, f"unchanged: exists, {format_size(nbytes)}",
                          plan)
        if found is not None:  # e.g. grown since (the guide creates 1G, then resizes)
            return Result(plan.action, False, f"unchanged: exists, {format_size(found)} "
                          f"(not {format_size(nbytes)}): left as it is", plan)
    _proc.run(argv, timeout=timeout, what=f"qemu-img create {_name(target)}")
    return Result(plan.action, True, f"created, {format_size(nbytes)}", plan)


def resize(target, size, cluster=None, *, shrink: bool = False, dry_run: bool = False,
           timeout: float = 120) -> Result | Plan:
    """``qemu-img resize [--shrink] TARGET SIZE``."""
    nbytes = parse_size(size, what="size")
    filename = _target(target, cluster)
    argv = ["qemu-img", "resize"]
    if shrink:
        argv.append("--shrink")
    if is_rbd(filename):
        argv += ["-f", "raw"]  # RBD images hold raw data; saying so skips probing
    argv += [filename, str(nbytes)]
    plan = Plan(f"qemu-img resize {_name(target)}").add(*display_argv(argv))
    if dry_run:
        return plan
    if current_size(target, cluster, timeout=timeout) == nbytes:
        return Result(plan.action, False, f"unchanged: already {format_size(nbytes)}", plan)
    _proc.run(argv, timeout=timeout, what=f"qemu-img resize {_name(target)}")
    return Result(plan.action, True, f"resized to {format_size(nbytes)}", plan)


def convert_argv(source, dest, cluster=None, *, source_format: str | None = None,
                 dest_format: str = "raw", parallel: int = 16, out_of_order: bool = True,
                 skip_create: bool = False, target_is_zero: bool = False) -> list[str]:
    """``qemu-img convert``'s argument list. ``skip_create`` (``-n``) writes into a target
    that exists; ``target_is_zero`` says it reads as zeros (a new image), so holes in the
    source are skipped rather than written."""
    _check_format(source_format, "source format")
    _check_format(dest_format, "destination format")
    argv = ["qemu-img", "convert", "-p"]
    if source_format:
        argv += ["-f", source_format]
    argv += ["-O", dest_format]
    if out_of_order:
        argv.append("-W")
    if parallel:
        argv += ["-m", str(parallel)]
    if skip_create:
        argv.append("-n")
        if target_is_zero:
            argv.append("--target-is-zero")
    return argv + [_target(source, cluster), _target(dest, cluster)]


def run_with_progress(argv: list[str], *, what: str, total: int,
                      progress: Callable[[int, int], None] | None = None,
                      stall_timeout: float = 120) -> float:
    """Run a ``qemu-img ... -p`` command, reporting its progress; returns seconds taken.

    Raises :class:`Timeout` if the percentage does not move for ``stall_timeout`` s.
    """
    t0 = time.monotonic()
    seen = {"pct": -1.0, "moved": 0.0, "tail": b""}

    def tick(w: _proc.Watched) -> None:
        seen["tail"] = (seen["tail"] + w.fresh)[-4096:]
        found = _PROGRESS.findall(seen["tail"])
        if found and float(found[-1]) != seen["pct"]:
            seen["pct"], seen["moved"] = float(found[-1]), w.elapsed
            if progress:
                progress(int(total * seen["pct"] / 100), total)
        if w.proc.poll() is None and w.elapsed - seen["moved"] > stall_timeout:
            raise Timeout(f"{what} made no progress for {stall_timeout:g} s")

    try:
        _proc.watch(argv, tick, what=what)
    except CommandFailed as exc:
        line = _proc.failure_line(exc.stderr, exc.returncode or 1)
        if "timed out" in line.lower():  # the client timeouts passed in the rbd: name
            raise Timeout(f"{what}: the cluster did not answer in time ({line})") from None
        if "no space left" in line.lower():
            from ..errors import ClusterFull
            raise ClusterFull(f"{what}: the cluster or pool is full ({line})") from None
        raise
    if progress:
        progress(total, total)
    return time.monotonic() - t0


def convert(source, dest, cluster=None, *, source_format: str | None = None,
            dest_format: str = "raw", parallel: int = 16, out_of_order: bool = True,
            progress: Callable[[int, int], None] | None = None, stall_timeout: float = 120,
            dry_run: bool = False) -> Result | Plan:
    """``qemu-img convert -p [-f SRC_FMT] -O DEST_FMT -W -m 16 SOURCE DEST``.

    ``-W -m 16`` (out-of-order writes, 16 coroutines) is what measured fastest
    into RBD here; pass ``parallel=0, out_of_order=False`` for qemu-img's defaults.
    """
    argv = convert_argv(source, dest, cluster, source_format=source_format,
                        dest_format=dest_format, parallel=parallel, out_of_order=out_of_order)
    plan = Plan(f"qemu-img convert {_name(source)} to {_name(dest)}").add(*display_argv(argv))
    if dry_run:
        return plan
    src_info = info(source, cluster)
    total = int(src_info.get("virtual-size", 0))
    seconds = run_with_progress(argv, what=f"qemu-img convert to {_name(dest)}", total=total,
                                progress=progress, stall_timeout=stall_timeout)
    return Result(plan.action, True, f"converted {format_size(total)} in {seconds:.1f} s", plan,
                  value={"seconds": seconds, "virtual_size": total})


# -- the rest of qemu-img, run as it is (rbdnb.base.passthrough) --------------------------------
def _qemu_tool():
    from ..base.passthrough import CHANGE, DESTROY, READ, Sub, Tool
    subs = {("info",): Sub(READ), ("check",): Sub(READ, long=True, escalate=(("-r", CHANGE),)),
            ("compare",): Sub(READ, long=True), ("map",): Sub(READ), ("measure",): Sub(READ),
            ("create",): Sub(CHANGE), ("resize",): Sub(CHANGE), ("amend",): Sub(CHANGE),
            ("convert",): Sub(CHANGE, long=True, escalate=(("-n", DESTROY),)),
            ("dd",): Sub(DESTROY, long=True), ("commit",): Sub(DESTROY, long=True),
            ("rebase",): Sub(CHANGE, long=True), ("bitmap",): Sub(CHANGE),
            ("snapshot",): Sub(READ, escalate=(("-c", CHANGE), ("-a", DESTROY),
                                               ("-d", DESTROY))),
            ("bench",): Sub(READ, long=True, escalate=(("-w", DESTROY),))}
    valued = frozenset("-f -F -O -o -b -B -l -s -S -t -T -c -a -d -m --object --image-opts "
                       "--output".split())
    return Tool("qemu-img", subs, {}, valued)


QEMU_IMG_TOOL = _qemu_tool()
_JSON_OUTPUT = {("info",), ("check",), ("map",), ("measure",)}


def run_qemu_img(argv: list[str], cluster=None, *, confirm: bool = False,
                 dry_run: bool = False, redirect=None):
    """Run ``qemu-img ARGV`` as it is, every ``rbd:`` name given the cluster's connection
    (conf, id, keyring path -- never a key -- and timeouts). ``info``, ``check``, ``map`` and
    ``measure`` give qemu-img's JSON, parsed, unless the line chose ``--output``;
    ``snapshot -l`` and ``check`` only read (``check -r`` repairs: a change; ``snapshot
    -a/-d``, ``dd``, ``commit``, ``convert -n`` and ``bench -w`` overwrite data: they need
    ``confirm``). Raises InvalidArgument, ConfirmationRequired, Timeout, CommandFailed."""
    from ..base import passthrough
    found = QEMU_IMG_TOOL.find(argv)
    words = [_target(a, cluster) if is_rbd(a) else a for a in argv]
    wants_json = found is not None and found[0] in _JSON_OUTPUT and \
        not any(a.startswith("--output") for a in argv)
    if wants_json:
        words.insert(found[3], "--output=json")  # right after the sub-command
    program = ["qemu-img", *words]
    result = passthrough.run(QEMU_IMG_TOOL, argv, program, shown=display_argv(program),
                             confirm=confirm, dry_run=dry_run, timeout=120, redirect=redirect)
    out = result if isinstance(result, passthrough.Output) else getattr(result, "value", None)
    if wants_json and isinstance(out, passthrough.Output) and out.text.strip():
        try:
            out.value = json.loads(out.text)
        except ValueError:
            pass
    return result
