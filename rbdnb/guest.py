"""A small guest that really boots, made offline from this host's Debian packages.

The guide imports a CentOS cloud image; with no network, ``build(path)`` makes
a guest instead: this host's kernel (``linux-image-cloud-amd64``) and an
initramfs holding static busybox (``busybox-static``), the virtio modules and an
init that

* prints the fixed marker :data:`MARKER` on the serial console, then
* every 2 seconds prints one line per block device it sees,
  ``RBDNB-DISK <name> <sectors> <sha256 of its first MiB>``, then ``RBDNB-TICK``,

so the host can tell from the console log that the guest booted, and that a
disk attached later is visible in the guest with the bytes the host wrote. The
disk image itself (qcow2) carries a recognisable first MiB; the guest boots by
direct kernel boot, and :class:`GuestBoot` says how. Users with a real cloud
image pass its path instead and boot from disk.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from . import _proc
from .errors import InvalidArgument, MissingTool

MARKER = "RBDNB-GUEST-READY"
DISK_LINE = re.compile(r"RBDNB-DISK (\w+) (\d+) ([0-9a-f]{64})")
# What the guest needs; their dependencies are read from modules.dep.
MODULES = ("virtio_pci", "virtio_blk")
DISK_SIZE = 64 * 1024**2

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in %(modules)s; do insmod /lib/modules/$m.ko || echo "RBDNB-MODULE-FAILED $m"; done
sleep 1
echo "%(marker)s $(uname -r)"
while true; do
  for d in /sys/block/vd*; do
    [ -e "$d" ] || continue
    n=${d##*/}
    sum=$(dd if=/dev/$n bs=1048576 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)
    echo "RBDNB-DISK $n $(cat $d/size) $sum"
  done
  echo RBDNB-TICK
  sleep 2
done
"""


@dataclass
class GuestBoot:
    """How to boot a guest: direct kernel boot (kernel, initrd, cmdline) or from disk."""

    image: str
    kernel: str | None
    initrd: str | None
    cmdline: str | None
    marker: str = MARKER

    @property
    def direct(self) -> bool:
        return self.kernel is not None

    def to_json(self) -> dict:
        return asdict(self)


def _kernel_release() -> str:
    release = os.uname().release
    if os.path.exists(f"/boot/vmlinuz-{release}") and os.path.isdir(f"/lib/modules/{release}"):
        return release
    # This host may run another kernel (a container's); use the installed cloud kernel.
    found = sorted(p.name[len("vmlinuz-"):] for p in Path("/boot").glob("vmlinuz-*")
                   if (Path("/lib/modules") / p.name[len("vmlinuz-"):]).is_dir())
    if not found:
        raise MissingTool("a kernel in /boot", "linux-image-cloud-amd64")
    return found[-1]


def _module_load_order(release: str) -> list[tuple[str, Path]]:
    """MODULES and everything they depend on, dependencies first, from modules.dep."""
    root = Path("/lib/modules") / release
    deps: dict[str, list[str]] = {}
    for line in (root / "modules.dep").read_text().splitlines():
        rel, _, rest = line.partition(":")
        deps[rel] = rest.split()
    by_name = {}
    for rel in deps:
        name = Path(rel).name
        if name.endswith(".ko"):
            by_name[name[:-3].replace("-", "_")] = rel
    missing = [m for m in MODULES if m not in by_name]
    if missing:
        raise MissingTool(f"kernel modules {', '.join(missing)} (uncompressed .ko)",
                          "linux-image-cloud-amd64")
    order: list[str] = []

    def visit(rel: str) -> None:
        if rel in order:
            return
        for dep in deps.get(rel, []):
            visit(dep)
        order.append(rel)

    for m in MODULES:
        visit(by_name[m])
    return [(Path(rel).name[:-3].replace("-", "_"), root / rel) for rel in order]


class _Cpio:
    """A ``newc`` cpio archive, as the kernel's initramfs unpacker reads it."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        encoded = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.ino += 1
        self.buf.write(header + encoded)
        self.buf.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def close(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def _initramfs(release: str) -> bytes:
    archive = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        archive.dir(d)
    busybox = _proc.which("busybox")
    archive.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    modules = _module_load_order(release)
    archive.file("init", (INIT % {"modules": " ".join(name for name, _ in modules),
                                  "marker": MARKER}).encode(), 0o755)
    for name, path in modules:
        archive.file(f"lib/modules/{name}.ko", path.read_bytes())
    # mtime 0 keeps the build byte-for-byte reproducible.
    return gzip.compress(archive.close(), mtime=0)


def disk_header() -> bytes:
    """The first MiB of the guest's disk: a recognisable, reproducible pattern."""
    block = b"RBDNB guest disk\n".ljust(512, b"\0")
    return (block + hashlib.sha256(block).digest() * 16).ljust(1024**2, b"\x5a")


def build(path: str | os.PathLike, *, size: int = DISK_SIZE) -> GuestBoot:
    """Write the guest's qcow2 disk to ``path``, its kernel and initrd beside it.

    The files are made readable by libvirt's QEMU user; the directory must be
    traversable by it (QEMU runs as ``libvirt-qemu`` under ``qemu:///system``).
    """
    out = Path(path).expanduser().absolute()
    if out.suffix != ".qcow2":
        raise InvalidArgument(f"guest image {out} must end in .qcow2")
    out.parent.mkdir(parents=True, exist_ok=True)
    for parent in [out.parent, *out.parent.parents]:
        if os.geteuid() == 0 and not os.stat(parent).st_mode & stat.S_IXOTH:
            raise InvalidArgument(f"{parent} is not traversable by others, so libvirt's QEMU "
                                  f"could not read the kernel: build the guest elsewhere, "
                                  f"e.g. under /var/lib/rbdnb or /var/tmp")
    release = _kernel_release()
    kernel = out.with_suffix(".vmlinuz")
    initrd = out.with_suffix(".initrd")
    shutil.copyfile(f"/boot/vmlinuz-{release}", kernel)
    initrd.write_bytes(_initramfs(release))
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".rbdnb-guest-") as tmp:
        raw = Path(tmp) / "disk.raw"
        with open(raw, "wb") as fh:
            fh.write(disk_header())
            fh.truncate(size)
        _proc.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, out], timeout=120,
                  what="qemu-img convert of the guest disk")
    for f in (out, kernel, initrd):
        os.chmod(f, 0o644)
    return GuestBoot(image=str(out), kernel=str(kernel), initrd=str(initrd),
                     cmdline="console=ttyS0 panic=-1 quiet loglevel=3")


def parse_console(text: str) -> dict:
    """What a console log says: booted (marker seen) and the last report per disk."""
    disks = {}
    for name, sectors, digest in DISK_LINE.findall(text):
        disks[name] = {"sectors": int(sectors), "sha256": digest}
    return {"booted": MARKER in text, "disks": disks}

