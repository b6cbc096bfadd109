"""Moving VM images in and out of RBD, and proving the bytes arrived.

``import_image`` converts a qcow2 or raw file into an RBD image with
``qemu-img convert -W -m 16`` (out-of-order writes with 16 coroutines: the
fastest of qemu-img and ``rbd import`` measured here, see
``rbdnb bench compare``); ``method="rbd"`` uses ``rbd import`` for raw
files. ``export_image`` goes the other way. ``verify_image`` compares SHA-256
checksums of the source's raw content and of the image read through librbd.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

from . import _proc, qemu
from .cluster import Cluster
from .errors import Conflict, ImageExists, ImageNotFound, InvalidArgument
from .images import image_exists, image_info, open_image
from .plan import Plan, Result
from .specs import ImageSpec, parse_spec
from .units import format_size

Progress = Callable[[int, int], None]
METHODS = ("auto", "qemu-img", "rbd")
CHUNK = 4 * 1024**2


def _source_info(path: str) -> dict:
    if not os.path.isfile(path):
        raise InvalidArgument(f"source image {path} does not exist or is not a file")
    return qemu.info(path)


def import_image(cluster: Cluster, source: str | os.PathLike, dest: str | ImageSpec, *,
                 method: str = "auto", source_format: str | None = None,
                 progress: Progress | None = None, exist_ok: bool = False,
                 stall_timeout: float = 120, dry_run: bool = False) -> Result | Plan:
    """Import a qcow2 or raw file into a new RBD image (raw, as VMs on RBD use).

    ``exist_ok=True`` reports "unchanged" when the image exists with the source's
    virtual size (it is not re-imported; use :func:`verify_image` to compare
    bytes); a different size is a :class:`Conflict`.
    """
    source = os.fspath(source)
    dest = parse_spec(dest)
    if method not in METHODS:
        raise InvalidArgument(f"method {method!r} is not valid: choose from {', '.join(METHODS)}")
    info = _source_info(source)
    fmt = source_format or info["format"]
    if method == "auto":
        method = "qemu-img"
    if method == "rbd" and fmt != "raw":
        raise InvalidArgument(f"method 'rbd' imports raw files only; {source} is {fmt}: "
                              f"use method='qemu-img'")
    virtual = int(info["virtual-size"])
    plan = Plan(f"import {os.path.basename(source)} into {dest}")
    if method == "qemu-img":
        argv = qemu.convert_argv(source, dest, cluster, source_format=fmt, dest_format="raw")
        plan.add(*qemu._display(argv))
    else:
        argv = ["rbd", *cluster.cli_args(), "import", "--no-progress", source, str(dest)]
        plan.add(*argv)
    if dry_run:
        return plan
    if image_exists(cluster, dest):
        if not exist_ok:
            raise ImageExists(f"image {dest} already exists")
        have = image_info(cluster, dest).size
        if have != virtual:
            raise Conflict(f"image {dest} exists with size {format_size(have)}, not the "
                           f"{format_size(virtual)} of {source}")
        return Result(plan.action, False, f"unchanged: {dest} exists with the same size "
                      f"({format_size(virtual)}); not re-imported", plan)
    cluster.check_writable(dest.pool)
    t0 = time.monotonic()
    if method == "qemu-img":
        qemu.run_with_progress(argv, what=f"import into {dest}", total=virtual,
                               progress=progress, stall_timeout=stall_timeout)
    else:
        _proc.run(argv, timeout=max(120.0, virtual / (20 * 1024**2)), what=f"rbd import {dest}")
        if progress:
            progress(virtual, virtual)
    seconds = time.monotonic() - t0
    return Result(plan.action, True, f"imported {format_size(virtual)} ({fmt}) in "
                  f"{seconds:.1f} s with {method}", plan,
                  value={"seconds": seconds, "virtual_size": virtual, "format": fmt,
                         "method": method})


def export_image(cluster: Cluster, source: str | ImageSpec, dest: str | os.PathLike, *,
                 dest_format: str = "raw", overwrite: bool = False,
                 progress: Progress | None = None, stall_timeout: float = 120,
                 dry_run: bool = False) -> Result | Plan:
    """Export an RBD image (or a snapshot of it) to a raw or qcow2 file."""
    source = parse_spec(source, snap="optional")
    dest = os.fspath(dest)
    argv = qemu.convert_argv(source, dest, cluster, source_format="raw", dest_format=dest_format)
    plan = Plan(f"export {source} to {dest}").add(*qemu._display(argv))
    if dry_run:
        return plan
    if os.path.exists(dest) and not overwrite:
        raise InvalidArgument(f"{dest} exists: pass overwrite=True to replace it")
    with open_image(cluster, source, read_only=True) as image:
        total = image.size()
    seconds = qemu.run_with_progress(argv, what=f"export of {source}", total=total,
                                     progress=progress, stall_timeout=stall_timeout)
    return Result(plan.action, True, f"exported {format_size(total)} as {dest_format} in "
                  f"{seconds:.1f} s", plan, value={"seconds": seconds, "path": dest})


def checksum_image(cluster: Cluster, spec: str | ImageSpec, *,
                   progress: Progress | None = None) -> str:
    """SHA-256 of an image's whole virtual size, read through librbd (holes read as zeros)."""
    spec = parse_spec(spec, snap="optional")
    digest = hashlib.sha256()
    with open_image(cluster, spec, read_only=True) as image:
        size = image.size()
        # Read only what is allocated; hash zeros for the rest without reading them.
        extents = []
        image.diff_iterate(0, size, None,
                           lambda off, length, exists: extents.append((off, length, exists)) or 0,
                           include_parent=True, whole_object=False)
        allocated = sorted((o, n) for o, n, e in extents if e)
        pos = 0
        zeros = bytes(CHUNK)
        for off, length in allocated + [(size, 0)]:
            while pos < off:
                n = min(CHUNK, off - pos)
                digest.update(zeros[:n])
                pos += n
            end = off + length
            while pos < end:
                n = min(CHUNK, end - pos)
                digest.update(image.read(pos, n))
                pos += n
                if progress:
                    progress(pos, size)
        if progress:
            progress(size, size)
    return digest.hexdigest()


def checksum_file(path: str | os.PathLike) -> str:
    """SHA-256 of a disk image file's raw content (a qcow2 is converted to raw first)."""
    path = os.fspath(path)
    fmt = _source_info(path)["format"]
    if fmt != "raw":
        with tempfile.TemporaryDirectory(prefix="rbdnb-") as tmp:
            raw = os.path.join(tmp, "raw")
            _proc.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", path, raw], timeout=600,
                      what=f"qemu-img convert of {path}")
            return checksum_file(raw)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Verification:
    source: str
    image: str
    source_sha256: str
    image_sha256: str

    @property
    def identical(self) -> bool:
        return self.source_sha256 == self.image_sha256

    def __str__(self) -> str:
        verdict = "identical" if self.identical else "DIFFERENT"
        return (f"{self.source} and {self.image} are {verdict} "
                f"(sha256 {self.source_sha256[:16]}… vs {self.image_sha256[:16]}…)")


def verify_image(cluster: Cluster, source: str | os.PathLike, spec: str | ImageSpec) -> Verification:
    """Whether an RBD image holds exactly the bytes of ``source`` (its raw content)."""
    spec = parse_spec(spec, snap="optional")
    if not image_exists(cluster, spec):
        raise ImageNotFound(f"image {spec.image_path} not found")
    return Verification(os.fspath(source), str(spec), checksum_file(source),
                        checksum_image(cluster, spec))
