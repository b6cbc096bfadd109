"""One long-lived librados connection, with timeouts, and the cluster's preflight.

``connect()`` with no arguments uses what a tool registered with
:func:`add_default_conf_finder` finds (the running sandbox, once :mod:`rbdnb.sandbox` is
imported, as ``import rbdnb`` does), else ``$CEPH_CONF``, else ``/etc/ceph/ceph.conf``.
Every connection sets ``client_mount_timeout``,
``rados_mon_op_timeout`` and ``rados_osd_op_timeout``, so no call blocks
forever: a full or unreachable cluster gives :class:`~rbdnb.errors.Timeout` or
:class:`~rbdnb.errors.ClusterFull`, not a frozen kernel.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from dataclasses import dataclass, field

from .health import Health, read_health
from .translate import translated
from ..errors import (ClusterFull, InvalidArgument, PoolNotFound, RbdnbError, Timeout)
from ..base.specs import check_name, parse_client
from ..base.units import check_seconds

DEFAULT_CONF = "/etc/ceph/ceph.conf"
DEFAULT_TIMEOUT = 30
MAX_TIMEOUT = 24 * 3600


def check_timeout(timeout: object, what: str = "timeout") -> float:
    """Seconds a call may wait: a finite number from 0 (exclusive) to a day."""
    return check_seconds(timeout, what, MAX_TIMEOUT)


# Where ``connect()`` told no conf looks before ``$CEPH_CONF``: functions answering
# (conf, keyring) or None. Tools built on the core add theirs (the sandbox adds "the running
# default sandbox"); the core knows none of them.
_DEFAULT_CONF_FINDERS: list = []


def add_default_conf_finder(finder) -> None:
    """Have ``connect()`` with no conf ask ``finder()`` first: it returns (conf, keyring)
    or None. Adding the same finder twice adds it once."""
    if finder not in _DEFAULT_CONF_FINDERS:
        _DEFAULT_CONF_FINDERS.append(finder)


def resolve_conf(conffile: str | None, keyring: str | None) -> tuple[str, str | None]:
    """The conf (and keyring, if known) that ``connect`` uses when told less."""
    if conffile:
        return os.path.abspath(os.path.expanduser(conffile)), keyring
    for finder in _DEFAULT_CONF_FINDERS:
        found = finder()
        if found is not None:
            return found[0], keyring or found[1]
    return os.environ.get("CEPH_CONF") or DEFAULT_CONF, keyring


class Cluster:
    """A connection to a Ceph cluster as one cephx client.

    Use as a context manager, or call :meth:`close`. Thread-safe for the
    operations rbdnb runs (librados and librbd are).
    """

    def __init__(self, conffile: str | None = None, client: str = "admin",
                 keyring: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        check_timeout(timeout)
        self.client = parse_client(client)
        self._keyring_given = bool(keyring)
        self.conffile, self.keyring = resolve_conf(conffile, keyring)
        if not os.path.isfile(self.conffile):
            raise InvalidArgument(f"Ceph conf {self.conffile} does not exist: pass conffile=, "
                                  f"set CEPH_CONF, or start the sandbox (rbdnb sandbox up)")
        if self.keyring and not os.path.isfile(self.keyring):
            raise InvalidArgument(f"keyring {self.keyring} does not exist")
        self.timeout = timeout
        self._rados = None
        self._lock = threading.Lock()

    # -- connection --------------------------------------------------------------------
    def connect(self) -> "Cluster":
        import rados
        t = str(int(max(1, self.timeout)))
        conf = {"client_mount_timeout": t, "rados_mon_op_timeout": t, "rados_osd_op_timeout": t}
        if self.keyring:
            conf["keyring"] = self.keyring
        handle = rados.Rados(conffile=self.conffile, rados_id=self.client, conf=conf)
        try:
            handle.connect(timeout=int(max(1, self.timeout)))
        except rados.Error as exc:
            handle.shutdown()
            code = abs(getattr(exc, "errno", 0) or 0)
            if code in (1, 13):
                from ..errors import PermissionDenied
                raise PermissionDenied(f"client.{self.client} was refused by the cluster of "
                                       f"{self.conffile}: check its keyring") from None
            raise Timeout(f"cannot reach the cluster of {self.conffile} as client.{self.client} "
                          f"within {self.timeout:g} s") from None
        self._rados = handle
        return self

    def close(self) -> None:
        if self._rados is not None:
            self._rados.shutdown()
            self._rados = None

    def reconnect(self) -> "Cluster":
        self.close()
        return self.connect()

    def __enter__(self) -> "Cluster":
        if self._rados is None:
            self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self._rados is not None else "closed"
        return f"Cluster({self.conffile!r}, client.{self.client}, {state})"

    @property
    def rados(self):
        if self._rados is None:
            raise RbdnbError("the cluster connection is closed: call connect() first")
        return self._rados

    @property
    def fsid(self) -> str:
        return self.rados.get_fsid()

    # -- helpers the operations share -----------------------------------------------------
    def cli_args(self) -> list[str]:
        """Connection options for the equivalent ``ceph``/``rbd`` command lines."""
        args = []
        if self.conffile != DEFAULT_CONF:
            args += ["--conf", self.conffile]
        if self.client != "admin":
            args += ["--id", self.client]
        if self._keyring_given:  # else the conf names it (as the sandbox's does)
            args += ["--keyring", self.keyring]
        return args

    @contextlib.contextmanager
    def ioctx(self, pool: str, namespace: str = ""):
        """An I/O context on ``pool`` (and ``namespace``), closed afterwards."""
        check_name(pool, "pool")
        with translated(f"pool {pool}", not_found=PoolNotFound):
            ioctx = self.rados.open_ioctx(pool)
        try:
            # A full pool pauses ordinary writes until space is freed (or the op times
            # out); "full try" makes them fail at once with ENOSPC, and lets deletes
            # through. Either way nothing is written past the full ratio.
            ioctx.set_osdmap_full_try()
            if namespace:
                ioctx.set_namespace(namespace)
            # Errors the body leaves untranslated are at least placed in their pool.
            with translated(f"operation in pool {pool}"):
                yield ioctx
        finally:
            ioctx.close()

    def mon_command(self, cmd: dict, what: str, *, inbuf: bytes = b"", **kinds):
        """Run a monitor command (JSON in and out); errors become rbdnb errors about ``what``."""
        ret, out, errs = self.rados.mon_command(json.dumps({**cmd, "format": "json"}), inbuf,
                                                timeout=int(max(1, self.timeout)))
        if ret != 0:
            from .translate import translate
            exc = OSError(-ret, errs)
            exc.errno = -ret
            raise translate(exc, what, **kinds) from None
        return json.loads(out) if out.strip() else None

    def osd_dump(self) -> dict:
        return self.mon_command({"prefix": "osd dump"}, "osd map")

    def full_pools(self, dump: dict | None = None) -> dict[str, list[str]]:
        """Pools that refuse writes, with why (``full``, ``full_quota``); ``"*"`` when the
        whole cluster is flagged full."""
        dump = dump or self.osd_dump()
        out = {}
        if "full" in dump.get("flags", "").split(","):
            out["*"] = ["full"]
        for p in dump.get("pools", []):
            why = sorted(set(p.get("flags_names", "").split(",")) & {"full", "full_quota"})
            if why:
                out[p["pool_name"]] = why
        return out

    def check_writable(self, pool: str | None = None) -> None:
        """Raise :class:`ClusterFull` at once if the cluster or ``pool`` cannot take writes.

        A full pool pauses writes rather than failing them; checking first turns a
        timeout (or librbd's misleading errno under "full try") into a clear error that
        names the pool and how to free space.
        """
        full = self.full_pools()
        if "*" in full:
            raise ClusterFull("the cluster is full (osdmap flag 'full'): nothing can be "
                              "written until space is freed: {fix}", fix=("free_space", None))
        for name, why in full.items():
            if pool is None or name == pool:
                raise full_pool_error(name, why)

    @contextlib.contextmanager
    def writing(self, pool: str | None, what: str):
        """Around a write to ``pool``: refuse at once if it is full, and if the body fails
        because the pool filled up meanwhile, say so (librbd reports a full pool as
        EROFS, EINVAL, EBUSY or ENOSPC depending on the step)."""
        self.check_writable(pool)
        try:
            yield
        except (ClusterFull, Timeout):
            raise
        except RbdnbError:
            try:
                self.check_writable(pool)
            except ClusterFull as full:
                raise ClusterFull(f"{what}: {full.template}") from None
            except RbdnbError:
                pass
            raise

    def health(self) -> "Preflight":
        return preflight(self)


def full_pool_error(pool: str, why: list[str]) -> ClusterFull:
    """The ClusterFull error for pool ``pool`` flagged ``why`` (full, full_quota), naming the way
    out."""
    if why == ["full_quota"]:
        return ClusterFull(f"pool {pool} is at its quota (full_quota): writes are refused: "
                           f"raise the quota (ceph osd pool set-quota {pool} ...) or {{fix}}",
                           fix=("free_space", pool))
    return ClusterFull(f"pool {pool} is full ({', '.join(why)}): writes are refused until "
                       f"space is freed: {{fix}}", fix=("free_space", pool))


def connect(conffile: str | None = None, client: str = "admin", keyring: str | None = None,
            timeout: float = DEFAULT_TIMEOUT) -> Cluster:
    """Open one librados connection (see :class:`Cluster`); use it as a context manager."""
    return Cluster(conffile, client=client, keyring=keyring, timeout=timeout).connect()


# -- preflight --------------------------------------------------------------------------------
_COMPAT_ORDER = ["argonaut", "bobtail", "cuttlefish", "dumpling", "emperor", "firefly",
                 "giant", "hammer", "infernalis", "jewel", "kraken", "luminous", "mimic",
                 "nautilus", "octopus", "pacific", "quincy", "reef", "squid", "tentacle"]


@dataclass
class Preflight:
    """What rbdnb needs to know before it acts: the cluster's :class:`Health` (the one model
    of it), daemon and client versions, and the clone format the cluster allows."""

    health: Health
    client_version: str
    cluster_versions: dict[str, list[str]]
    require_min_compat_client: str
    clone_format: int
    notes: list[str] = field(default_factory=list)

    # The health, by the names a runbook reads.
    fsid = property(lambda self: self.health.fsid)
    status = property(lambda self: self.health.status)
    checks = property(lambda self: self.health.checks)
    osds_total = property(lambda self: self.health.osds_total)
    osds_up = property(lambda self: self.health.osds_up)
    full_osds = property(lambda self: self.health.full_osds)
    nearfull_osds = property(lambda self: self.health.nearfull_osds)
    used_ratio = property(lambda self: self.health.used_ratio)
    total_bytes = property(lambda self: self.health.total_bytes)
    avail_bytes = property(lambda self: max(0, self.health.total_bytes - self.health.used_bytes))

    @property
    def ok(self) -> bool:
        """HEALTH_OK and no OSD full or nearfull."""
        return self.status == "HEALTH_OK" and not self.full_osds and not self.nearfull_osds

    def to_frame(self):
        import pandas as pd
        rows = [("fsid", self.fsid), ("health", self.status),
                ("checks", "; ".join(f"{k}: {v}" for k, v in self.checks.items()) or "none"),
                ("OSDs up/total", f"{self.osds_up}/{self.osds_total}"),
                ("full OSDs", ", ".join(map(str, self.full_osds)) or "none"),
                ("nearfull OSDs", ", ".join(map(str, self.nearfull_osds)) or "none"),
                ("raw used", f"{self.used_ratio:.1%}"),
                ("client (librados)", self.client_version),
                ("daemons", "; ".join(f"{kind}: {', '.join(v)}"
                                      for kind, v in self.cluster_versions.items())),
                ("require_min_compat_client", self.require_min_compat_client),
                ("clone format", f"v{self.clone_format}" + (
                    " (no snapshot protection needed)" if self.clone_format == 2 else
                    " (snapshots must be protected before cloning)"))]
        return pd.DataFrame(rows, columns=["check", "value"]).set_index("check")

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()


def allowed_clone_format(cluster: Cluster, dump: dict | None = None) -> int:
    """2 if clones of unprotected snapshots (v2) are allowed, else 1.

    ``rbd_default_clone_format`` decides when set to 1 or 2; with ``auto`` (the
    default) v2 needs ``require_min_compat_client`` mimic or later.
    """
    try:
        configured = cluster.rados.conf_get("rbd_default_clone_format")
    except Exception:
        configured = "auto"
    if configured in ("1", "2"):
        return int(configured)
    compat = (dump or cluster.osd_dump()).get("require_min_compat_client", "jewel")
    rank = _COMPAT_ORDER.index(compat) if compat in _COMPAT_ORDER else 0
    return 2 if rank >= _COMPAT_ORDER.index("mimic") else 1


@functools.cache
def _client_version() -> str:
    """This host's Ceph client release, as ``ceph --version`` prints it (asked once)."""
    from ..base import proc as _proc
    try:
        out = _proc.run(["ceph", "--version"], timeout=10).stdout.decode()
    except RbdnbError:
        return "unknown"
    return out.split(" (")[0].replace("ceph version ", "").strip()


def preflight(cluster: Cluster) -> Preflight:
    """Health, fullness, versions and the clone format the cluster allows."""
    health = read_health(cluster)
    dump = cluster.osd_dump()
    try:
        versions = cluster.mon_command({"prefix": "versions"}, "daemon versions")
    except RbdnbError:
        versions = {}
    versions = {kind: [f"{v.split(' (')[0].replace('ceph version ', '')} ×{n}"
                       for v, n in counts.items()]
                for kind, counts in versions.items() if kind != "overall"}
    compat = dump.get("require_min_compat_client", "jewel")
    clone_format = allowed_clone_format(cluster, dump)
    notes = []
    if clone_format == 1:
        notes.append("clones are v1: rbdnb protects a snapshot before cloning it; "
                     "`ceph osd set-require-min-compat-client mimic` allows v2")
    return Preflight(health=health, client_version=_client_version(),
                     cluster_versions=versions, require_min_compat_client=compat,
                     clone_format=clone_format, notes=notes)
