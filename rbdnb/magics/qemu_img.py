"""``%qemu-img``: create, resize, info and convert, with rbd: targets."""

from __future__ import annotations

from ..ceph import qemu
from .table import Table, progress_for, series

QEMU_IMG = Table("qemu-img")


def _format(name: str | None) -> str | None:
    """``-f rbd`` (the guide's, from when rbd was a format) is raw data on an RBD image."""
    return "raw" if name == "rbd" else name


p = QEMU_IMG.add("create", "qemu-img create -f FMT TARGET SIZE (TARGET may be rbd:pool/image)",
                 lambda m, a: qemu.create(a.target, a.size, m.cluster_for(a.target),
                                          fmt=_format(a.f), exist_ok=a.exist_ok,
                                          dry_run=m.dry(a)), mutating=True,
                 example="create -f raw rbd:{pool}/made-by-qemu 16M")
p.add_argument("-f", default="raw")
p.add_argument("--exist-ok", action="store_true",
               help="an image of that size already there is left as it is (rbdnb's option)")
p.add_argument("target")
p.add_argument("size")

p = QEMU_IMG.add("resize", "qemu-img resize TARGET SIZE",
                 lambda m, a: qemu.resize(a.target, a.size, m.cluster_for(a.target),
                                          shrink=a.shrink, dry_run=m.dry(a)), mutating=True,
                 example="resize rbd:{pool}/{image} 64M")
p.add_argument("--shrink", action="store_true")
p.add_argument("-f")
p.add_argument("target")
p.add_argument("size")

p = QEMU_IMG.add("info", "qemu-img info --output=json, as a table",
                 lambda m, a: series(qemu.info(a.target, m.cluster_for(a.target)), a.target),
                 example="info rbd:{pool}/{image}")
p.add_argument("target")

p = QEMU_IMG.add("convert", "qemu-img convert [-f FMT] -O FMT SOURCE DEST, with progress",
                 lambda m, a: qemu.convert(a.source, a.dest, m.cluster_for(a.source, a.dest),
                                           source_format=_format(a.f),
                                           dest_format=_format(a.O), dry_run=m.dry(a),
                                           progress=progress_for(m, a,
                                                                  f"converting {a.source}", 100)),
                 mutating=True, example="convert -f raw -O raw {file} rbd:{pool}/converted")
p.add_argument("-f")
p.add_argument("-O", default="raw")
p.add_argument("-p", action="store_true", help="accepted: the magic always shows progress")
p.add_argument("source")
p.add_argument("dest")


def _defer(words, argv) -> bool:
    """``info --output=...`` is qemu-img's own output."""
    return words == ("info",) and any(t.startswith("--output") for t in argv)


QEMU_IMG.real = qemu.QEMU_IMG_TOOL
QEMU_IMG.run_tool = lambda m, argv, *, confirm, dry_run, redirect=None: qemu.run_qemu_img(
    argv, m.cluster_for(*argv), confirm=confirm, dry_run=dry_run, redirect=redirect)
QEMU_IMG.defer = _defer
QEMU_IMG.differences = [
    "rbd: names get this notebook's conf, client id and keyring path, unless they give "
    "their own (rbd:pool/img:id=NAME:conf=PATH)",
    "-f rbd is read as raw (the data format of an RBD image)",
    "convert writes out of order with 16 coroutines (-W -m 16), what measured fastest into RBD",
]
