"""IPython magics: ``%rbd``, ``%ceph``, ``%qemu-img``, ``%virsh`` and ``%rbdnb``.

A thin front end: each line is parsed with the tool's own sub-command words,
the core library does the work, and the result is displayed and returned (so
``df = %rbd ls pool`` works). User errors show one line (IPython's
``UsageError``), not a traceback. ``--dry-run`` on a mutating command shows
the plan and changes nothing; ``%config RbdnbMagics.dry_run = True`` makes that
the default. Every magic also works as a cell magic, one command a line, stopping
at the first error.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Callable

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display
from traitlets import Bool, Unicode, observe

from . import clones, images, pools, snapshots, space, transfer, users
from .cluster import Cluster, preflight
from .errors import RbdnbError
from .secret import redact
from .settings import settings
from .specs import parse_spec
from .units import parse_size


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so errors become one line in the notebook."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status=0, message=None):
        if message:
            raise UsageError(message.strip())
        raise _HelpShown()


class _HelpShown(Exception):
    pass


Handler = Callable[["RbdnbMagics", argparse.Namespace], object]


class _Table:
    """The sub-commands of one magic: words -> (parser, handler), each with an example.

    ``mutating`` commands take ``--dry-run`` (and ``--no-dry-run``, to act when
    ``%config RbdnbMagics.dry_run = True`` made dry runs the default). Every command
    carries an ``example`` line (with ``{pool}``-style fields): the help shows it, and a
    test runs every command's example as a dry run and checks that nothing changed.
    """

    def __init__(self, tool: str):
        self.tool = tool
        self.commands: dict[tuple[str, ...], tuple[_Parser, Handler]] = {}
        self.mutating: set[tuple[str, ...]] = set()
        self.examples: dict[tuple[str, ...], str] = {}

    def add(self, words: str, help: str, handler: Handler, *, mutating: bool = False,
            example: str = ""):
        parser = _Parser(prog=f"%{self.tool} {words}", description=help, add_help=True,
                         epilog=f"example: %{self.tool} {example}" if example else None)
        key = tuple(words.split())
        if mutating:
            parser.add_argument("--dry-run", action=argparse.BooleanOptionalAction,
                                default=None, help="show the plan (commands, XML) and change "
                                "nothing; --no-dry-run acts even when dry runs are the default")
            self.mutating.add(key)
        self.commands[key] = (parser, handler)
        self.examples[key] = example
        return parser

    def find(self, argv: list[str]):
        for n in (3, 2, 1):
            key = tuple(argv[:n])
            if key in self.commands:
                return self.commands[key], argv[n:]
        raise UsageError(f"%{self.tool}: unknown command {' '.join(argv[:2]) or '(none)'}; "
                         f"one of: {', '.join(' '.join(k) for k in self.commands)}")

    def usage(self) -> str:
        lines = [f"%{self.tool} COMMAND ... (add --help to any command)"]
        for words, (parser, _) in self.commands.items():
            lines.append(f"  {' '.join(words):<24} {parser.description}")
        return "\n".join(lines)


# How a fix the core names reads in a magic: the flag the user can type.
_FLAGS = {"confirm": "--yes", "allow_shrink": "--allow-shrink", "exist_ok": "--exist-ok",
          "purge_snapshots": "--purge-snapshots", "overwrite": "--overwrite",
          "missing_ok": "--missing-ok"}


def magic_words(keyword: str, value) -> str | None:
    if keyword == "free_space":
        return f"free space with %rbd free-space {value or 'POOL'}/IMAGE ... --yes"
    return f"add {_FLAGS[keyword]}" if keyword in _FLAGS else None


def _size(default_unit: str):
    def parse(text: str) -> int:
        return parse_size(text, default_unit=default_unit)
    return parse


RBD = _Table("rbd")
CEPH = _Table("ceph")
QEMU_IMG = _Table("qemu-img")
VIRSH = _Table("virsh")
RBDNB = _Table("rbdnb")
TABLES = (RBD, CEPH, QEMU_IMG, VIRSH, RBDNB)


def _progress_for(m, a, description: str, total: int):
    return None if m.dry(a) else m.progress(description, total)


# -- %rbd -------------------------------------------------------------------------------------
def _rbd_create(m, a):
    size = a.size_opt or a.size
    if size is None:
        raise UsageError("%rbd create: give a size, e.g. 10G or --size 10G")
    return images.create_image(m.cluster, a.spec, parse_size(size, what="size", default_unit="M"),
                               features=a.image_feature, object_size=a.object_size,
                               exist_ok=a.exist_ok, dry_run=m.dry(a))


p = RBD.add("create", "create an image (rbd create); a bare size is in MiB, as rbd reads it",
            _rbd_create, mutating=True, example="create {pool}/new-image 1G")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("size", nargs="?", metavar="SIZE")
p.add_argument("--size", "-s", dest="size_opt")
p.add_argument("--image-feature", help="comma-separated, e.g. layering,exclusive-lock")
p.add_argument("--object-size")
p.add_argument("--exist-ok", action="store_true", help="report 'unchanged' if it exists")

p = RBD.add("ls", "list images (rbd ls -l) as a DataFrame",
            lambda m, a: images.list_images(m.cluster, a.pool or "rbd"), example="ls {pool}")
p.add_argument("pool", nargs="?")
p.add_argument("-l", "--long", action="store_true", help="accepted for rbd's sake; always long")

p = RBD.add("info", "size, features, parent, snapshots (rbd info)",
            lambda m, a: images.image_info(m.cluster, a.spec), example="info {pool}/{image}")
p.add_argument("spec", metavar="POOL/IMAGE[@SNAP]")

p = RBD.add("resize", "grow (or with --allow-shrink shrink) an image (rbd resize)",
            lambda m, a: images.resize_image(m.cluster, a.spec, _size("M")(a.size),
                                             allow_shrink=a.allow_shrink, dry_run=m.dry(a)),
            mutating=True, example="resize {pool}/{image} --size 8M --allow-shrink")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("--size", "-s", required=True)
p.add_argument("--allow-shrink", action="store_true")

p = RBD.add("rm", "remove an image (rbd rm); needs --yes",
            lambda m, a: images.remove_image(m.cluster, a.spec, confirm=a.yes,
                                             purge_snapshots=a.purge_snapshots,
                                             missing_ok=a.missing_ok, dry_run=m.dry(a)),
            mutating=True, example="rm {pool}/{image} --yes --purge-snapshots")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("--yes", action="store_true", help="confirm: the image's data is destroyed")
p.add_argument("--purge-snapshots", action="store_true")
p.add_argument("--missing-ok", action="store_true")

p = RBD.add("free-space", "remove images on a full cluster, by Ceph's own means (deletes "
            "through the full pool, the full ratio raised only if needed); needs --yes",
            lambda m, a: space.free_space(m.cluster, a.specs, confirm=a.yes,
                                          dry_run=m.dry(a)),
            mutating=True, example="free-space {pool}/{image} --yes")
p.add_argument("specs", nargs="+", metavar="POOL/IMAGE")
p.add_argument("--yes", action="store_true", help="confirm: the images' data is destroyed")


def _rbd_mv(m, a):
    src = parse_spec(a.src)
    dest = parse_spec(a.dest, default_pool=src.pool)
    if (dest.pool, dest.namespace) != (src.pool, src.namespace):
        raise UsageError(f"%rbd mv: {src} and {dest} are in different pools (or namespaces): "
                         f"rbd renames within a pool only; copy it with %rbd cp {src} {dest}")
    return images.rename_image(m.cluster, src, dest.image, dry_run=m.dry(a))


p = RBD.add("mv", "rename an image within its pool (rbd mv)", _rbd_mv, mutating=True,
            example="mv {pool}/{image} {pool}/renamed")
p.add_argument("src")
p.add_argument("dest")

p = RBD.add("cp", "full copy of an image (rbd cp)",
            lambda m, a: images.copy_image(m.cluster, a.src, a.dest, exist_ok=a.exist_ok,
                                           dry_run=m.dry(a)),
            mutating=True, example="cp {pool}/{image} {pool}/copied")
p.add_argument("src")
p.add_argument("dest")
p.add_argument("--exist-ok", action="store_true")

p = RBD.add("du", "provisioned and used bytes (rbd du)",
            lambda m, a: images.disk_usage(m.cluster, a.spec), example="du {pool}/{image}")
p.add_argument("spec", metavar="POOL/IMAGE")

for verb, fn, help_ in [
        ("create", snapshots.create_snapshot, "create a snapshot"),
        ("protect", snapshots.protect_snapshot, "protect a snapshot (v1 clones need it)"),
        ("unprotect", snapshots.unprotect_snapshot, "unprotect a snapshot"),
        ("rm", snapshots.remove_snapshot, "remove a snapshot")]:
    example = {"create": "snap create {pool}/{image}@new-snap",
               "protect": "snap protect {pool}/{image}@{snap}",
               "unprotect": "snap unprotect {pool}/{image}@{protected}",
               "rm": "snap rm {pool}/{image}@{snap}"}[verb]
    p = RBD.add(f"snap {verb}", f"{help_} (rbd snap {verb})",
                lambda m, a, fn=fn: fn(m.cluster, a.spec, dry_run=m.dry(a)), mutating=True,
                example=example)
    p.add_argument("spec", metavar="POOL/IMAGE@SNAP")

p = RBD.add("snap ls", "snapshots of an image (rbd snap ls)",
            lambda m, a: snapshots.list_snapshots(m.cluster, a.spec),
            example="snap ls {pool}/{image}")
p.add_argument("spec", metavar="POOL/IMAGE")

p = RBD.add("snap rollback", "roll an image back to a snapshot; needs --yes",
            lambda m, a: snapshots.rollback_snapshot(m.cluster, a.spec, confirm=a.yes,
                                                     dry_run=m.dry(a)), mutating=True,
            example="snap rollback {pool}/{image}@{snap} --yes")
p.add_argument("spec", metavar="POOL/IMAGE@SNAP")
p.add_argument("--yes", action="store_true")

p = RBD.add("snap purge", "remove every snapshot of an image; needs --yes",
            lambda m, a: snapshots.purge_snapshots(m.cluster, a.spec, confirm=a.yes,
                                                   dry_run=m.dry(a)), mutating=True,
            example="snap purge {pool}/{lone} --yes")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("--yes", action="store_true")


def _rbd_clone(m, a):
    if a.count is None:
        return clones.clone(m.cluster, a.parent, a.child, exist_ok=a.exist_ok, dry_run=m.dry(a))
    return clones.clone_many(m.cluster, a.parent, a.child, count=a.count, start=a.start,
                             concurrency=a.concurrency, exist_ok=a.exist_ok,
                             progress=_progress_for(m, a, f"cloning {a.parent}", a.count),
                             dry_run=m.dry(a))


p = RBD.add("clone", "clone a snapshot (rbd clone); with --count, many at once from a pattern "
            "such as vm-{i:02d}", _rbd_clone, mutating=True,
            example="clone {pool}/{image}@{protected} {pool}/vm-{{i:02d}} --count 3")
p.add_argument("parent", metavar="POOL/IMAGE@SNAP")
p.add_argument("child", metavar="POOL/CHILD or PATTERN")
p.add_argument("--count", type=int)
p.add_argument("--start", type=int, default=1)
p.add_argument("--concurrency", type=int, default=16)
p.add_argument("--exist-ok", action="store_true")

p = RBD.add("flatten", "copy the parent's data into a clone (rbd flatten)",
            lambda m, a: clones.flatten(m.cluster, a.spec, dry_run=m.dry(a),
                                        progress=_progress_for(m, a, f"flattening {a.spec}",
                                                               100)),
            mutating=True, example="flatten {pool}/{clone}")
p.add_argument("spec", metavar="POOL/IMAGE")

p = RBD.add("children", "clones of a snapshot (rbd children)",
            lambda m, a: clones.children(m.cluster, a.spec),
            example="children {pool}/{image}@{protected}")
p.add_argument("spec", metavar="POOL/IMAGE@SNAP")

p = RBD.add("import", "import a qcow2 or raw file into a new image",
            lambda m, a: transfer.import_image(
                m.cluster, a.source, a.spec, method=a.method, exist_ok=a.exist_ok,
                dry_run=m.dry(a), progress=_progress_for(m, a, f"importing {a.source}", 100)),
            mutating=True, example="import {file} {pool}/imported")
p.add_argument("source", metavar="FILE")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("--method", default="auto", choices=transfer.METHODS)
p.add_argument("--exist-ok", action="store_true")

p = RBD.add("export", "export an image to a raw or qcow2 file",
            lambda m, a: transfer.export_image(
                m.cluster, a.spec, a.dest, dest_format=a.format, overwrite=a.overwrite,
                dry_run=m.dry(a), progress=_progress_for(m, a, f"exporting {a.spec}", 100)),
            mutating=True, example="export {pool}/{image} {outfile}")
p.add_argument("spec", metavar="POOL/IMAGE[@SNAP]")
p.add_argument("dest", metavar="FILE")
p.add_argument("--format", "-O", default="raw", choices=("raw", "qcow2"))
p.add_argument("--overwrite", action="store_true")

_RBD_IO_TYPES = {("read", False): "read", ("write", False): "write",
                 ("read", True): "randread", ("write", True): "randwrite"}


def _rbd_bench(m, a):
    from . import bench
    io_type = a.io_type
    if io_type in ("readwrite", "rw"):
        io_type = "mixed"
    elif io_type in ("read", "write"):
        io_type = _RBD_IO_TYPES[(io_type, a.io_pattern == "rand")]
    engines = a.engine or ["native"]
    total = None if a.seconds is not None else \
        parse_size(a.io_total, what="io total", default_unit="B")
    kwargs = dict(total=total, seconds=a.seconds, rw_mix_read=a.rw_mix_read)
    size = parse_size(a.io_size, what="io size", default_unit="B")
    if m.dry(a):
        return bench.matrix(m.cluster, a.spec, engines, [io_type], [size], [a.io_threads],
                            dry_run=True, **kwargs)
    if len(engines) == 1:
        bar = m.progress(f"{engines[0]} {io_type} {a.io_size} QD{a.io_threads}", 100)
        return bench.run(m.cluster, a.spec, engines[0], io_type, size, a.io_threads,
                         progress=bar, **kwargs)
    bar = m.progress(f"{len(engines)} engines, {io_type} {a.io_size}", len(engines))
    df = bench.matrix(m.cluster, a.spec, engines, [io_type], [size], [a.io_threads],
                      progress=bar, **kwargs)
    return df[["engine", "io_type", "io_size", "queue_depth", "iops", "mib_s",
               "lat_mean_us", "lat_p99_us"]]


p = RBD.add("bench", "benchmark an image (rbd bench options); --engine native, rbd or fio "
            "(several: a table, same run); writes to the image", _rbd_bench, mutating=True,
            example="bench {pool}/{image} --io-type write --io-total 4M --engine native rbd")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("--io-type", required=True,
               help="read, write, readwrite/rw (rbd's), or randread, randwrite, mixed")
p.add_argument("--io-size", default="4K")
p.add_argument("--io-threads", type=int, default=16, help="I/Os in flight (queue depth)")
p.add_argument("--io-total", default="256M")
p.add_argument("--io-pattern", default="seq", choices=("seq", "full-seq", "rand"))
p.add_argument("--rw-mix-read", type=int, default=50)
p.add_argument("--seconds", type=float, help="run for this long instead of --io-total")
p.add_argument("--engine", nargs="+", choices=("native", "rbd", "fio"))

# -- %ceph ------------------------------------------------------------------------------------
p = CEPH.add("osd pool create", "create a pool and initialise it for RBD",
             lambda m, a: pools.create_pool(m.cluster, a.pool, a.pg_num, a.pgp_num,
                                            exist_ok=a.exist_ok, dry_run=m.dry(a)),
             mutating=True, example="osd pool create new-pool 8")
p.add_argument("pool")
p.add_argument("pg_num", nargs="?", type=int)
p.add_argument("pgp_num", nargs="?", type=int)
p.add_argument("--exist-ok", action="store_true")

p = CEPH.add("osd pool delete", "delete a pool and all its data; needs --yes",
             lambda m, a: pools.delete_pool(m.cluster, a.pool, confirm=a.yes,
                                            missing_ok=a.missing_ok, dry_run=m.dry(a)),
             mutating=True, example="osd pool delete {pool} --yes")
p.add_argument("pool")
p.add_argument("--yes", action="store_true")
p.add_argument("--missing-ok", action="store_true")

CEPH.add("osd pool ls", "pools with usage (ceph df)", lambda m, a: pools.list_pools(m.cluster),
         example="osd pool ls")
CEPH.add("df", "pools with usage (ceph df)", lambda m, a: pools.list_pools(m.cluster),
         example="df")
CEPH.add("health", "health, fullness, versions, clone format",
         lambda m, a: preflight(m.cluster), example="health")
CEPH.add("auth ls", "users and caps (never keys)", lambda m, a: users.list_users(m.cluster),
         example="auth ls")


def _auth_create(m, a):
    caps = None
    if a.caps:
        if len(a.caps) % 2:
            raise UsageError("%ceph auth get-or-create: caps come in pairs, e.g. mon 'profile rbd'")
        caps = dict(zip(a.caps[::2], a.caps[1::2]))
    elif not a.pool:
        raise UsageError("%ceph auth get-or-create: name the pools with --pool P "
                         "(least privilege), or give caps")
    return users.create_user(m.cluster, a.entity, a.pool or [], caps=caps, exist_ok=a.exist_ok,
                             dry_run=m.dry(a))


p = CEPH.add("auth get-or-create", "a cephx user; least privilege (profile rbd) on --pool P",
             _auth_create, mutating=True, example="auth get-or-create client.new-user --pool {pool}")
p.add_argument("entity", metavar="client.NAME")
p.add_argument("caps", nargs="*", metavar="SERVICE CAPS")
p.add_argument("--pool", action="append", help="a pool the user may use (repeat)")
p.add_argument("--exist-ok", action="store_true")

# -- %qemu-img --------------------------------------------------------------------------------
from . import qemu  # noqa: E402

p = QEMU_IMG.add("create", "qemu-img create -f FMT TARGET SIZE (TARGET may be rbd:pool/image)",
                 lambda m, a: qemu.create(a.target, a.size, m.cluster_for(a.target), fmt=a.f,
                                          dry_run=m.dry(a)), mutating=True,
                 example="create -f raw rbd:{pool}/made-by-qemu 16M")
p.add_argument("-f", default="raw")
p.add_argument("target")
p.add_argument("size")

p = QEMU_IMG.add("resize", "qemu-img resize TARGET SIZE",
                 lambda m, a: qemu.resize(a.target, a.size, m.cluster_for(a.target),
                                          shrink=a.shrink, dry_run=m.dry(a)), mutating=True,
                 example="resize rbd:{pool}/{image} 64M")
p.add_argument("--shrink", action="store_true")
p.add_argument("target")
p.add_argument("size")

p = QEMU_IMG.add("info", "qemu-img info --output=json, as a table",
                 lambda m, a: _series(qemu.info(a.target, m.cluster_for(a.target)), a.target),
                 example="info rbd:{pool}/{image}")
p.add_argument("target")

p = QEMU_IMG.add("convert", "qemu-img convert [-f FMT] -O FMT SOURCE DEST, with progress",
                 lambda m, a: qemu.convert(a.source, a.dest, m.cluster_for(a.source, a.dest),
                                           source_format=a.f, dest_format=a.O, dry_run=m.dry(a),
                                           progress=_progress_for(m, a,
                                                                  f"converting {a.source}", 100)),
                 mutating=True, example="convert -f raw -O raw {file} rbd:{pool}/converted")
p.add_argument("-f")
p.add_argument("-O", default="raw")
p.add_argument("source")
p.add_argument("dest")


def _series(data: dict, name: str):
    import pandas as pd
    flat = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
    return pd.Series(flat, name=name).to_frame()


# -- %virsh -----------------------------------------------------------------------------------
from . import virt  # noqa: E402

p = VIRSH.add("secret-define", "the ceph secret of client.NAME, its value set through the API",
              lambda m, a: virt.define_secret(m.libvirt, m.cluster, a.client, a.uuid,
                                              dry_run=m.dry(a)), mutating=True,
              example="secret-define --client {user}")
p.add_argument("--client", default="libvirt")
p.add_argument("--uuid")


def _pool_define(m, a):
    dry = m.dry(a)
    uuid = a.secret
    if uuid is None:
        if dry:
            # A dry run defines nothing: the plan names the secret it would use.
            found = virt.find_secret(m.libvirt, a.client)
            uuid = found or virt.PLACEHOLDER_UUID
        else:
            uuid = virt.ensure_secret(m.libvirt, m.cluster, a.client)
    return virt.ensure_rbd_pool(m.libvirt, a.name, a.ceph_pool, m.cluster, a.client, uuid,
                                dry_run=dry)


p = VIRSH.add("pool-define-rbd", "define, start and autostart a libvirt rbd pool",
              _pool_define, mutating=True, example="pool-define-rbd new-lvpool {pool} "
                                                   "--client {user}")
p.add_argument("name")
p.add_argument("ceph_pool", metavar="CEPH_POOL")
p.add_argument("--client", default="libvirt")
p.add_argument("--secret", help="secret UUID (default: the client's ceph secret)")

def _pool_list(m, a):
    with virt._translated("storage pools"):
        return _frame([{"name": p.name(), "active": bool(p.isActive()),
                        "autostart": bool(p.autostart())}
                       for p in m.libvirt.listAllStoragePools(0)],
                      ["name", "active", "autostart"])


def _domain_list(m, a):
    with virt._translated("domains"):
        return _frame([{"name": d.name(), "running": bool(d.isActive())}
                       for d in m.libvirt.listAllDomains()], ["name", "running"])


VIRSH.add("pool-list", "libvirt storage pools", _pool_list, example="pool-list")
p = VIRSH.add("vol-list", "volumes of a libvirt pool",
              lambda m, a: virt.list_volumes(m.libvirt, a.pool), example="vol-list {lvpool}")
p.add_argument("pool")
VIRSH.add("list", "domains and their state", _domain_list, example="list")
VIRSH.add("secret-list", "libvirt secrets (never their values)",
          lambda m, a: virt.list_secrets(m.libvirt), example="secret-list")


def _define(m, a):
    boot = None
    if a.guest:
        from .guest import GuestBoot
        stem = a.guest[:-len(".qcow2")] if a.guest.endswith(".qcow2") else a.guest
        boot = GuestBoot(a.guest, f"{stem}.vmlinuz", f"{stem}.initrd",
                         "console=ttyS0 panic=-1 quiet loglevel=3")
    return virt.define_vm(m.libvirt, a.name, a.disk, memory_mib=a.memory, vcpus=a.vcpus,
                          boot=boot, console_log=a.console_log, exist_ok=a.exist_ok,
                          cluster=m.cluster, dry_run=m.dry(a))


p = VIRSH.add("define", "define a VM with RBD disks (vda, vdb, ... in order)", _define,
              mutating=True, example="define new-vm --disk {pool}/{image}")
p.add_argument("name")
p.add_argument("--disk", action="append", required=True, metavar="POOL/IMAGE")
p.add_argument("--memory", type=int, default=256, help="MiB")
p.add_argument("--vcpus", type=int, default=1)
p.add_argument("--guest", help="an `rbdnb guest build` image: boot its kernel directly")
p.add_argument("--console-log")
p.add_argument("--exist-ok", action="store_true")

for verb, fn, example in [("start", virt.start_vm, "start {vm}"),
                          ("destroy", virt.destroy_vm, "destroy {vm}"),
                          ("shutdown", virt.shutdown_vm, "shutdown {vm}"),
                          ("undefine", virt.undefine_vm, "undefine {vm}")]:
    p = VIRSH.add(verb, f"virsh {verb}", lambda m, a, fn=fn: fn(m.libvirt, a.name,
                                                                dry_run=m.dry(a)),
                  mutating=True, example=example)
    p.add_argument("name")

p = VIRSH.add("dumpxml", "the domain's XML",
              lambda m, a: _XML(virt.dump_xml(m.libvirt, a.name, inactive=a.inactive)),
              example="dumpxml {vm}")
p.add_argument("name")
p.add_argument("--inactive", action="store_true")

p = VIRSH.add("attach-rbd", "attach an RBD image as a disk",
              lambda m, a: virt.attach_rbd(m.libvirt, a.domain, a.image, target=a.target,
                                           live=a.live or not a.config,
                                           persistent=a.config or not a.live,
                                           cluster=m.cluster, dry_run=m.dry(a)), mutating=True,
              example="attach-rbd {vm} {pool}/{lone} --target vdb")
p.add_argument("domain")
p.add_argument("image", metavar="POOL/IMAGE")
p.add_argument("--target", default="vdb")
p.add_argument("--live", action="store_true", help="only the running VM (default: both)")
p.add_argument("--config", action="store_true", help="only its definition (default: both)")

p = VIRSH.add("detach-rbd", "detach a disk by image or target",
              lambda m, a: virt.detach_rbd(m.libvirt, a.domain, a.disk,
                                           live=a.live or not a.config,
                                           persistent=a.config or not a.live,
                                           dry_run=m.dry(a)), mutating=True,
              example="detach-rbd {vm} vda")
p.add_argument("domain")
p.add_argument("disk", metavar="POOL/IMAGE|TARGET")
p.add_argument("--live", action="store_true")
p.add_argument("--config", action="store_true")

p = VIRSH.add("replace-disk", "turn a disk of the definition into an RBD disk (virsh edit)",
              lambda m, a: virt.replace_disk(m.libvirt, a.domain, a.target, a.image,
                                             cluster=m.cluster, dry_run=m.dry(a)), mutating=True,
              example="replace-disk {vm} vda {pool}/{lone}")
p.add_argument("domain")
p.add_argument("target")
p.add_argument("image", metavar="POOL/IMAGE")


class _XML(str):
    def _repr_markdown_(self):
        return f"```xml\n{self}\n```"


def _frame(rows, columns):
    import pandas as pd
    return pd.DataFrame(rows, columns=columns)


# -- %rbdnb -----------------------------------------------------------------------------------
def _connect(m, a):
    m.connect(a.conf, a.id, a.keyring, a.uri)
    return m.status()


p = RBDNB.add("connect", "connect to a cluster (default: the running sandbox) and libvirt",
              _connect, example="connect --conf {conf} --uri {uri}")
p.add_argument("--conf")
p.add_argument("--id", default="admin")
p.add_argument("--keyring")
p.add_argument("--uri")
RBDNB.add("status", "what this kernel is connected to", lambda m, a: m.status(),
          example="status")


@magics_class
class RbdnbMagics(Magics):
    """``%rbd``, ``%ceph``, ``%qemu-img`` (also ``%qemu_img``), ``%virsh``, ``%rbdnb``."""

    dry_run = Bool(False, help="show plans instead of acting, unless a command says "
                   "otherwise (--no-dry-run); the widget forms follow it too").tag(config=True)
    conf = Unicode("", help="Ceph conf to connect with (default: the sandbox)").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._cluster: Cluster | None = None
        self._libvirt = None
        self._uri: str | None = None
        if settings.dry_run and not self.dry_run:
            self.dry_run = True  # $RBDNB_DRY_RUN

    @observe("dry_run")
    def _dry_run_changed(self, change):
        settings.dry_run = bool(change["new"])  # the forms follow the magics' default

    # -- connections ------------------------------------------------------------------------
    def connect(self, conf=None, client="admin", keyring=None, uri=None) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        try:
            self._cluster = Cluster(conf or self.conf or None, client=client,
                                    keyring=keyring).connect()
        except RbdnbError as exc:
            raise UsageError(redact(exc.worded(magic_words))) from None
        if self._libvirt is not None:
            self._libvirt.close()
            self._libvirt = None
        self._uri = uri

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self.connect()
        return self._cluster

    def cluster_for(self, *targets) -> Cluster | None:
        return self.cluster if any(str(t).startswith("rbd:") for t in targets) else None

    @property
    def libvirt(self):
        if self._libvirt is not None and not self._libvirt_alive():
            virt.close_quietly(self._libvirt)  # the daemon restarted: connect again
            self._libvirt = None
        if self._libvirt is None:
            self._libvirt = virt.connect_libvirt(self._uri)
        return self._libvirt

    def _libvirt_alive(self) -> bool:
        try:
            return bool(self._libvirt.isAlive())
        except Exception:
            return False

    def status(self):
        import pandas as pd
        c = self._cluster
        rows = {"ceph conf": c.conffile if c else "(not connected)",
                "client": f"client.{c.client}" if c else "",
                "fsid": c.fsid if c else "",
                "libvirt": self._uri or virt.default_uri(),
                "dry_run default": self.dry_run}
        return pd.Series(rows, name="rbdnb").to_frame()

    def dry(self, args) -> bool:
        """--dry-run / --no-dry-run when given, else the default (%config RbdnbMagics.dry_run)."""
        flag = getattr(args, "dry_run", None)
        return self.dry_run if flag is None else bool(flag)

    def progress(self, description: str, total: int):
        """A progress callback that drives an ipywidgets bar (or nothing, outside a notebook)."""
        try:
            import ipywidgets as widgets
            bar = widgets.IntProgress(min=0, max=max(1, total), description="",
                                      layout=widgets.Layout(width="60%"))
            label = widgets.Label(description)
            display(widgets.HBox([bar, label]))
        except Exception:
            return None

        def update(done: int, all_: int) -> None:
            bar.max = max(1, all_)
            bar.value = min(done, all_)
            label.value = f"{description}: {done}/{all_}" if all_ < 10_000 else \
                f"{description}: {done / max(1, all_):.0%}"
        return update

    # -- running ----------------------------------------------------------------------------
    def _run(self, table: _Table, line: str, cell: str | None):
        lines = [line] if cell is None else [ln for ln in cell.splitlines()
                                             if ln.strip() and not ln.strip().startswith("#")]
        result = None
        for index, text in enumerate(lines):
            if index and result is not None:
                display(result)  # each command's outcome, in order; the last is returned
            result = self._run_one(table, text)
        return result

    def _run_one(self, table: _Table, line: str):
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%{table.tool}: {exc}") from None
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(table.usage())
            return None
        (parser, handler), rest = table.find(argv)
        try:
            args = parser.parse_args(rest)
        except _HelpShown:
            return None
        try:
            return handler(self, args)
        except RbdnbError as exc:
            raise UsageError(redact(exc.worded(magic_words))) from None

    @line_cell_magic
    def rbd(self, line, cell=None):
        """RBD images, snapshots and clones: `%rbd ls POOL`, `%rbd create POOL/IMG 10G`, ...

        `%rbd --help` lists the commands; `%rbd COMMAND --help` describes one.
        """
        return self._run(RBD, line, cell)

    @line_cell_magic
    def ceph(self, line, cell=None):
        """Pools, users, health: `%ceph osd pool create P`, `%ceph auth get-or-create ...`."""
        return self._run(CEPH, line, cell)

    @line_cell_magic
    def qemu_img(self, line, cell=None):
        """qemu-img on files and rbd:pool/image: create, resize, info, convert."""
        return self._run(QEMU_IMG, line, cell)

    @line_cell_magic
    def virsh(self, line, cell=None):
        """libvirt with RBD: secret-define, pool-define-rbd, define, attach-rbd, ..."""
        return self._run(VIRSH, line, cell)

    @line_cell_magic
    def rbdnb(self, line, cell=None):
        """`%rbdnb connect [--conf PATH] [--id NAME] [--keyring PATH] [--uri URI]`, `%rbdnb status`."""
        return self._run(RBDNB, line, cell)


def install_output_guard(shell) -> None:
    """Redact anything shaped like a cephx key from every output of the kernel (rbdnb.guard)."""
    from .guard import install
    install(shell)


def load_ipython_extension(shell) -> None:
    magics = RbdnbMagics(shell=shell)
    shell.register_magics(magics)
    # IPython reads `%qemu-img` up to the space: register the tool's own name too.
    shell.register_magic_function(magics.qemu_img, "line_cell", "qemu-img")
    install_output_guard(shell)
