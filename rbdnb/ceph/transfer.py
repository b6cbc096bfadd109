"""Moving VM images in and out of RBD, and proving the bytes arrived.

``import_image`` converts a qcow2 or raw file into an RBD image with
``qemu-img convert -W -m 16`` (out-of-order writes with 16 coroutines: the
fastest of qemu-img and ``rbd import`` measured here, see
``rbdnb bench compare``); ``method="rbd"`` uses ``rbd import`` for raw
files. ``export_image`` goes the other way. ``verify_image`` compares SHA-256
checksums of the source's raw content and of the image read through librbd.

Interrupted work never passes for done:

* an import writes a staging image and renames it into place only once complete,
  with a completion record holding the source's checksum (:mod:`rbdnb.ceph.staging`);
  a re-run with ``exist_ok=True`` says "unchanged" only when that record matches
  the source as it is now, or when the image's bytes are checked equal to it;
* an import is exact: a raw file whose size is not a multiple of 512 bytes (which
  qemu-img rounds up) ends up with exactly the file's size;
* an export writes a temporary file beside the destination and renames it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..base import proc as _proc
from . import locks, qemu
from .translate import translated
from .cluster import Cluster
from ..errors import Conflict, ImageExists, ImageNotFound, InvalidArgument
from .images import image_exists, open_image
from ..base.plan import Plan, Result
from ..base.specs import ImageSpec, parse_spec
from .staging import Staged, lock_key, read_record, staging_spec
from ..base.units import format_size

Progress = Callable[[int, int], None]
METHODS = ("auto", "qemu-img", "rbd")
CHUNK = 4 * 1024**2


def _source_info(path: str) -> dict:
    if not isinstance(path, str) or "\0" in path or "\n" in path:
        raise InvalidArgument(f"source image {path!r} is not a valid path")
    if not os.path.isfile(path):
        raise InvalidArgument(f"source image {path} does not exist or is not a file")
    return qemu.info(path)


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes as stored (a qcow2 file's, not its disk content)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise InvalidArgument(f"source image {path} could not be read: "
                              f"{exc.strerror or exc}") from None
    return digest.hexdigest()


def _identity(path: str) -> tuple:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _Hasher(threading.Thread):
    """The source's checksum, computed beside the import (the other core is idle)."""

    def __init__(self, path: str):
        super().__init__(daemon=True, name="rbdnb-sha256")
        self.path, self.value, self.error = path, None, None

    def run(self):
        try:
            self.value = sha256_file(self.path)
        except OSError as exc:
            self.error = exc

    def result(self) -> str:
        self.join()
        if self.error is not None:
            raise InvalidArgument(f"source image {self.path} could not be read: "
                                  f"{self.error.strerror}")
        return self.value


def _unchanged_if_same(cluster: Cluster, source: str, dest: ImageSpec, fmt: str, nbytes: int,
                       sha: str, plan: Plan, exist_ok: bool) -> Result:
    """``dest`` exists: 'unchanged' only if it verifiably holds ``source``, else refuse."""
    if not exist_ok:
        raise ImageExists(f"image {dest} already exists: {{fix}} to keep it if it holds "
                          f"{os.path.basename(source)}", fix=("exist_ok", True))
    record = read_record(cluster, dest)
    if record and record.get("kind") == "import" and record.get("sha256") == sha \
            and record.get("size") == nbytes:
        return Result(plan.action, False, f"unchanged: {dest} holds {os.path.basename(source)} "
                      f"(sha256 {sha[:12]}…, recorded when its import completed)", plan,
                      value={"sha256": sha, "virtual_size": nbytes, "format": fmt})
    # No record of ours: compare the bytes (the source's raw content against the image's).
    with open_image(cluster, dest, read_only=True) as image:
        size = image.size()
    if size == nbytes and checksum_image(cluster, dest) == (
            sha if fmt == "raw" else checksum_file(source)):
        return Result(plan.action, False, f"unchanged: {dest} holds the same bytes as "
                      f"{os.path.basename(source)} (verified by checksum)", plan,
                      value={"sha256": sha, "virtual_size": nbytes, "format": fmt})
    why = (f"its size is {format_size(size)}, not {format_size(nbytes)}" if size != nbytes
           else "its content differs")
    raise Conflict(f"image {dest} exists but does not hold {source} ({why}; no completion "
                   f"record of an rbdnb import): remove it, or import under another name")


def import_image(cluster: Cluster, source: str | os.PathLike, dest: str | ImageSpec, *,
                 method: str = "auto", source_format: str | None = None,
                 progress: Progress | None = None, exist_ok: bool = False,
                 stall_timeout: float | None = None, dry_run: bool = False) -> Result | Plan:
    """Import a qcow2 or raw file into a new RBD image (raw, as VMs on RBD use).

    The data goes into a staging image that is renamed to ``dest`` once complete, with
    a completion record carrying the source's SHA-256 (see :mod:`rbdnb.ceph.staging`), so
    ``dest`` never holds a partial import. ``exist_ok=True`` reports "unchanged" when
    ``dest`` holds this source (by its record, else by comparing checksums); an image
    holding anything else is a :class:`Conflict`. A raw file is imported byte for byte,
    whatever its size. ``stall_timeout`` (default: twice the connection's timeout, + 5 s)
    bounds how long the copy may make no progress.
    """
    source = os.path.abspath(os.fspath(source))
    dest = parse_spec(dest)
    if method not in METHODS:
        raise InvalidArgument(f"method {method!r} is not valid: choose from {', '.join(METHODS)}")
    if source_format is not None and source_format not in qemu.FORMATS:
        raise InvalidArgument(f"source format {source_format!r} is not valid: choose from "
                              f"{', '.join(qemu.FORMATS)}")
    if dry_run and not os.path.exists(source) and "\0" not in source:
        # A plan may come before the step that makes its source (a runbook's dry run
        # does not build the guest): plan it, and say so. A real run refuses it.
        info = {"format": source_format or "raw", "virtual-size": 0}
        missing = True
    else:
        info = _source_info(source)
        missing = False
    fmt = source_format or info["format"]
    if method == "auto":
        method = "qemu-img"
    if method == "rbd" and fmt != "raw":
        raise InvalidArgument(f"method 'rbd' imports raw files only; {source} is {fmt}: "
                              f"use method='qemu-img'")
    # A raw file's exact length; qemu-img reports it rounded up to 512 bytes.
    if missing:
        nbytes = 0
    else:
        nbytes = os.path.getsize(source) if fmt == "raw" else int(info["virtual-size"])
        if nbytes < 1:
            raise InvalidArgument(f"source image {source} is empty: nothing to import")
    stall = stall_timeout if stall_timeout is not None else 2 * cluster.timeout + 5
    staging = staging_spec(dest, "import")
    plan = Plan(f"import {os.path.basename(source)} into {dest}")
    if method == "qemu-img":
        plan.add("rbd", *cluster.cli_args(), "create", "--size", f"{nbytes}B", str(staging))
        argv = qemu.convert_argv(source, staging, cluster, source_format=fmt, dest_format="raw",
                                 skip_create=True, target_is_zero=True)
        plan.add(*qemu.display_argv(argv))
    else:
        argv = ["rbd", *cluster.cli_args(), "import", "--no-progress", source, str(staging)]
        plan.add(*argv)
    plan.add("rbd", *cluster.cli_args(), "image-meta", "set", str(staging), "rbdnb.completed",
             "{sha256, size, source}")
    plan.add("rbd", *cluster.cli_args(), "mv", str(staging), str(dest))
    plan.note(f"the image appears as {dest} only once complete; its metadata "
              f"rbdnb.completed records the source's checksum")
    if missing:
        plan.note(f"{source} does not exist yet: a real run needs it")
    if dry_run:
        return plan

    with locks.held(lock_key(cluster, dest), what=f"import into {dest}"):
        if image_exists(cluster, dest):
            if not exist_ok:
                raise ImageExists(f"image {dest} already exists: {{fix}} to keep it if it "
                                  f"holds {os.path.basename(source)}", fix=("exist_ok", True))
            return _unchanged_if_same(cluster, source, dest, fmt, nbytes, sha256_file(source),
                                      plan, exist_ok)
        cluster.check_writable(dest.pool)
        before = _identity(source)
        hasher = _Hasher(source)
        hasher.start()
        t0 = time.monotonic()
        with Staged(cluster, dest, "import", what=f"import into {dest}", lock=False) as st:
            if method == "qemu-img":
                _create_exact(cluster, st.spec, nbytes)
                qemu.run_with_progress(argv, what=f"import into {dest}", total=nbytes,
                                       progress=progress, stall_timeout=stall)
                _trim_to(cluster, st.spec, nbytes)
            else:
                _proc.run(argv, timeout=max(stall, nbytes / (20 * 1024**2)),
                          what=f"rbd import into {dest}")
                if progress:
                    progress(nbytes, nbytes)
            sha = hasher.result()
            if _identity(source) != before:
                # The record must say what was imported: a file replaced or written to
                # meanwhile may hold other bytes than those copied.
                raise Conflict(f"{source} changed while it was imported into {dest}: "
                               f"nothing was kept; import it again once it is settled")
            st.finish({"source": source, "sha256": sha, "size": nbytes, "format": fmt,
                       "method": method})
    seconds = time.monotonic() - t0
    return Result(plan.action, True, f"imported {format_size(nbytes)} ({fmt}) in "
                  f"{seconds:.1f} s with {method}; sha256 {sha[:12]}…", plan,
                  value={"seconds": seconds, "virtual_size": nbytes, "format": fmt,
                         "method": method, "sha256": sha})


def _create_exact(cluster: Cluster, spec: ImageSpec, nbytes: int) -> None:
    import rbd
    with cluster.writing(spec.pool, f"staging image {spec}"):
        with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
            with translated(f"image {spec}", exists=ImageExists):
                rbd.RBD().create(ioctx, spec.image, nbytes, old_format=False)


def _trim_to(cluster: Cluster, spec: ImageSpec, nbytes: int) -> None:
    """qemu-img works in 512-byte sectors and grows an image to a whole sector; cut the
    padding (zeros past the source's end) so the image is exactly as long as the file."""
    with open_image(cluster, spec) as image:
        if image.size() != nbytes:
            image.resize(nbytes, allow_shrink=True)


def export_image(cluster: Cluster, source: str | ImageSpec, dest: str | os.PathLike, *,
                 dest_format: str = "raw", overwrite: bool = False,
                 progress: Progress | None = None, stall_timeout: float | None = None,
                 dry_run: bool = False) -> Result | Plan:
    """Export an RBD image (or a snapshot of it) to a raw or qcow2 file.

    The file is written under a temporary name beside ``dest`` and renamed once
    complete, so ``dest`` never holds a partial export; a re-run after an interrupted
    one starts afresh.
    """
    source = parse_spec(source, snap="optional")
    dest = os.path.abspath(os.fspath(dest))
    if "\0" in dest or "\n" in dest:
        raise InvalidArgument(f"destination {dest!r} is not a valid path")
    if dest_format not in ("raw", "qcow2"):
        raise InvalidArgument(f"destination format {dest_format!r} is not valid: raw or qcow2")
    part = os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.rbdnb-part")
    argv = qemu.convert_argv(source, part, cluster, source_format="raw",
                             dest_format=dest_format)
    plan = Plan(f"export {source} to {dest}").add(*qemu.display_argv(argv))
    plan.add("mv", part, dest)
    if dry_run:
        return plan
    if os.path.isdir(dest):
        raise InvalidArgument(f"{dest} is a directory: name the file to write")
    if not os.path.isdir(os.path.dirname(dest)):
        raise InvalidArgument(f"{os.path.dirname(dest)} does not exist: make it first")
    if os.path.exists(dest) and not overwrite:
        raise InvalidArgument(f"{dest} exists: {{fix}} to replace it", fix=("overwrite", True))
    stall = stall_timeout if stall_timeout is not None else 2 * cluster.timeout + 5
    with locks.held(f"file:{dest}", what=f"export to {dest}"):
        with open_image(cluster, source, read_only=True) as image:
            total = image.size()
        try:
            os.unlink(part)  # an interrupted export's leftover
        except FileNotFoundError:
            pass
        try:
            seconds = qemu.run_with_progress(argv, what=f"export of {source}", total=total,
                                             progress=progress, stall_timeout=stall)
            os.replace(part, dest)
        finally:
            if os.path.exists(part):
                os.unlink(part)
    return Result(plan.action, True, f"exported {format_size(total)} as {dest_format} in "
                  f"{seconds:.1f} s", plan, value={"seconds": seconds, "path": dest})


def checksum_image(cluster: Cluster, spec: str | ImageSpec, *,
                   progress: Progress | None = None) -> str:
    """SHA-256 of an image's whole virtual size, read through librbd (holes read as zeros)."""
    spec = parse_spec(spec, snap="optional")
    digest = hashlib.sha256()
    with open_image(cluster, spec, read_only=True) as image:
        size = image.size()
        if size == 0:
            # librbd's diff_iterate asserts on an empty image (it would kill the process):
            # there is nothing to read anyway.
            return digest.hexdigest()
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
    return sha256_file(path)


@dataclass
class Verification:
    """What :func:`verify_image` compared: the source file's and the image's SHA-256."""
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


def copy_image(cluster: Cluster, source: str | ImageSpec, dest: str | ImageSpec, *,
               exist_ok: bool = False, dry_run: bool = False) -> Result | Plan:
    """``rbd cp``: a full (not copy-on-write) copy of an image's data, without its snapshots.

    The copy is made under a staging name and renamed to ``dest`` once complete, with a
    completion record naming its source (:mod:`rbdnb.ceph.staging`): ``dest`` never holds a
    partial copy. ``exist_ok=True`` reports "unchanged" only for a ``dest`` that is a
    completed copy of ``source`` (by its record, else by comparing checksums).
    """
    source = parse_spec(source, snap="optional")
    dest = parse_spec(dest)
    if dest.image_path == source.image_path:
        raise InvalidArgument(f"copy of {source} onto itself: name another destination")
    staging = staging_spec(dest, "copy")
    plan = Plan(f"copy image {source} to {dest}").add(
        "rbd", *cluster.cli_args(), "cp", str(source), str(staging))
    plan.add("rbd", *cluster.cli_args(), "mv", str(staging), str(dest))
    plan.note(f"the copy appears as {dest} only once complete (metadata rbdnb.completed)")
    if dry_run:
        return plan
    with locks.held(lock_key(cluster, dest), what=f"copy to {dest}"):
        if image_exists(cluster, dest):
            if not exist_ok:
                raise ImageExists(f"image {dest} already exists")
            record = read_record(cluster, dest)
            if record and record.get("kind") == "copy" and record.get("source") == str(source):
                return Result(plan.action, False, f"unchanged: {dest} is a completed copy of "
                              f"{source}", plan, value=str(dest))
            if checksum_image(cluster, source) == checksum_image(cluster, dest):
                return Result(plan.action, False, f"unchanged: {dest} holds the same bytes as "
                              f"{source} (verified by checksum)", plan, value=str(dest))
            raise Conflict(f"image {dest} exists but is not a copy of {source} (its content "
                           f"differs): remove it, or copy under another name")
        cluster.check_writable(dest.pool)
        with Staged(cluster, dest, "copy", what=f"copy to {dest}", lock=False) as st:
            with cluster.writing(dest.pool, f"copy of {source} to {dest}"):
                with open_image(cluster, source, read_only=True) as image:
                    size = image.size()
                    with cluster.ioctx(dest.pool, dest.namespace) as dest_ioctx:
                        with translated(f"copy of {source} to {dest}", exists=ImageExists):
                            image.copy(dest_ioctx, st.spec.image)
            st.finish({"source": str(source), "size": size})
    return Result(plan.action, True, "copied", plan, value=str(dest))
