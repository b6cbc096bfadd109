"""RBD images: create, resize, info, list, remove, rename, copy, du.

Mirrors ``rbd create``, ``rbd resize``, ``rbd info``, ``rbd ls -l``, ``rbd rm``,
``rbd mv``, ``rbd cp`` and ``rbd du``, on the caller's open connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .translate import translated
from .cluster import Cluster
from ..errors import (ConfirmationRequired, Conflict, ImageBusy, ImageExists, ImageHasChildren,
                     ImageHasSnapshots, ImageNotFound, InvalidArgument, SnapshotNotFound,
                     require_confirmation)
from ..base.plan import Plan, Result
from ..base.specs import ImageSpec, check_name, object_size_order, parse_spec
from ..base.units import check_int, format_size, parse_size

FEATURES = {"layering": 1, "striping": 2, "exclusive-lock": 4, "object-map": 8,
            "fast-diff": 16, "deep-flatten": 32, "journaling": 64, "data-pool": 128,
            "operations": 256, "migrating": 512, "non-primary": 1024}
# What a user may ask for at creation; the others are set by Ceph itself.
SETTABLE_FEATURES = ("layering", "exclusive-lock", "object-map", "fast-diff", "deep-flatten",
                     "journaling")
MAX_IMAGE_SIZE = 2**63 - 1
Progress = Callable[[int, int], None]


def feature_names(mask: int) -> list[str]:
    """``rbd info``'s names of the image features in ``mask``."""
    return [name for name, bit in FEATURES.items() if mask & bit]


def feature_mask(names: list[str] | str) -> int:
    """The feature bits of ``names`` (a list or ``a,b``); InvalidArgument for one that cannot be
    set."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    mask = 0
    for name in names:
        if name not in SETTABLE_FEATURES:
            raise InvalidArgument(f"image feature {name!r} is not valid: choose from "
                                  f"{', '.join(SETTABLE_FEATURES)}")
        mask |= FEATURES[name]
    # rbd's own dependency rules, checked here so that the message is ours.
    if mask & FEATURES["object-map"] and not mask & FEATURES["exclusive-lock"]:
        raise InvalidArgument("image feature 'object-map' needs 'exclusive-lock'")
    if mask & FEATURES["fast-diff"] and not mask & FEATURES["object-map"]:
        raise InvalidArgument("image feature 'fast-diff' needs 'object-map'")
    if mask & FEATURES["journaling"] and not mask & FEATURES["exclusive-lock"]:
        raise InvalidArgument("image feature 'journaling' needs 'exclusive-lock'")
    return mask


def image_size(size, what: str = "image size") -> int:
    """An image size in bytes; 0 is legal in Ceph (its QA makes such images)."""
    return parse_size(size, what=what, minimum=0, maximum=MAX_IMAGE_SIZE)


@contextlib.contextmanager
def open_image(cluster: Cluster, spec: ImageSpec, *, read_only: bool = False):
    """An open ``rbd.Image`` for ``spec`` (at its snapshot, if it names one)."""
    import rbd
    with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
        not_found = SnapshotNotFound if spec.snap else ImageNotFound
        what = f"snapshot {spec}" if spec.snap else f"image {spec.image_path}"
        if spec.snap:
            # Say which is missing: the image, or its snapshot.
            with translated(f"image {spec.image_path}", not_found=ImageNotFound):
                rbd.Image(ioctx, spec.image, read_only=True).close()
        with translated(what, not_found=not_found):
            image = rbd.Image(ioctx, spec.image, snapshot=spec.snap, read_only=read_only)
        try:
            # Whatever librbd raises in the body is about this image.
            with translated(what, not_found=not_found):
                yield image
        finally:
            image.close()


def image_exists(cluster: Cluster, spec: ImageSpec) -> bool:
    """Whether ``spec`` is listed in its pool (``rbd ls``)."""
    import rbd
    with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
        with translated(f"pool {spec.pool}"):
            return spec.image in rbd.RBD().list(ioctx)


@dataclass
class ImageInfo:
    """What ``rbd info`` says of an image."""

    pool: str
    namespace: str
    name: str
    id: str
    size: int
    object_size: int
    order: int
    format: int
    features: list[str]
    op_features: list[str]
    block_name_prefix: str
    snapshot_count: int
    parent: str | None = None
    protected_snapshots: list[str] = field(default_factory=list)

    @property
    def spec(self) -> str:
        return ImageSpec(self.pool, self.name, self.namespace).image_path

    def to_dict(self) -> dict:
        return asdict(self)

    def _repr_html_(self) -> str:
        import pandas as pd
        data = {**self.to_dict(), "size": f"{format_size(self.size)} ({self.size} bytes)"}
        data = {k: (", ".join(v) if isinstance(v, list) else v) for k, v in data.items()}
        return pd.Series(data, name=self.spec).to_frame()._repr_html_()


def user_snaps(image) -> list[dict]:
    """An open image's snapshots that ``rbd snap ls`` lists: the user's, not the mirror or
    trash snapshots librbd keeps in other namespaces (their names are not looked up)."""
    return [s for s in image.list_snaps() if s.get("namespace", 0) == 0]


def _info_of(image, spec: ImageSpec) -> ImageInfo:
    import rbd
    stat = image.stat()
    snaps = user_snaps(image)
    protected = [s["name"] for s in snaps if image.is_protected_snap(s["name"])]
    parent = None
    try:
        p = image.get_parent_image_spec()
        ns = f"{p['pool_namespace']}/" if p.get("pool_namespace") else ""
        parent = f"{p['pool_name']}/{ns}{p['image_name']}@{p['snap_name']}"
    except rbd.ImageNotFound:
        pass
    return ImageInfo(pool=spec.pool, namespace=spec.namespace, name=spec.image, id=image.id(),
                     size=stat["size"], object_size=stat["obj_size"], order=stat["order"],
                     format=1 if image.old_format() else 2,
                     features=feature_names(image.features()),
                     op_features=_op_feature_names(image.op_features()),
                     block_name_prefix=stat["block_name_prefix"], snapshot_count=len(snaps),
                     parent=parent, protected_snapshots=protected)


_OP_FEATURES = {1: "clone-parent", 2: "clone-child", 4: "group", 8: "snap-trash"}


def _op_feature_names(mask: int) -> list[str]:
    return [name for bit, name in _OP_FEATURES.items() if mask & bit]


def image_info(cluster: Cluster, spec: str | ImageSpec) -> ImageInfo:
    """``rbd info``: size, features, parent, snapshots of an image (or of one snapshot)."""
    spec = parse_spec(spec, snap="optional")
    with open_image(cluster, spec, read_only=True) as image:
        with translated(f"image {spec}", not_found=ImageNotFound):
            return _info_of(image, spec)


LIST_CONCURRENCY = 16  # header reads in flight


def list_images(cluster: Cluster, pool: str = "rbd", namespace: str = "", *,
                concurrency: int = LIST_CONCURRENCY, progress: Progress | None = None):
    """``rbd ls -l``: the images of a pool as a DataFrame, sorted by name.

    Each image's row comes from one read of its header (:mod:`rbdnb.ceph.headers`), not
    from opening it; ``concurrency`` reads are in flight at a time on the one connection,
    and ``progress(done, total)`` is called as they come in. An image whose header is not
    in an encoding rbdnb reads is opened as ``rbd ls -l`` does. An image removed while
    the pool is read is left out, and named in the frame's ``attrs["skipped"]``.
    """
    import pandas as pd
    import rbd
    from concurrent.futures import ThreadPoolExecutor
    check_name(pool, "pool")
    check_int(concurrency, "concurrency", 1, 256)
    columns = ["name", "size", "parent", "format", "snapshots", "protected_snapshots",
               "features"]
    with cluster.ioctx(pool, namespace) as ioctx:
        with translated(f"pool {pool}"):
            entries = sorted(rbd.RBD().list2(ioctx), key=lambda e: e["name"])
        lister = _HeaderLister(cluster, ioctx, pool, namespace, entries)
        rows = []
        with ThreadPoolExecutor(max(1, min(concurrency, len(entries))),
                                thread_name_prefix="rbdnb-ls") as workers:
            # map keeps the names' order; the first error (not a vanished image) is raised
            # here, and the executor's exit waits for the reads still in flight.
            for done, r in enumerate(workers.map(lister.row, entries), 1):
                rows.append(r)
                if progress is not None:
                    progress(done, len(entries))
    df = pd.DataFrame([r for r in rows if r is not None], columns=columns)
    df.attrs["skipped"] = [e["name"] for e, r in zip(entries, rows) if r is None]
    return df


class _HeaderLister:
    """The rows of one pool's listing, each from its image's header (librbd's open for a
    header it cannot read); the names of parents looked up once per listing."""

    def __init__(self, cluster: Cluster, ioctx, pool: str, namespace: str, entries):
        import threading
        self.cluster, self.ioctx, self.pool, self.namespace = cluster, ioctx, pool, namespace
        self.pool_id = cluster.rados.pool_lookup(pool)
        self.headers: dict[str, object] = {}  # image id -> Header, as they are read
        self.names = {(self.pool_id, namespace): {e["id"]: e["name"] for e in entries}}
        self.lock = threading.Lock()

    def row(self, entry) -> dict | None:
        from . import headers
        import rados
        spec = ImageSpec(self.pool, entry["name"], self.namespace)
        try:
            if not entry.get("id"):
                raise headers.Undecodable("format 1")
            with translated(f"image {spec}", not_found=ImageNotFound):
                header = headers.read_header(self.ioctx, entry["id"])
                with self.lock:
                    self.headers[entry["id"]] = header
                parent = self._parent_spec(header.parent) if header.parent else None
        except (headers.Undecodable, ImageNotFound, rados.ObjectNotFound):
            return self._opened_row(spec)
        snaps = header.user_snaps
        return {"name": spec.image, "size": header.size, "parent": parent, "format": 2,
                "snapshots": len(snaps),
                "protected_snapshots": ",".join(s.name for s in snaps if s.protected),
                "features": ",".join(feature_names(header.features))}

    def _parent_spec(self, parent) -> str:
        """``pool[/ns]/image@snap`` of a header's parent; Undecodable when it is not in a
        directory (a parent in the trash: librbd's open says where it is)."""
        import rbd
        from . import headers
        pool_id, namespace, image_id, snap_id = parent
        with self.lock:
            names = self.names.get((pool_id, namespace))
        pool = self.cluster.rados.pool_reverse_lookup(pool_id)
        if names is None:
            with self.cluster.ioctx(pool, namespace) as other:
                names = {e["id"]: e["name"] for e in rbd.RBD().list2(other)}
            with self.lock:
                self.names[(pool_id, namespace)] = names
        if image_id not in names:
            raise headers.Undecodable("parent not in the directory")
        with self.lock:
            header = self.headers.get(image_id)
        if header is None or not any(s.id == snap_id for s in header.snaps):
            with self.cluster.ioctx(pool, namespace) as other:
                header = headers.read_header(other, image_id)
            with self.lock:
                self.headers[image_id] = header
        snap = next((s.name for s in header.snaps if s.id == snap_id), None)
        if snap is None:
            raise headers.Undecodable("parent snapshot not in its header")
        return ImageSpec(pool, names[image_id], namespace).image_path + f"@{snap}"

    def _opened_row(self, spec: ImageSpec) -> dict | None:
        import rbd
        try:
            with translated(f"image {spec}", not_found=ImageNotFound):
                with rbd.Image(self.ioctx, spec.image, read_only=True) as image:
                    info = _info_of(image, spec)
        except ImageNotFound:
            return None  # removed while we listed
        return {"name": spec.image, "size": info.size, "parent": info.parent,
                "format": info.format, "snapshots": info.snapshot_count,
                "protected_snapshots": ",".join(info.protected_snapshots),
                "features": ",".join(info.features)}


def image_names(cluster: Cluster, pool: str = "rbd", namespace: str = "") -> list[str]:
    """``rbd ls``: just the names (one librbd call on the open connection)."""
    import rbd
    check_name(pool, "pool")
    with cluster.ioctx(pool, namespace) as ioctx:
        with translated(f"pool {pool}"):
            return rbd.RBD().list(ioctx)


def create_image(cluster: Cluster, spec: str | ImageSpec, size, *,
                 features: list[str] | str | None = None, object_size=None,
                 exist_ok: bool = False, dry_run: bool = False) -> Result | Plan:
    """``rbd create``: a new format-2 image of ``size`` (``"10G"``, ``512 * 2**20``).

    ``exist_ok=True`` reports "unchanged" for an image of the same size (and
    features, if given); one that differs is a :class:`Conflict`.
    """
    spec = parse_spec(spec)
    nbytes = image_size(size)
    mask = feature_mask(features) if features is not None else None
    order = None
    if object_size is not None:
        order = object_size_order(parse_size(object_size, what="object size"))
    argv = ["rbd", *cluster.cli_args(), "create", "--size", f"{nbytes}B"]
    if mask is not None:
        argv += ["--image-feature", ",".join(feature_names(mask))]
    if order is not None:
        argv += ["--object-size", f"{1 << order}B"]
    plan = Plan(f"create image {spec}").add(*argv, str(spec))
    if dry_run:
        return plan
    import rbd
    if image_exists(cluster, spec):
        if not exist_ok:
            raise ImageExists(f"image {spec} already exists")
        info = existing_info(cluster, spec)
        if info.size != nbytes:
            raise Conflict(f"image {spec} exists with size {format_size(info.size)}, "
                           f"not {format_size(nbytes)}")
        if mask is not None and set(feature_names(mask)) != set(info.features):
            raise Conflict(f"image {spec} exists with features {','.join(info.features)}")
        return Result(f"create image {spec}", False,
                      f"unchanged: exists with size {format_size(nbytes)}", plan, value=info)
    with cluster.writing(spec.pool, f"create image {spec}"):
        with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
            with translated(f"image {spec}", exists=ImageExists):
                rbd.RBD().create(ioctx, spec.image, nbytes, order=order, old_format=False,
                                 features=mask)
    info = image_info(cluster, spec)
    return Result(f"create image {spec}", True, f"created, {format_size(nbytes)}", plan,
                  value=info)


def existing_info(cluster: Cluster, spec: ImageSpec) -> "ImageInfo":
    """``image_info`` of an image that is listed: one that is listed but cannot be opened
    was left half-made by an interrupted create or clone, and is refused with what to do."""
    try:
        return image_info(cluster, spec)
    except ImageNotFound:
        raise Conflict(f"image {spec} is listed but has no header: an interrupted create or "
                       f"clone left it half-made; remove it (rbd rm {spec}) and run again") \
            from None

def resize_image(cluster: Cluster, spec: str | ImageSpec, size, *, allow_shrink: bool = False,
                 dry_run: bool = False) -> Result | Plan:
    """``rbd resize``. Shrinking destroys data past the new end: refused unless ``allow_shrink``."""
    spec = parse_spec(spec)
    nbytes = image_size(size, "new size")
    argv = ["rbd", *cluster.cli_args(), "resize", "--size", f"{nbytes}B"]
    if allow_shrink:
        argv.append("--allow-shrink")
    plan = Plan(f"resize image {spec}").add(*argv, str(spec))
    if dry_run:
        return plan
    with open_image(cluster, spec) as image:
        current = image.size()
        if current == nbytes:
            return Result(f"resize image {spec}", False,
                          f"unchanged: already {format_size(nbytes)}", plan)
        if nbytes < current and allow_shrink is not True:
            raise ConfirmationRequired(
                f"shrinking image {spec} from {format_size(current)} to {format_size(nbytes)} "
                f"destroys the data past the new end: {{fix}} to do it",
                fix=("allow_shrink", True))
        with cluster.writing(spec.pool, f"resize of {spec}"):
            with translated(f"image {spec}", not_found=ImageNotFound):
                image.resize(nbytes, allow_shrink=allow_shrink)
    return Result(f"resize image {spec}", True,
                  f"resized from {format_size(current)} to {format_size(nbytes)}", plan)

def remove_image(cluster: Cluster, spec: str | ImageSpec, *, confirm: bool = False,
                 purge_snapshots: bool = False, missing_ok: bool = False,
                 dry_run: bool = False) -> Result | Plan:
    """``rbd rm``. Refused unless ``confirm=True``.

    An image with snapshots is refused (:class:`ImageHasSnapshots`) unless
    ``purge_snapshots=True``, which unprotects and removes them; a snapshot that
    clones depend on is never removed (:class:`ImageHasChildren` names them). On a full
    cluster removal needs room for its first step (as ``rbd rm`` does): it is refused at
    once with :class:`ClusterFull`, which names :func:`free_space`.
    """
    import rbd
    spec = parse_spec(spec)
    plan = Plan(f"remove image {spec}")
    if purge_snapshots:
        plan.add("rbd", *cluster.cli_args(), "snap", "purge", str(spec))
    plan.add("rbd", *cluster.cli_args(), "rm", str(spec))
    if dry_run:
        return plan
    require_confirmation(confirm, f"removing image {spec} destroys its data")
    if not image_exists(cluster, spec):
        if missing_ok:
            return Result(f"remove image {spec}", False, "unchanged: no such image", plan)
        raise ImageNotFound(f"image {spec} not found")
    cluster.check_writable(spec.pool)
    snaps = check_removable(cluster, spec, purge_snapshots=purge_snapshots)
    with cluster.writing(spec.pool, f"removal of {spec}"):
        if snaps:
            with open_image(cluster, spec) as image:
                for snap in snaps:
                    with translated(f"snapshot {spec}@{snap}", not_found=SnapshotNotFound):
                        if image.is_protected_snap(snap):
                            image.unprotect_snap(snap)
                        image.remove_snap(snap)
        with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
            try:
                with translated(f"image {spec}", not_found=ImageNotFound):
                    rbd.RBD().remove(ioctx, spec.image)
            except ImageBusy:
                raise ImageBusy(busy_message(cluster, spec, "removed")) from None
    extra = f" with {len(snaps)} snapshot(s)" if snaps else ""
    return Result(f"remove image {spec}", True, f"removed{extra}", plan)


def busy_message(cluster: Cluster, spec: ImageSpec, verb: str) -> str:
    """Why an image cannot be ``verb`` now: who has it open."""
    import rbd
    try:
        with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
            with rbd.Image(ioctx, spec.image, read_only=True) as image:
                watchers = [w["addr"] for w in image.watchers_list()]
    except Exception:
        watchers = []
    who = f"{len(watchers)} client(s) ({', '.join(watchers[:3])})" if watchers else "a client"
    return (f"image {spec} cannot be {verb}: {who} still has it open (a VM, a map, another "
            f"process); stop them first. A client that died keeps its hold for up to 30 s")


def check_removable(cluster: Cluster, spec: ImageSpec, *, purge_snapshots: bool) -> list[str]:
    """The image's snapshots, once it is clear that removing it breaks no clone and that
    its snapshots may go; else ImageHasChildren / ImageHasSnapshots."""
    try:
        with open_image(cluster, spec, read_only=True) as image:
            snaps = [s["name"] for s in user_snaps(image)]
            for snap in snaps:
                kids = children_of(image, snap)
                if kids:
                    raise ImageHasChildren(
                        f"image {spec} cannot be removed: clones depend on its snapshot {snap} "
                        f"({', '.join(kids[:5])}{'…' if len(kids) > 5 else ''}); flatten or "
                        f"remove them first")
    except ImageNotFound:
        return []  # listed without a header (a half-made image): librbd removes what is there
    if snaps and purge_snapshots is not True:
        raise ImageHasSnapshots(f"image {spec} has {len(snaps)} snapshot(s) "
                                f"({', '.join(snaps[:5])}): remove them first, or {{fix}}",
                                fix=("purge_snapshots", True))
    return snaps

def children_of(image, snap: str) -> list[str]:
    """``rbd children``: the clones of snapshot ``snap`` of an open image, as ``pool[/ns]/image``."""
    import rbd
    try:
        image.set_snap(snap)
        kids = image.list_children2()
    except rbd.ImageNotFound:
        kids = []
    finally:
        image.set_snap(None)
    return [f"{c['pool']}/{c['pool_namespace'] + '/' if c['pool_namespace'] else ''}{c['image']}"
            for c in kids]


def rename_image(cluster: Cluster, spec: str | ImageSpec, new_name: str, *,
                 dry_run: bool = False) -> Result | Plan:
    """``rbd mv`` within the same pool (and namespace): RBD cannot rename across pools."""
    import rbd
    spec = parse_spec(spec)
    check_name(new_name, "image")
    dest = spec.with_image(new_name)
    plan = Plan(f"rename image {spec} to {new_name}").add(
        "rbd", *cluster.cli_args(), "mv", str(spec), str(dest))
    if dry_run:
        return plan
    if new_name == spec.image:
        return Result(plan.action, False, "unchanged: same name", plan)
    if image_exists(cluster, dest):
        raise ImageExists(f"image {dest} already exists")
    with cluster.writing(spec.pool, f"rename of {spec}"):
        with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
            with translated(f"image {spec}", not_found=ImageNotFound, exists=ImageExists):
                rbd.RBD().rename(ioctx, spec.image, new_name)
    return Result(plan.action, True, f"renamed to {dest}", plan, value=str(dest))

def disk_usage(cluster: Cluster, spec: str | ImageSpec):
    """``rbd du`` of one image's current state: provisioned and used bytes (whole objects)."""
    import pandas as pd
    spec = parse_spec(spec)
    with open_image(cluster, spec, read_only=True) as image:
        size = image.size()
        used = [0]

        def count(offset, length, exists):
            if exists:
                used[0] += length
            return 0

        # librbd's diff_iterate asserts (and kills the process) on an image of size 0,
        # which Ceph allows: such an image uses nothing, so do not ask.
        if size > 0:
            with translated(f"image {spec}", not_found=ImageNotFound):
                image.diff_iterate(0, size, None, count, include_parent=False,
                                   whole_object=True)
    return pd.DataFrame([{"name": spec.image, "provisioned": size, "used": used[0]}])

du = disk_usage
