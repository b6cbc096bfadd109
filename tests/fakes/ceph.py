"""A fake Ceph for fast unit tests: in-memory pools -> images -> snapshots -> children behind
the small surface rbdnb uses from the ``rados`` and ``rbd`` Python bindings.

It plugs in where the real bindings plug in -- ``sys.modules["rados"]`` and
``sys.modules["rbd"]``, which rbdnb imports lazily -- so the code under test is exactly the
code that runs against a real cluster (as httpx's MockTransport replaces only the
transport). Errors carry the errno librados/librbd would give, so rbdnb's translation runs
as it does for real. What it does not model: timeouts, fullness, cephx caps, namespaces
beyond the default. Watchers of other clients are only what a test puts in ``Img.watchers``
(addresses), and blocklisting an address drops its watches, as the OSDs do.

    with fake_ceph(monkeypatch) as ceph:      # see tests/unit/conftest.py: `fake_cluster`
        cluster = rbdnb.connect(ceph.conf)
"""
from __future__ import annotations

import errno
import itertools
import json
import types
from dataclasses import dataclass, field

OBJECT_ORDER = 22  # 4 MiB objects, as rbd's default

# -- errors: named and numbered as the bindings' ----------------------------------------------


def _errors(module: str, names: dict[str, int]) -> dict[str, type]:
    base = type("Error", (Exception,), {"__module__": module})

    def init(self, message="", errno=None):
        Exception.__init__(self, message)
        self.errno = errno if errno is not None else type(self).default_errno

    base.__init__ = init
    base.default_errno = errno.EIO
    out = {"Error": base}
    for name, code in names.items():
        out[name] = type(name, (base,), {"__module__": module, "default_errno": code})
    return out


RADOS_ERRORS = _errors("rados", {"ObjectNotFound": errno.ENOENT, "ObjectExists": errno.EEXIST,
                                 "TimedOut": errno.ETIMEDOUT, "PermissionError": errno.EPERM})
RBD_ERRORS = _errors("rbd", {"ImageNotFound": errno.ENOENT, "ImageExists": errno.EEXIST,
                             "ImageBusy": errno.EBUSY, "ImageHasSnapshots": errno.ENOTEMPTY,
                             "InvalidArgument": errno.EINVAL, "ObjectNotFound": errno.ENOENT,
                             "ReadOnlyImage": errno.EROFS})


def _rados(name, message=""):
    return RADOS_ERRORS[name](message)


def _rbd(name, message=""):
    return RBD_ERRORS[name](message)


# -- the store ----------------------------------------------------------------------------------
@dataclass
class Snap:
    id: int
    name: str
    size: int
    data: dict[int, bytes]
    protected: bool = False


@dataclass
class Img:
    id: str
    name: str
    size: int
    order: int
    features: int
    data: dict[int, bytes] = field(default_factory=dict)  # object index -> bytes
    snaps: dict[str, Snap] = field(default_factory=dict)
    parent: tuple[str, str, str] | None = None  # (pool, image name, snap name)
    metadata: dict[str, str] = field(default_factory=dict)
    watchers: list[str] = field(default_factory=list)  # client addresses holding a watch

    @property
    def object_size(self) -> int:
        return 1 << self.order


@dataclass
class Pool:
    id: int
    name: str
    pg_num: int = 8
    quota_max_objects: int = 0
    applications: dict = field(default_factory=dict)
    images: dict[str, Img] = field(default_factory=dict)
    omaps: dict[str, dict[str, bytes]] = field(default_factory=dict)


class Store:
    """Everything the fake cluster holds."""

    def __init__(self):
        self.pools: dict[str, Pool] = {}
        self.users: dict[str, dict] = {"client.admin": {
            "caps": {"mon": "allow *", "osd": "allow *"},
            "key": "AQAAAAAAAAAAABAAfakefakefakefakefakefake0=="}}
        self.fsid = "00000000-fake-4000-8000-000000000000"
        self.require_min_compat_client = "luminous"  # v1 clones: snapshots get protected
        self._ids = itertools.count(1)
        self.blocklist: dict[str, float] = {}  # address -> seconds

    def pool(self, name: str) -> Pool:
        if name not in self.pools:
            raise _rados("ObjectNotFound", f"pool {name}")
        return self.pools[name]

    def next_id(self) -> int:
        return next(self._ids)

    def children(self, pool: str, image: str, snap: str) -> list[tuple[str, str]]:
        return [(p.name, i.name) for p in self.pools.values() for i in p.images.values()
                if i.parent == (pool, image, snap)]


# -- rados -------------------------------------------------------------------------------------
class _Obj:
    def __init__(self, key):
        self.key = key


class _OpCtx:
    def __init__(self):
        self.ops = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Ioctx:
    def __init__(self, store: Store, pool: Pool):
        self.store, self.pool, self.namespace = store, pool, ""

    def set_osdmap_full_try(self):
        pass

    def set_namespace(self, ns):
        self.namespace = ns

    def close(self):
        pass

    def application_list(self):
        return list(self.pool.applications)

    def application_enable(self, app, force=False):
        self.pool.applications.setdefault(app, {})

    def list_objects(self):
        for img in self.pool.images.values():
            for index in sorted(img.data):
                yield _Obj(f"rbd_data.{img.id}.{index:016x}")
        for name in self.pool.omaps:
            yield _Obj(name)

    def stat(self, key):
        for img in self.pool.images.values():
            prefix = f"rbd_data.{img.id}."
            if key.startswith(prefix) and int(key[len(prefix):], 16) in img.data:
                return (img.object_size, 0)
        if key in self.pool.omaps:
            return (0, 0)
        raise _rados("ObjectNotFound", key)

    # omap, as journal.py uses it
    def set_omap(self, op, keys, values):
        op.ops.append(("set", dict(zip(keys, values))))

    def remove_omap_keys(self, op, keys):
        op.ops.append(("remove", list(keys)))

    def operate_write_op(self, op, key, *args, **kwargs):
        if any(kind == "remove" for kind, _ in op.ops) and key not in self.pool.omaps:
            raise _rados("ObjectNotFound", key)
        omap = self.pool.omaps.setdefault(key, {})
        for kind, arg in op.ops:
            if kind == "set":
                omap.update({k: (v if isinstance(v, bytes) else str(v).encode())
                             for k, v in arg.items()})
            else:
                for k in arg:
                    omap.pop(k, None)

    def get_omap_vals_by_keys(self, op, keys):
        result = []
        op.ops.append(("get", (list(keys), result)))
        return iter(result), 0

    def execute(self, key, cls, method, data, length=8192):
        raise _rados("ObjectNotFound", key)  # no rbd_children object is kept here

    def get_omap_vals(self, op, start_after, filter_prefix, max_return):
        result = []
        op.ops.append(("get", (None, result)))
        return iter(result), 0

    def operate_read_op(self, op, key, *args, **kwargs):
        # No image header is kept here (rbd_header.ID): listings fall back to opening images.
        if key not in self.pool.omaps:
            raise _rados("ObjectNotFound", key)
        omap = self.pool.omaps[key]
        for kind, (keys, result) in op.ops:
            result.extend((k, omap[k]) for k in (sorted(omap) if keys is None else keys)
                          if k in omap)


class Rados:
    store: Store  # set by FakeCeph

    def __init__(self, conffile=None, rados_id=None, conf=None, **kwargs):
        self.conf = dict(conf or {})

    def connect(self, timeout=0):
        pass

    def shutdown(self):
        pass

    def get_fsid(self):
        return self.store.fsid

    def get_addrs(self):
        return f"127.0.0.1:0/{id(self)}"

    def conf_get(self, option):
        return {"rbd_default_clone_format": "auto"}.get(option, "")

    def open_ioctx(self, name):
        return Ioctx(self.store, self.store.pool(name))

    def list_pools(self):
        return list(self.store.pools)

    def pool_lookup(self, name):
        return self.store.pool(name).id

    def pool_reverse_lookup(self, pool_id):
        return next(p.name for p in self.store.pools.values() if p.id == pool_id)

    def mon_command(self, cmd, inbuf, timeout=0, target=None):
        cmd = json.loads(cmd)
        try:
            out = _MON[cmd["prefix"]](self.store, cmd)
        except KeyError:
            return -errno.EINVAL, b"", f"fake ceph: no command {cmd['prefix']!r}"
        except _MonError as exc:
            return -exc.code, b"", exc.message
        return 0, json.dumps(out).encode() if out is not None else b"", ""


class _MonError(Exception):
    def __init__(self, code, message):
        self.code, self.message = code, message


def _pool_create(store, cmd):
    name = cmd["pool"]
    if name in store.pools:
        return None  # `ceph osd pool create` of an existing pool succeeds
    store.pools[name] = Pool(store.next_id(), name, pg_num=cmd.get("pg_num", 8))
    return None


def _pool_delete(store, cmd):
    if cmd.get("yes_i_really_really_mean_it") is not True:
        raise _MonError(errno.EPERM, "pass --yes-i-really-really-mean-it")
    if cmd["pool"] not in store.pools:
        return None
    del store.pools[cmd["pool"]]
    return None


def _osd_dump(store, cmd):
    return {"epoch": 1, "flags": "", "full_ratio": 0.95, "nearfull_ratio": 0.85,
            "require_min_compat_client": store.require_min_compat_client,
            "osds": [{"osd": 0, "up": 1, "in": 1, "state": ["exists", "up"]}],
            "pools": [{"pool": p.id, "pool_name": p.name, "pg_num": p.pg_num, "size": 1,
                       "flags_names": "hashpspool", "quota_max_objects": p.quota_max_objects,
                       "application_metadata": p.applications} for p in store.pools.values()]}


def _used(store) -> int:
    return sum(len(b) for p in store.pools.values() for i in p.images.values()
               for b in i.data.values())


def _status(store, cmd):
    n = sum(p.pg_num for p in store.pools.values())
    return {"fsid": store.fsid, "health": {"status": "HEALTH_OK", "checks": {}},
            "osdmap": {"num_osds": 1, "num_up_osds": 1, "num_in_osds": 1},
            "mgrmap": {"available": True},
            "pgmap": {"num_pgs": n, "pgs_by_state": [{"state_name": "active+clean",
                                                      "count": n}] if n else [],
                      "bytes_used": _used(store), "bytes_total": 8 << 30}}


def _df(store, cmd):
    return {"stats": {"total_bytes": 8 << 30, "total_used_raw_bytes": _used(store),
                      "total_avail_bytes": (8 << 30) - _used(store),
                      "total_used_raw_ratio": _used(store) / (8 << 30)},
            "pools": [{"name": p.name, "id": p.id,
                       "stats": {"stored": sum(len(b) for i in p.images.values()
                                               for b in i.data.values()),
                                 "objects": sum(len(i.data) for i in p.images.values()),
                                 "percent_used": 0.0, "max_avail": 8 << 30}}
                      for p in store.pools.values()]}


def _auth_get(store, cmd):
    entity = cmd["entity"]
    if entity not in store.users:
        raise _MonError(errno.ENOENT, f"failed to find {entity} in keyring")
    return [{"entity": entity, "key": store.users[entity]["key"],
             "caps": dict(store.users[entity]["caps"])}]


def _auth_get_or_create(store, cmd):
    entity, caps = cmd["entity"], dict(zip(cmd["caps"][::2], cmd["caps"][1::2]))
    if entity in store.users and store.users[entity]["caps"] != caps:
        raise _MonError(errno.EINVAL, f"key for {entity} exists but cap mismatch")
    import base64
    import os
    store.users.setdefault(entity, {"caps": caps, "key": base64.b64encode(
        b"\x01\x00" + os.urandom(26)).decode()})
    return _auth_get(store, cmd)


def _auth_rm(store, cmd):
    store.users.pop(cmd["entity"], None)


def _blocklist(store, cmd):
    if cmd.get("blocklistop") != "add":
        raise _MonError(errno.EINVAL, "fake ceph: only blocklist add")
    store.blocklist[cmd["addr"]] = cmd.get("expire", 3600.0)
    for pool in store.pools.values():
        for img in pool.images.values():
            img.watchers = [w for w in img.watchers if w != cmd["addr"]]


_MON = {"osd pool create": _pool_create, "osd pool delete": _pool_delete,
        "osd dump": _osd_dump, "status": _status, "df": _df,
        "versions": lambda store, cmd: {"mon": {"ceph version 16.2.11 (fake) pacific": 1},
                                        "osd": {"ceph version 16.2.11 (fake) pacific": 1}},
        "osd pool ls": lambda store, cmd: sorted(store.pools),
        "auth get": _auth_get, "auth get-or-create": _auth_get_or_create, "auth rm": _auth_rm,
        "osd blocklist": _blocklist,
        "auth ls": lambda store, cmd: {"auth_dump": [{"entity": e, "caps": dict(u["caps"])}
                                                     for e, u in sorted(store.users.items())]}}


# -- rbd ---------------------------------------------------------------------------------------
FEATURES = {"layering": 1, "exclusive-lock": 4, "object-map": 8, "fast-diff": 16,
            "deep-flatten": 32}
DEFAULT_FEATURES = 1 | 4 | 8 | 16 | 32


class RBD:
    def pool_init(self, ioctx, force=False):
        ioctx.application_enable("rbd")

    def list(self, ioctx):
        return sorted(ioctx.pool.images)

    def list2(self, ioctx):
        return [{"id": img.id, "name": name} for name, img in sorted(ioctx.pool.images.items())]

    def create(self, ioctx, name, size, order=None, old_format=False, features=None, **kw):
        if name in ioctx.pool.images:
            raise _rbd("ImageExists", name)
        ioctx.pool.images[name] = Img(f"{ioctx.store.next_id():x}", name, size,
                                      order or OBJECT_ORDER,
                                      DEFAULT_FEATURES if features is None else features)

    def remove(self, ioctx, name, **kw):
        img = ioctx.pool.images.get(name)
        if img is None:
            raise _rbd("ImageNotFound", name)
        if img.snaps:
            raise _rbd("ImageHasSnapshots", name)
        if img.watchers:
            raise _rbd("ImageBusy", name)
        del ioctx.pool.images[name]

    def rename(self, ioctx, src, dest):
        images = ioctx.pool.images
        if src not in images:
            raise _rbd("ImageNotFound", src)
        if dest in images:
            raise _rbd("ImageExists", dest)
        images[dest] = images.pop(src)
        images[dest].name = dest

    def clone(self, p_ioctx, p_name, p_snapname, c_ioctx, c_name, features=None, order=None,
              **kw):
        parent = p_ioctx.pool.images.get(p_name)
        if parent is None or p_snapname not in parent.snaps:
            raise _rbd("ImageNotFound", f"{p_name}@{p_snapname}")
        snap = parent.snaps[p_snapname]
        if p_ioctx.store.require_min_compat_client in ("jewel", "luminous") and \
                not snap.protected:
            raise _rbd("InvalidArgument", "parent snapshot must be protected")
        if c_name in c_ioctx.pool.images:
            raise _rbd("ImageExists", c_name)
        c_ioctx.pool.images[c_name] = Img(
            f"{c_ioctx.store.next_id():x}", c_name, snap.size, order or parent.order,
            parent.features if features is None else features,
            parent=(p_ioctx.pool.name, p_name, p_snapname))


class Image:
    def __init__(self, ioctx, name, snapshot=None, read_only=False):
        if name not in ioctx.pool.images:
            raise _rbd("ImageNotFound", name)
        self.ioctx, self.img, self.read_only = ioctx, ioctx.pool.images[name], read_only
        self.snap = None
        if snapshot is not None:
            self.set_snap(snapshot)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        pass

    # what it is
    def id(self):
        return self.img.id

    def old_format(self):
        return False

    def features(self):
        return self.img.features

    def op_features(self):
        mask = 2 if self.img.parent else 0
        if any(self.ioctx.store.children(self.ioctx.pool.name, self.img.name, s)
               for s in self.img.snaps):
            mask |= 1
        return mask

    def size(self):
        return self.snap.size if self.snap else self.img.size

    def stat(self):
        return {"size": self.size(), "obj_size": self.img.object_size, "order": self.img.order,
                "num_objs": -(-self.size() // self.img.object_size),
                "block_name_prefix": f"rbd_data.{self.img.id}", "parent_pool": -1,
                "parent_name": ""}

    def watchers_list(self):
        return [{"addr": a, "id": n, "cookie": n} for n, a in enumerate(self.img.watchers)]

    def metadata_get(self, key):
        if key not in self.img.metadata:
            raise _rbd("ObjectNotFound", key)
        return self.img.metadata[key]

    def metadata_set(self, key, value):
        self.img.metadata[key] = value

    # snapshots
    def set_snap(self, name):
        if name is None:
            self.snap = None
            return
        if name not in self.img.snaps:
            raise _rbd("ImageNotFound", name)
        self.snap = self.img.snaps[name]

    def list_snaps(self):
        return [{"id": s.id, "name": s.name, "size": s.size}
                for s in sorted(self.img.snaps.values(), key=lambda s: s.id)]

    def create_snap(self, name):
        if name in self.img.snaps:
            raise _rbd("ImageExists", name)
        self.img.snaps[name] = Snap(self.ioctx.store.next_id(), name, self.img.size,
                                    dict(self._all_data()))

    def _snap(self, name) -> Snap:
        if name not in self.img.snaps:
            raise _rbd("ImageNotFound", name)
        return self.img.snaps[name]

    def remove_snap(self, name):
        snap = self._snap(name)
        if snap.protected:
            raise _rbd("ImageBusy", f"{name} is protected")
        del self.img.snaps[name]

    def protect_snap(self, name):
        snap = self._snap(name)
        if snap.protected:
            raise _rbd("ImageBusy", f"{name} is protected already")
        snap.protected = True

    def unprotect_snap(self, name):
        snap = self._snap(name)
        if self.ioctx.store.children(self.ioctx.pool.name, self.img.name, name):
            raise _rbd("ImageBusy", f"{name} has children")
        if not snap.protected:
            raise _rbd("InvalidArgument", f"{name} is not protected")
        snap.protected = False

    def is_protected_snap(self, name):
        return self._snap(name).protected

    def get_snap_timestamp(self, snap_id):
        import datetime
        return datetime.datetime(2026, 1, 1)

    def rollback_to_snap(self, name):
        snap = self._snap(name)
        self.img.size, self.img.data = snap.size, dict(snap.data)

    def list_children2(self):
        if self.snap is None:
            raise _rbd("InvalidArgument", "no snapshot set")
        return [{"pool": pool, "pool_namespace": "", "image": name, "trash": False}
                for pool, name in self.ioctx.store.children(self.ioctx.pool.name,
                                                            self.img.name, self.snap.name)]

    def get_parent_image_spec(self):
        if self.img.parent is None:
            raise _rbd("ImageNotFound", "no parent")
        pool, image, snap = self.img.parent
        return {"pool_name": pool, "pool_namespace": "", "image_name": image,
                "snap_name": snap}

    # data: whole objects, a child reads its parent's snapshot where it has none of its own
    def _all_data(self) -> dict[int, bytes]:
        data = {}
        if self.img.parent is not None:
            pool, image, snap = self.img.parent
            parent = self.ioctx.store.pool(pool).images[image].snaps[snap]
            data.update(parent.data)
        data.update(self.img.data)
        return data

    def _object(self, index) -> bytes:
        source = self.snap.data if self.snap else self._all_data()
        return source.get(index, b"")

    def read(self, offset, length):
        out = bytearray()
        size, osize = self.size(), self.img.object_size
        end = min(offset + length, size)
        pos = offset
        while pos < end:
            index, within = divmod(pos, osize)
            n = min(osize - within, end - pos)
            chunk = self._object(index)[within:within + n]
            out += chunk + bytes(n - len(chunk))
            pos += n
        return bytes(out)

    def write(self, data, offset):
        if self.read_only or self.snap is not None:
            raise _rbd("ReadOnlyImage", self.img.name)
        if offset + len(data) > self.img.size:
            raise _rbd("InvalidArgument", "write past the end")
        osize = self.img.object_size
        pos = 0
        while pos < len(data):
            index, within = divmod(offset + pos, osize)
            n = min(osize - within, len(data) - pos)
            obj = bytearray(self._object(index))
            obj[len(obj):within + n] = bytes(max(0, within + n - len(obj)))
            obj[within:within + n] = data[pos:pos + n]
            self.img.data[index] = bytes(obj)
            pos += n
        return len(data)

    def resize(self, size, allow_shrink=True):
        if size < self.img.size and not allow_shrink:
            raise _rbd("InvalidArgument", "shrinking needs allow_shrink")
        last = -(-size // self.img.object_size)
        self.img.data = {i: b for i, b in self.img.data.items() if i < last}
        self.img.size = size

    def diff_iterate(self, offset, length, from_snapshot, iterate_cb, include_parent=True,
                     whole_object=False):
        data = self._all_data() if include_parent else self.img.data
        if self.snap is not None:
            data = self.snap.data
        osize = self.img.object_size
        for index in sorted(data):
            start = index * osize
            if start >= offset + length or start + osize <= offset:
                continue
            n = osize if whole_object else len(data[index])
            iterate_cb(start, min(n, self.size() - start), True)

    def flatten(self, on_progress=None):
        if self.img.parent is None:
            raise _rbd("InvalidArgument", "not a clone")
        self.img.data = dict(self._all_data())
        self.img.parent = None
        if on_progress:
            on_progress(1, 1)

    def copy(self, dest_ioctx, dest_name, features=None, order=None, **kw):
        if dest_name in dest_ioctx.pool.images:
            raise _rbd("ImageExists", dest_name)
        dest_ioctx.pool.images[dest_name] = Img(
            f"{dest_ioctx.store.next_id():x}", dest_name, self.size(), self.img.order,
            self.img.features, data=dict(self.snap.data if self.snap else self._all_data()))


# -- plugging it in ----------------------------------------------------------------------------
class FakeCeph:
    """The fake ``rados`` and ``rbd`` modules over one :class:`Store`, and a conf file for
    ``rbdnb.connect`` to name."""

    def __init__(self, tmp_path):
        self.store = Store()
        self.conf = str(tmp_path / "fake-ceph.conf")
        with open(self.conf, "w") as fh:
            fh.write("[global]\n# fake cluster: see tests/fakes/ceph.py\n")
        rados_cls = type("Rados", (Rados,), {"store": self.store})
        self.rados = types.ModuleType("rados")
        self.rados.__dict__.update(RADOS_ERRORS, Rados=rados_cls, Ioctx=Ioctx,
                                   WriteOpCtx=_OpCtx, ReadOpCtx=_OpCtx, LIBRADOS_ALL_NSPACES="\001")
        self.rbd = types.ModuleType("rbd")
        self.rbd.__dict__.update(RBD_ERRORS, RBD=RBD, Image=Image,
                                 RBD_FEATURE_LAYERING=1, RBD_FEATURE_EXCLUSIVE_LOCK=4,
                                 RBD_FEATURE_OBJECT_MAP=8, RBD_FEATURE_FAST_DIFF=16,
                                 RBD_FEATURE_DEEP_FLATTEN=32)

    def install(self, monkeypatch) -> "FakeCeph":
        monkeypatch.setitem(__import__("sys").modules, "rados", self.rados)
        monkeypatch.setitem(__import__("sys").modules, "rbd", self.rbd)
        return self
