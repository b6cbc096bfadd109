"""A small guest that really boots, made offline from this host's Debian packages.

The guide imports a CentOS cloud image; with no network, ``build(path)`` makes
a guest instead: this host's kernel (``linux-image-cloud-amd64``) and an
initramfs holding static busybox (``busybox-static``), the virtio modules and an
init that

* prints the fixed marker :data:`MARKER` on the serial console, then
* every 2 seconds prints one line per block device it sees,
  ``RBDNB-DISK <name> <sectors> <sha256 of its first MiB>``, then ``RBDNB-TICK <uptime>``,

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

from ..base import proc as _proc
from ..errors import InvalidArgument, MissingTool

MARKER = "RBDNB-GUEST-READY"
GUEST_CMDLINE = "console=ttyS0 panic=-1 quiet loglevel=3"
DISK_LINE = re.compile(r"RBDNB-DISK (\w+) (\d+) ([0-9a-f]{64})")
TICK_LINE = re.compile(r"RBDNB-TICK(?: ([0-9]+(?:\.[0-9]+)?))?")
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
  echo "RBDNB-TICK $(cut -d' ' -f1 /proc/uptime)"
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
    changed: bool = True

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


def check_readable_by_qemu(directory: Path, uri: str | None = None) -> None:
    """Refuse a directory libvirt's QEMU could not read the guest from.

    Under ``qemu:///system`` QEMU runs as its own user (``libvirt-qemu``), which must pass
    through every directory above the kernel and initrd; under ``qemu:///session`` it runs
    as this user, who can.
    """
    from ..base.paths import closed_to_others, data_dir, default_libvirt_uri, guest_dir
    uri = uri or os.environ.get("LIBVIRT_DEFAULT_URI") or default_libvirt_uri()
    if uri != "qemu:///system":
        return
    closed = closed_to_others(directory)
    if closed is None:
        return
    # Offer a directory that passes this same check, never one that fails it: rbdnb's guest
    # dir if what lies above its data dir lets others through (rbdnb makes the data and guest
    # dirs 0755 itself), else /var/tmp.
    own = guest_dir()
    fallback = own if own != directory and closed_to_others(data_dir().parent) is None \
        else Path("/var/tmp")
    raise InvalidArgument(f"{closed} is not traversable by others, so libvirt's QEMU "
                          f"(qemu:///system) could not read a guest built in {directory}: "
                          f"build it elsewhere, e.g. in {fallback}")


def _same_file(path: Path, data_path: Path) -> bool:
    if not path.is_file() or path.stat().st_size != data_path.stat().st_size:
        return False
    with open(path, "rb") as a, open(data_path, "rb") as b:
        while True:
            x, y = a.read(1 << 20), b.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def build(path: str | os.PathLike, *, size: int = DISK_SIZE, uri: str | None = None,
          dry_run: bool = False):
    """Write the guest's qcow2 disk to ``path``, its kernel and initrd beside it.

    The files are made readable by libvirt's QEMU user (0644, in a directory it can
    pass through, checked first). The build is reproducible and each file is written
    to a temporary name and renamed into place, so a reader never sees half a file, a
    build killed half-way leaves nothing half-made, and a build that finds identical
    files in place changes nothing. Returns a :class:`GuestBoot` (``changed`` says
    whether any file was written), or the plan when ``dry_run``.
    """
    from ..base.paths import GUEST_DIR_MODE, ensure_dir, guest_dir
    from ..base.plan import Plan
    out = Path(path).expanduser().absolute()
    if out.suffix != ".qcow2":
        raise InvalidArgument(f"guest image {out} must end in .qcow2")
    kernel = out.with_suffix(".vmlinuz")
    initrd = out.with_suffix(".initrd")
    if dry_run:
        return Plan(f"build the offline guest {out}").add(
            "rbdnb", "guest", "build", str(out)).note(
            f"kernel {kernel} and initrd {initrd} beside it; nothing is written by a dry run")
    own = out.parent == guest_dir()
    ensure_dir(out.parent, GUEST_DIR_MODE, own=own)
    check_readable_by_qemu(out.parent, uri)
    release = _kernel_release()
    written = []
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".rbdnb-guest-") as tmp:
        tmp = Path(tmp)
        shutil.copyfile(f"/boot/vmlinuz-{release}", tmp / "vmlinuz")
        (tmp / "initrd").write_bytes(_initramfs(release))
        raw = tmp / "disk.raw"
        with open(raw, "wb") as fh:
            fh.write(disk_header())
            fh.truncate(size)
        _proc.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, tmp / "disk.qcow2"],
                  timeout=120, what="qemu-img convert of the guest disk")
        for made, final in ((tmp / "vmlinuz", kernel), (tmp / "initrd", initrd),
                            (tmp / "disk.qcow2", out)):
            if _same_file(final, made) and (final.stat().st_mode & 0o777) == 0o644:
                continue
            os.chmod(made, 0o644)
            os.replace(made, final)
            written.append(final.name)
    return GuestBoot(image=str(out), kernel=str(kernel), initrd=str(initrd),
                     cmdline=GUEST_CMDLINE, changed=bool(written))


def parse_console(text: str) -> dict:
    """What a console log says: booted (the marker, or the guest's reports: a VM migrated
    here booted elsewhere), boots (how many times the marker shows: a reboot shows it
    again), uptime (the guest's, at its last report, in s) and the last report per disk."""
    disks = {}
    for name, sectors, digest in DISK_LINE.findall(text):
        disks[name] = {"sectors": int(sectors), "sha256": digest}
    ticks = [float(u) for u in TICK_LINE.findall(text) if u]
    return {"booted": MARKER in text or bool(ticks), "boots": text.count(MARKER),
            "uptime": ticks[-1] if ticks else None, "disks": disks}


def home(guest_dir: str | os.PathLike | None = None, *, dry_run: bool = False) -> Path:
    """Where guests, their disks and console logs go: ``guest_dir``, else rbdnb's guest
    directory; made (0755) and checked readable by libvirt's QEMU unless ``dry_run``."""
    from ..base.paths import GUEST_DIR_MODE, ensure_data_dirs, ensure_dir, guest_dir as default_dir
    directory = Path(guest_dir).expanduser().absolute() if guest_dir else default_dir()
    if not dry_run:
        if guest_dir:
            ensure_dir(directory, GUEST_DIR_MODE, own=False)
        else:
            ensure_data_dirs()
        check_readable_by_qemu(directory)
    return directory


def offline_guest(guest_dir: str | os.PathLike | None = None, *,
                  dry_run: bool = False) -> GuestBoot:
    """The offline guest in ``guest_dir`` (rbdnb's guest directory by default), built if it
    is missing or differs. With ``dry_run`` nothing is written: the result only says where
    it would be (``changed`` False)."""
    out = home(guest_dir, dry_run=dry_run) / "guest.qcow2"
    if dry_run:
        return GuestBoot(image=str(out), kernel=str(out.with_suffix(".vmlinuz")),
                         initrd=str(out.with_suffix(".initrd")),
                         cmdline=GUEST_CMDLINE, changed=False)
    return build(out)


def boot_of(image: str | os.PathLike) -> GuestBoot | None:
    """How a VM whose disk was made from ``image`` boots: an offline guest (``rbdnb guest
    build``: its kernel and initrd beside it) boots them directly; any other image from
    its disk (None)."""
    image = Path(image)
    kernel, initrd = image.with_suffix(".vmlinuz"), image.with_suffix(".initrd")
    if image.suffix != ".qcow2" or not (kernel.exists() and initrd.exists()):
        return None
    return GuestBoot(image=str(image), kernel=str(kernel), initrd=str(initrd),
                     cmdline=GUEST_CMDLINE, changed=False)


def wait_console(path: str | os.PathLike, check, *, timeout: float = 120,
                 interval: float = 1.0, after: int = 0) -> dict:
    """Wait until the guest's console log, parsed (:func:`parse_console`), satisfies
    ``check``; return what it says. Raises :class:`~rbdnb.errors.Timeout` naming the log."""
    from ..errors import Timeout
    from ..base.waiting import wait_until
    seen = {"booted": False, "boots": 0, "uptime": None, "disks": {}}

    def satisfied():
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            text = ""
        seen.update(parse_console(text))
        seen["disks"] = parse_console(text[after:])["disks"]  # only reports since ``after``
        return check(seen)

    if not wait_until(satisfied, timeout, interval=interval):
        raise Timeout(f"{path}: no sign of the guest after {timeout:g} s "
                      f"(booted: {seen['booted']}, disks seen: "
                      f"{', '.join(seen['disks']) or 'none'})")
    return seen
