"""``%qemu-img``: create, resize, info and convert, with rbd: targets."""

from __future__ import annotations

from .table import Table, progress_for, series

QEMU_IMG = Table("qemu-img")


from ..ceph import qemu  # noqa: E402

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
                 lambda m, a: series(qemu.info(a.target, m.cluster_for(a.target)), a.target),
                 example="info rbd:{pool}/{image}")
p.add_argument("target")

p = QEMU_IMG.add("convert", "qemu-img convert [-f FMT] -O FMT SOURCE DEST, with progress",
                 lambda m, a: qemu.convert(a.source, a.dest, m.cluster_for(a.source, a.dest),
                                           source_format=a.f, dest_format=a.O, dry_run=m.dry(a),
                                           progress=progress_for(m, a,
                                                                  f"converting {a.source}", 100)),
                 mutating=True, example="convert -f raw -O raw {file} rbd:{pool}/converted")
p.add_argument("-f")
p.add_argument("-O", default="raw")
p.add_argument("source")
p.add_argument("dest")
