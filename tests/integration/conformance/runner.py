"""The conformance suite's machinery: scenarios of command lines from Ceph's and libvirt's own
docs and QA scripts (``*.txt`` here), each run twice on a sandbox of its own -- first with the
real CLIs, then as rbdnb's magics -- and the effects compared after every line.

A scenario file::

    == name                              a scenario: pools, users, files start empty
    @ ceph/ceph:doc/rbd/rbd-snapshot.rst the source of the lines that follow
    + pool rbd swimmingpool              set-up, on both sides, not counted: pools (rbd init),
    + bare-pool data                     pools without it, random files (+ file NAME SIZE),
    + text NAME CONTENT                  a file's text, data in an image (+ fill POOL/IMG SIZE),
    + cli COMMAND                        or any command line run with the real tools
    $ rbd snap create rbd/foo@snapname   a line of the corpus: counted

Placeholders: ``{dir}`` (the side's working directory), ``{conf}``, ``{keyring}`` (the admin
keyring), ``{uri}``; and, read on each side when the line runs, ``{trash:POOL/NAME}`` (the
trash id of an image), ``{imageid:POOL/IMG}``, ``{locker:POOL/IMG}`` (the first lock's
holder), ``{snapid:POOL/IMG@SNAP}``, ``{secret:USAGE}`` (a libvirt secret's UUID).

After every line the state is read with the bindings (pools and their settings; images --
size, features, layout, parent, snapshots, metadata but rbdnb's own, locks, data checksums
--; trash, namespaces, groups, config overrides; users and caps; the mon's config; files in
the side's directory, keys masked; libvirt's secrets, pools, volumes and domains) and the
two sides compared. A line that only reads is also compared by what it shows: what the real
tool prints with ``--format json`` must be in what the magic returned.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
KEY = re.compile(r"AQ[A-Za-z0-9+/]{36}==")
BASE_POOLS = {"device_health_metrics", ".mgr"}
TOOLS = ("rbd", "ceph", "virsh", "qemu-img")
OURS = "rbdnb-conformance"  # the prefix of every libvirt object the corpus makes
SUMMARY: list[str] = []  # the report, for the end of the session's output


@dataclass
class Line:
    tool: str
    text: str          # as the scenario gives it (placeholders not yet filled)
    source: str
    scenario: str
    where: str         # file:line of the corpus


@dataclass
class Scenario:
    name: str
    where: str
    steps: list = field(default_factory=list)   # ("setup", kind, args) | ("line", Line)

    @property
    def lines(self) -> list[Line]:
        return [s[1] for s in self.steps if s[0] == "line"]


def load() -> list[Scenario]:
    scenarios: list[Scenario] = []
    for path in sorted(HERE.glob("*.txt")):
        source = ""
        for number, raw in enumerate(path.read_text().splitlines(), 1):
            text = raw.strip()
            where = f"{path.name}:{number}"
            if not text or text.startswith("#"):
                continue
            mark, _, rest = text.partition(" ")
            rest = rest.strip()
            if mark == "==":
                scenarios.append(Scenario(rest, where))
            elif mark == "@":
                source = rest
            elif mark == "+":
                kind, _, args = rest.partition(" ")
                scenarios[-1].steps.append(("setup", kind, args.strip()))
            elif mark == "$":
                tool = rest.split()[0]
                assert tool in TOOLS, f"{where}: {tool} is not a tool of the suite"
                scenarios[-1].steps.append(
                    ("line", Line(tool, rest[len(tool):].strip(), source, scenarios[-1].name,
                                  where)))
            else:
                raise AssertionError(f"{where}: cannot read {raw!r}")
    return scenarios


# -- the world a scenario runs in -----------------------------------------------------------------
class World:
    """One sandbox, read with the bindings and acted on with the real CLIs."""

    def __init__(self, box, uri: str):
        import libvirt
        import rados
        self.box, self.uri = box, uri
        self.env = {**os.environ, **box.env(), "LIBVIRT_DEFAULT_URI": uri}
        # A line may leave a pool inactive (size 3 on one OSD): reading it times out.
        self.rados = rados.Rados(conffile=str(box.conf_path),
                                 conf={"rados_osd_op_timeout": "5",
                                       "rados_mon_op_timeout": "30"})
        self.rados.connect(timeout=30)
        self.virt = libvirt.open(uri)
        self.keyring = str(box.conf_path.parent / "ceph.client.admin.keyring")
        self.base_users = set(self.users())
        self.base_config = self.config()
        self.base_rules = set(self.mon("osd crush rule ls"))
        self.base_profiles = set(self.mon("osd erasure-code-profile ls"))
        self.ignore_data: set[str] = set()  # POOL/[NS/]IMAGE written by a benchmark

    def close(self):
        self.rados.shutdown()
        self.virt.close()

    def mon(self, prefix: str, **args):
        ret, out, err = self.rados.mon_command(json.dumps({"prefix": prefix, "format": "json",
                                                           **args}), b"", timeout=60)
        if ret != 0:
            raise AssertionError(f"{prefix}: {err}")
        return json.loads(out) if out.strip() else None

    def users(self) -> dict:
        return {e["entity"]: e.get("caps", {}) for e in self.mon("auth ls")["auth_dump"]}

    def config(self) -> list:
        # (what a tool stamps with the time of the change is not compared)
        return sorted((e["section"], e["name"], e["value"]) for e in self.mon("config dump")
                      if not e["name"].endswith("_timestamp"))

    def cli(self, line: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        # The docs' lines as a shell runs them; `sudo` is a no-op (the tests run as root).
        script = f'sudo() {{ "$@"; }}; {line}'
        # No terminal, and an editor that leaves the file as it is (virsh edit).
        return subprocess.run(["bash", "-c", script], cwd=cwd, env={**self.env, "EDITOR": "true",
                              "VISUAL": "true"}, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    # -- set-up and clean-up ----------------------------------------------------------------
    def reset(self) -> None:
        """Nothing of a scenario left: its pools, users, config, libvirt objects."""
        self.ignore_data.clear()
        for pool in set(self.mon("osd pool ls")) - BASE_POOLS:
            self.mon("osd pool delete", pool=pool, pool2=pool,
                     yes_i_really_really_mean_it=True)
        for user in set(self.users()) - self.base_users:
            self.mon("auth rm", entity=user)
        for section, name, _ in set(self.config()) - set(self.base_config):
            self.mon("config rm", who=section, name=name)
        self.mon("osd blocklist clear")  # what breaking a lock added
        for rule in set(self.mon("osd crush rule ls")) - self.base_rules:
            self.mon("osd crush rule rm", name=rule)  # an erasure-coded pool made one
        for profile in set(self.mon("osd erasure-code-profile ls")) - self.base_profiles:
            self.mon("osd erasure-code-profile rm", name=profile)
        # libvirt is the machine's: only what the corpus names (rbdnb-conformance...) is ours.
        for dom in self._ours(self.virt.listAllDomains()):
            with contextlib.suppress(Exception):
                dom.destroy()
            dom.undefine()
        for pool in self._ours(self.virt.listAllStoragePools()):
            with contextlib.suppress(Exception):
                pool.destroy()
            pool.undefine()
        for secret in self._ours(self.virt.listAllSecrets()):
            secret.undefine()

    @staticmethod
    def _ours(objects):
        name = lambda o: o.usageID() if hasattr(o, "usageID") else o.name()  # noqa: E731
        return [o for o in objects if (name(o) or "").startswith(OURS)]

    def setup(self, kind: str, args: str, cwd: Path) -> None:
        import rbd
        if kind in ("pool", "bare-pool"):
            for pool in args.split():
                self.mon("osd pool create", pool=pool, pg_num=8, pgp_num=8)
                if kind == "pool":
                    import time
                    for attempt in range(50):  # its PGs may not be there yet
                        try:
                            with self.ioctx(pool) as ioctx:
                                rbd.RBD().pool_init(ioctx, True)
                            break
                        except rbd.Error:
                            if attempt == 49:
                                raise
                            time.sleep(0.2)
        elif kind == "file":
            name, size = args.split()
            (cwd / name).write_bytes(random.Random(name).randbytes(_size(size)))
        elif kind == "text":
            name, _, content = args.partition(" ")
            (cwd / name).write_text(self.fill(content, cwd) + "\n")
        elif kind == "fill":
            spec, size = args.split()
            pool, _, image = spec.partition("/")
            with self.ioctx(pool) as ioctx, rbd.Image(ioctx, image) as img:
                img.write(random.Random(spec + size).randbytes(_size(size)), 0)
        elif kind == "ignore-data":  # what a benchmark writes is the benchmark's own
            self.ignore_data.add(args)
        elif kind == "cli":
            done = self.cli(self.fill(args, cwd), cwd)
            assert done.returncode == 0, f"set-up {args}: {done.stderr.strip()[-300:]}"
        else:
            raise AssertionError(f"unknown set-up {kind}")

    @contextlib.contextmanager
    def ioctx(self, pool: str, namespace: str = ""):
        import rados
        import time
        deadline = time.monotonic() + 30
        while True:  # a pool made a moment ago may not be in this client's map yet
            try:
                ioctx = self.rados.open_ioctx(pool)
                break
            except rados.ObjectNotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            if namespace:
                ioctx.set_namespace(namespace)
            yield ioctx
        finally:
            ioctx.close()

    # -- placeholders -------------------------------------------------------------------------
    def fill(self, text: str, cwd: Path) -> str:
        fixed = {"dir": str(cwd), "conf": str(self.box.conf_path), "keyring": self.keyring,
                 "uri": self.uri}

        def one(match):
            name, _, arg = match.group(1).partition(":")
            if not arg:
                return fixed[name]
            return str(getattr(self, f"_find_{name}")(arg))
        return re.sub(r"\{([a-z]+(?::[^{}]+)?)\}", one, text)

    def _split(self, spec: str):
        parts = spec.split("/")
        pool, image = parts[0], parts[-1]
        return pool, "/".join(parts[1:-1]), image

    def _find_trash(self, spec: str) -> str:
        import rbd
        pool, ns, name = self._split(spec)
        with self.ioctx(pool, ns) as ioctx:
            found = [t["id"] for t in rbd.RBD().trash_list(ioctx) if t["name"] == name]
        return found[0] if found else "no-such-trash-entry"

    def _find_imageid(self, spec: str) -> str:
        import rbd
        pool, ns, name = self._split(spec)
        with self.ioctx(pool, ns) as ioctx, rbd.Image(ioctx, name, read_only=True) as img:
            return img.id()

    def _find_locker(self, spec: str) -> str:
        """The client holding a lock on POOL/IMG (``POOL/IMG:LOCK-ID``: that lock)."""
        import rbd
        spec, _, lock = spec.partition(":")
        pool, ns, name = self._split(spec)
        with self.ioctx(pool, ns) as ioctx, rbd.Image(ioctx, name, read_only=True) as img:
            lockers = img.list_lockers()
        found = [c for c, cookie, _ in (lockers or {}).get("lockers", [])
                 if not lock or cookie == lock]
        return found[0] if found else "client.0"

    def _find_snapid(self, spec: str) -> int:
        import rbd
        image, _, snap = spec.partition("@")
        pool, ns, name = self._split(image)
        with self.ioctx(pool, ns) as ioctx, rbd.Image(ioctx, name, read_only=True) as img:
            return next(s["id"] for s in img.list_snaps() if s["name"] == snap)

    def _find_secret(self, usage: str) -> str:
        import libvirt
        return self.virt.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_CEPH,
                                             usage).UUIDString()

    # -- the state ------------------------------------------------------------------------------
    def state(self, cwd: Path) -> dict:
        pools = {}
        osd = self.mon("osd dump")  # one call: pools, flags, ratios, profiles, blocklist
        details = {p["pool_name"]: p for p in osd["pools"]}
        for pool in sorted(set(details) - BASE_POOLS):
            d = details[pool]
            if d.get("min_size", 1) > 1:  # more copies than this one OSD can hold: inactive
                pools[pool] = {"size": d.get("size"), "min_size": d.get("min_size"),
                               "pg_num": d.get("pg_num"), "inactive": True}
                continue
            pools[pool] = {
                "size": d.get("size"), "min_size": d.get("min_size"),
                "pg_num": d.get("pg_num_target", d.get("pg_num")),  # a merge takes a while
                "applications": d.get("application_metadata"),
                "snaps": sorted(s["name"] for s in d.get("pool_snaps", [])),
                "quota": (d.get("quota_max_objects"), d.get("quota_max_bytes")),
                "options": d.get("options"), "flags": d.get("flags_names"),
                **self._rbd_pool(pool)}
        cluster = {"flags": osd.get("flags"), "ratios": (osd.get("full_ratio"),
                   osd.get("nearfull_ratio"), osd.get("backfillfull_ratio")),
                   "ec_profiles": sorted(osd.get("erasure_code_profiles", {})),
                   "blocklist": len(osd.get("blocklist", {}))}
        return {"pools": pools, "users": self.users(), "cluster": cluster,
                "config": sorted(set(self.config()) - set(self.base_config)),
                "files": _files(cwd), "libvirt": self._libvirt()}

    def _rbd_pool(self, pool: str) -> dict:
        import rbd
        out = {}
        with self.ioctx(pool) as ioctx:
            try:
                namespaces = [""] + sorted(rbd.RBD().namespace_list(ioctx))
            except rbd.Error:
                namespaces = [""]
            out["namespaces"] = namespaces[1:]
            with contextlib.suppress(rbd.Error):
                out["config"] = sorted((c["name"], c["value"]) for c in
                                       rbd.RBD().config_list(ioctx) if c["source"] == 1)
            with contextlib.suppress(rbd.Error):
                out["mirror_mode"] = rbd.RBD().mirror_mode_get(ioctx)
        for ns in namespaces:
            with self.ioctx(pool, ns) as ioctx:
                try:
                    names = sorted(rbd.RBD().list(ioctx))
                    trash = self._trash(ioctx, pool, ns)
                    groups = {g: _group(ioctx, g) for g in sorted(rbd.RBD().group_list(ioctx))}
                except rbd.Error as exc:
                    out[f"ns {ns}"] = f"unreadable: {type(exc).__name__}"
                    continue
                images = {n: _image(ioctx, n, self.rados) for n in names}
                for n, facts_ in images.items():
                    if "/".join(filter(None, (pool, ns, n))) in self.ignore_data:
                        facts_["data"] = "(a benchmark's, not compared)"
                out[f"ns {ns}"] = {"images": images,
                                   "trash": trash, "groups": groups}
        return out

    def _trash(self, ioctx, pool: str, ns: str) -> list:
        import rbd
        try:
            return sorted((t["name"], t["source"]) for t in rbd.RBD().trash_list(ioctx))
        except IndexError:  # Pacific's binding has no name for the source "migration"
            done = subprocess.run(["rbd", "trash", "ls", "--all", "--long", "--format", "json",
                                   "-p", pool, "--namespace", ns], env=self.env,
                                  capture_output=True, text=True, timeout=60, check=True)
            return sorted((t["name"], t["source"]) for t in json.loads(done.stdout))

    def _libvirt(self) -> dict:
        secrets = sorted((s.usageID(), s.UUIDString())
                         for s in self._ours(self.virt.listAllSecrets()))
        pools = {}
        for p in self._ours(self.virt.listAllStoragePools()):
            vols = []
            if p.isActive():
                with contextlib.suppress(Exception):
                    p.refresh(0)
                    vols = sorted(p.listVolumes())
            sizes = {}
            for v in vols:
                with contextlib.suppress(Exception):
                    sizes[v] = p.storageVolLookupByName(v).info()[1]
            pools[p.name()] = {"active": bool(p.isActive()), "autostart": bool(p.autostart()),
                               "volumes": sizes, "xml": _masked(p.XMLDesc(1))}
        domains = {d.name(): (bool(d.isActive()), _masked(d.XMLDesc(2)))
                   for d in self._ours(self.virt.listAllDomains())}
        return {"secrets": [u for u, _ in secrets], "pools": pools, "domains": domains}


def _masked(xml: str) -> str:
    """libvirt XML without what each side gets of its own (UUIDs, the capacity it reads)."""
    xml = re.sub(r"<uuid>[^<]*</uuid>", "<uuid/>", xml)
    xml = re.sub(r"<(allocation|available|capacity)[^>]*>[^<]*</\1>", "", xml)
    return re.sub(r"\s+", " ", xml).strip()


def _group(ioctx, name: str) -> dict:
    import rbd
    group = rbd.Group(ioctx, name)
    try:
        return {"images": sorted(i["name"] for i in group.list_images()),
                "snaps": sorted(s["name"] for s in group.list_snaps())}
    except rbd.Error as exc:
        return {"unreadable": type(exc).__name__}


def _image(ioctx, name: str, cluster) -> dict:
    import rbd
    try:
        with rbd.Image(ioctx, name, read_only=True) as img:
            size = img.size()
            stat = img.stat()
            try:
                parent = img.get_parent_image_spec()
                snap = parent["snap_name"]
                if re.fullmatch(r"[0-9a-f-]{36}", snap):
                    snap = "(a snapshot in the trash)"
                parent = (parent["pool_name"], parent["image_name"], snap)
            except rbd.ImageNotFound:
                parent = None
            snaps = []
            for s in img.list_snaps():
                kind = s.get("namespace", 0)
                protected = img.is_protected_snap(s["name"]) if kind == 0 else None
                # A snapshot in the trash (or mirroring's) is named by a UUID of its own.
                snaps.append((s["name"] if kind == 0 else f"(namespace {kind})", s["size"],
                              protected, kind))
            meta = sorted((k, v) for k, v in img.metadata_list() if not k.startswith("rbdnb."))
            lockers = img.list_lockers()
            locks = sorted((lk[1],) for lk in lockers["lockers"]) if lockers else []
            lock_kind = (lockers["exclusive"], lockers["tag"]) if lockers else None
            config = sorted((c["name"], c["value"]) for c in img.config_list()
                            if c["source"] == 2)
            try:
                limit = img.get_snap_limit()
            except rbd.Error:
                limit = None
            return {"size": size, "order": stat["order"], "features": img.features(),
                    "snap_limit": limit,
                    "stripe": (img.stripe_unit(), img.stripe_count()),
                    "data_pool": None if img.data_pool_id() == ioctx.get_pool_id() else
                    cluster.pool_reverse_lookup(img.data_pool_id()), "parent": parent,
                    "snaps": sorted(snaps), "meta": meta, "locks": locks,
                    "lock_kind": lock_kind, "config": config, "data": _checksum(img, size)}
    except rbd.Error as exc:
        return {"unreadable": type(exc).__name__}


def _checksum(img, size: int) -> str | None:
    """sha256 over the image's bytes in 64 KiB blocks that are not all zeros, with their
    offsets: the same for two images with the same bytes, however their objects were written
    (a zero-size image has none; librbd asserts on diff_iterate of one)."""
    if size == 0:
        return None
    block = 1 << 16
    extents = []
    img.diff_iterate(0, size, None, lambda off, length, exists: extents.append(
        (off, length)) if exists else None, include_parent=True, whole_object=False)
    blocks = sorted({at for off, length in extents
                     for at in range(off - off % block, off + length, block)})
    digest = hashlib.sha256()
    index = 0
    while index < len(blocks):  # consecutive blocks read together, up to 4 MiB at a time
        start = end = blocks[index]
        while index < len(blocks) and blocks[index] == end and end - start < (4 << 20):
            end += block
            index += 1
        data = img.read(start, min(end, size) - start)
        for off in range(0, len(data), block):
            piece = data[off:off + block]
            if piece.count(0) != len(piece):
                digest.update(f"{start + off}:".encode() + piece)
    return digest.hexdigest()[:16]


def _files(cwd: Path) -> dict:
    """Every file of the side's directory: its size and a checksum of its data (sparse-aware;
    cephx keys masked, as they differ between the sides)."""
    out = {}
    for path in sorted(cwd.rglob("*")):
        if not path.is_file():
            continue
        size = path.stat().st_size
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            data = fh.read(1 << 20) if size < (1 << 20) else None
            if data is not None:
                digest.update(KEY.sub("KEY", data.decode("latin-1")).encode("latin-1"))
            else:
                _sparse_hash(fh, size, digest)
        out[str(path.relative_to(cwd))] = (size, digest.hexdigest()[:16])
    return out


def _sparse_hash(fh, size: int, digest) -> None:
    """The file's bytes, whatever its holes: 64 KiB blocks that are not all zeros, with their
    offsets (two files with the same bytes and other holes hash the same)."""
    block = 1 << 16
    fd = fh.fileno()
    offset, seen = 0, set()
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        for at in range(start - start % block, end, block):
            if at in seen:
                continue
            seen.add(at)
            data = os.pread(fd, block, at)
            if data.count(0) != len(data):
                digest.update(f"{at}:".encode() + data)
        offset = end


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


# -- what a line showed --------------------------------------------------------------------------
# (Not ids: each side has its own.)
IDENTITY = {"name", "image", "snapshot", "poolname", "pool_name", "entity", "size",
            "status", "virtual-size", "format", "target", "source", "uuid", "usage"}


def facts(value) -> set[str]:
    """The identifying scalars of what a tool printed (its JSON): names, sizes, ids."""
    out = set()

    def walk(v, key=None):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif key in IDENTITY and usable(v):
            out.add(str(v))
    walk(value)
    return out


def usable(v) -> bool:
    """A fact both sides can have: not a time or a UUID (each side has its own), not "0" or
    "8" (found anywhere)."""
    text = str(v)
    return v not in (None, "") and len(text) >= 3 and not re.search(
        r"\d\d:\d\d:\d\d|[0-9a-f]{8}-[0-9a-f]{4}-", text)


def shown(value) -> str:
    """Everything the magic returned, as one text (to look the facts up in)."""
    import pandas as pd
    if value is None:
        return ""
    if hasattr(value, "plan") and hasattr(value, "message"):  # a Result: not the command line
        return value.message + shown(value.value)
    if isinstance(value, pd.DataFrame):
        return json.dumps(value.astype(str).to_dict("records"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        with contextlib.suppress(Exception):
            return json.dumps(dataclasses.asdict(value), default=str)
    if hasattr(value, "value") and hasattr(value, "text"):  # a tool's Output
        return value.text + json.dumps(value.value, default=str)
    with contextlib.suppress(Exception):
        return json.dumps(value, default=str)
    return str(value)


def json_variant(tool: str, line: str) -> str | None:
    """The same read with the tool's JSON output, to learn its facts from."""
    words = shlex.split(line)
    if any(w.startswith(("--format", "--output", "-f")) for w in words) or \
            any(w in ("|", ">", "<", "-o", "--out-file") for w in words):  # it writes a file
        return None
    if tool in ("rbd", "ceph"):
        return f"{tool} {line} --format json"
    if tool == "qemu-img" and words[:1] == ["info"]:
        return f"qemu-img info --output=json {line[len('info'):].strip()}"
    return None
