"""rbd's metadata read where it lies, without opening images: for listings at scale.

``rbd ls -l`` opens every image (and a clone's parent too): a dozen round trips each. The
same facts are in one object per image, its header ``rbd_header.ID``, whose omap holds
``size``, ``order``, ``features``, ``parent`` and one ``snapshot_ID`` per snapshot. One read
of that omap per image gives a listing's row; the ids come from one ``rbd_directory`` read
(``RBD.list2``). Likewise the clones of a snapshot are one call per pool (clone v1's
``rbd_children`` object, through ``cls_rbd.get_children``) plus one omap key of the
parent's header (clone v2's ``snap_children_ID``), their names from the same directory
read, instead of a lookup per child.

The encodings decoded here are Ceph's (``src/include/encoding.h``): little-endian
integers, strings as u32 length + bytes, a struct as version, compat version, u32 length,
then its fields; an optional as a bool byte then the value. Only the struct versions
written by Nautilus and later are decoded (``cls_rbd_snap`` v8, ``cls_rbd_parent`` v2,
``ChildImageSpec`` v2); anything else, or anything that does not decode to exactly its
length, is :class:`Undecodable`, and the callers fall back to librbd for that image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

NOSNAP = 2**64 - 2  # CEPH_NOSNAP
PROTECTED = 2  # RBD_PROTECTION_STATUS_PROTECTED
USER_SNAPSHOT = 0  # cls::rbd::SNAPSHOT_NAMESPACE_TYPE_USER
MAX_KEYS = 4096  # omap keys read per header; a header with more is read by librbd


class Undecodable(Exception):
    """Bytes that are not in an encoding this module reads."""


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Undecodable("short read")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def i64(self) -> int:
        return struct.unpack("<q", self.take(8))[0]

    def string(self) -> str:
        return self.take(self.u32()).decode("utf-8", "replace")

    def envelope(self, version: int) -> "_Reader":
        """A struct of exactly ``version``: its body as a reader of its own."""
        v, _compat, length = self.u8(), self.u8(), self.u32()
        if v != version:
            raise Undecodable(f"struct version {v}, not {version}")
        return _Reader(self.take(length))

    def end(self) -> None:
        if self.pos != len(self.data):
            raise Undecodable("trailing bytes")


@dataclass
class Snap:
    """One ``snapshot_ID`` of a header."""
    id: int
    name: str
    protected: bool
    user: bool  # a user's snapshot (rbd snap ls shows it); not trash, group or mirror


@dataclass
class Header:
    """What an image's header says: the facts of ``rbd ls -l`` and ``rbd info``."""
    size: int
    order: int
    features: int
    parent: tuple[int, str, str, int] | None  # pool id, namespace, image id, snap id
    snaps: list[Snap] = field(default_factory=list)

    @property
    def user_snaps(self) -> list[Snap]:
        return [s for s in self.snaps if s.user]


def decode_snap(data: bytes) -> Snap:
    """A ``snapshot_ID`` value (``cls_rbd_snap`` v8)."""
    r = _Reader(data).envelope(8)
    snap_id, name, _size = r.u64(), r.string(), r.u64()
    protection, _flags = r.u8(), r.u64()
    ns = r.envelope(1)
    kind = ns.u32()
    _timestamp, _child_count = r.take(8), r.u32()
    if r.u8():
        r.u64()  # parent overlap
    r.end()
    return Snap(snap_id, name, protection == PROTECTED, kind == USER_SNAPSHOT)


def decode_parent(data: bytes) -> tuple[int, str, str, int] | None:
    """The ``parent`` value (``cls_rbd_parent`` v2): None if it names no parent."""
    r = _Reader(data).envelope(2)
    pool, namespace, image_id = r.i64(), r.string(), r.string()
    snap_id = r.u64()
    if r.u8():
        r.u64()  # head overlap
    r.end()
    if pool < 0 or not image_id or snap_id == NOSNAP:
        return None
    return pool, namespace, image_id, snap_id


def decode_header(omap: dict[str, bytes]) -> Header:
    """A header's omap (key to value) as a :class:`Header`."""
    try:
        size = struct.unpack("<Q", omap["size"])[0]
        order = omap["order"][0]
        features = struct.unpack("<Q", omap["features"])[0]
    except (KeyError, IndexError, struct.error):
        raise Undecodable("not a format 2 header") from None
    parent = decode_parent(omap["parent"]) if "parent" in omap else None
    snaps = [decode_snap(v) for k, v in sorted(omap.items()) if k.startswith("snapshot_")]
    return Header(size, order, features, parent, snaps)


def read_header(ioctx, image_id: str) -> Header:
    """One read of ``rbd_header.ID``'s omap. :class:`Undecodable` for a header too large to
    read at once or in another encoding; rados's ObjectNotFound if it is gone."""
    import rados
    with rados.ReadOpCtx() as op:
        found, _ = ioctx.get_omap_vals(op, "", "", MAX_KEYS)
        ioctx.operate_read_op(op, f"rbd_header.{image_id}")
        omap = dict(found)
    if len(omap) >= MAX_KEYS:
        raise Undecodable("more keys than one read")
    return decode_header(omap)


def decode_child_ids(data: bytes) -> list[str]:
    """``cls_rbd.get_children``'s output: a set of image ids."""
    r = _Reader(data)
    ids = [r.string() for _ in range(r.u32())]
    r.end()
    return ids


def decode_child_specs(data: bytes) -> list[tuple[int, str, str]]:
    """A ``snap_children_ID`` value: a set of ``ChildImageSpec`` v2 (pool id, namespace,
    image id)."""
    r = _Reader(data)
    out = []
    for _ in range(r.u32()):
        c = r.envelope(2)
        pool, image_id, namespace = c.i64(), c.string(), c.string()
        c.end()
        out.append((pool, namespace, image_id))
    r.end()
    return out


def v1_child_ids(ioctx, parent_pool: int, parent_id: str, snap_id: int) -> list[str]:
    """Clone v1 children in ``ioctx``'s pool of (pool, image id, snap id): their ids."""
    import rados
    key = struct.pack("<q", parent_pool) + struct.pack("<I", len(parent_id)) + \
        parent_id.encode() + struct.pack("<Q", snap_id)
    try:
        _, out = ioctx.execute("rbd_children", "rbd", "get_children", key, length=64 << 20)
    except rados.ObjectNotFound:  # no clone v1 was ever made in this pool
        return []
    except rados.PermissionError:  # a pool this user may not read: librbd's rules apply
        raise Undecodable("a pool not readable") from None
    return decode_child_ids(out) if out else []


def v2_child_specs(ioctx, parent_id: str, snap_id: int) -> list[tuple[int, str, str]]:
    """Clone v2 children of a snapshot, from its image's header: (pool id, ns, image id)."""
    import rados
    key = f"snap_children_{snap_id:016x}"
    with rados.ReadOpCtx() as op:
        found, _ = ioctx.get_omap_vals_by_keys(op, (key,))
        try:
            ioctx.operate_read_op(op, f"rbd_header.{parent_id}")
        except rados.ObjectNotFound:  # the image is open, so its header is elsewhere
            raise Undecodable("no header object") from None
        found = dict(found)
    return decode_child_specs(found[key]) if key in found else []
