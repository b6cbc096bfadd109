"""libvirt with Ceph RBD: the ceph secret, rbd storage pools, and VMs with RBD disks.

The second half of the guide, in the core (no IPython here):

* :func:`ensure_secret` defines a libvirt secret of usage type ``ceph`` named
  ``client.NAME secret`` and sets its value through the API (never through a
  command line); the secret is private, so libvirt does not hand the key out again.
* :func:`ensure_rbd_pool` defines, starts and autostarts an ``rbd`` storage pool
  with the cluster's monitors and cephx auth.
* :func:`define_vm` builds domain XML with ElementTree: RBD network disks with
  auth and monitors, a serial console logged to a file, direct kernel boot or
  boot from disk, and a virt type that is KVM only where KVM really works.
* :func:`attach_rbd`, :func:`detach_rbd`, :func:`replace_disk` change disks of
  defined or running VMs.

Every value that ends up in XML is validated first: markup (quotes, ``<``,
``&``, ``/>``) is refused with a clear error before libvirt is called. libvirt
errors are mapped by error code, never by message text.
"""

from __future__ import annotations

import base64
import os
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from . import paths
from .cluster import Cluster
from .errors import (Conflict, Exists, InvalidArgument, NotFound, RbdnbError, Timeout,
                     require_confirmation)
from .guest import GuestBoot
from .plan import Plan, Result
from .specs import ImageSpec, check_name, parse_client, parse_spec

DEFAULT_MEMORY_MIB = 256
_TARGET_RE = re.compile(r"(vd|sd|hd)[a-z]{1,2}")
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UNSAFE = re.compile(r"[<>&\"'\x00-\x1f\x7f]")


# -- errors -----------------------------------------------------------------------------------
class DomainNotFound(NotFound):
    pass


class DomainExists(Exists):
    pass


class LibvirtError(RbdnbError):
    """Any other error libvirt reported."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


def _translate(exc, what: str) -> RbdnbError:
    import libvirt
    code = exc.get_error_code()
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return DomainNotFound(f"{what}: no such domain")
    if code in (libvirt.VIR_ERR_NO_SECRET, libvirt.VIR_ERR_NO_STORAGE_POOL,
                libvirt.VIR_ERR_NO_STORAGE_VOL):
        return NotFound(f"{what} not found")
    if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_SYSTEM_ERROR,
                getattr(libvirt, "VIR_ERR_RPC", 39)):
        return Timeout(f"{what}: libvirt is not reachable ({(exc.get_error_message() or '').splitlines()[0][:160]})")
    message = (exc.get_error_message() or str(exc)).splitlines()[0][:300]
    return LibvirtError(f"{what}: {message}", code)


class _translated:
    """``with _translated("domain vm1"):`` turns libvirtError into rbdnb errors."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        import libvirt
        if exc is not None and isinstance(exc, libvirt.libvirtError):
            raise _translate(exc, self.what) from exc
        return False


# -- validation -------------------------------------------------------------------------------
def _find(lookup, *args, missing: int):
    """``lookup(*args)``, or None when libvirt answers that the object does not exist
    (error code ``missing``); any other error is raised."""
    import libvirt
    try:
        return lookup(*args)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != missing:
            raise
        return None


def check_xml_value(value: object, what: str) -> str:
    """A value that goes into XML: a string with no markup and no control characters."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} {value!r} is not valid: expected a non-empty string")
    if _UNSAFE.search(value) or "/>" in value:
        raise InvalidArgument(f"{what} {value!r} is not valid: it may not contain quotes, "
                              f"'<', '>', '&' or control characters")
    return value


def check_path(path: object, what: str) -> str:
    path = check_xml_value(os.fspath(path) if isinstance(path, os.PathLike) else path, what)
    if not os.path.isabs(path):
        raise InvalidArgument(f"{what} {path!r} is not valid: expected an absolute path")
    return path


def check_target(target: object) -> str:
    if not isinstance(target, str) or not _TARGET_RE.fullmatch(target):
        raise InvalidArgument(f"disk target {target!r} is not valid: expected e.g. vda, vdb, sdb")
    return target


def check_uuid(value: object) -> str:
    if not isinstance(value, str) or not _UUID_RE.fullmatch(value):
        raise InvalidArgument(f"UUID {value!r} is not valid: expected 8-4-4-4-12 lower-case hex")
    return value


def check_domain_name(name: object) -> str:
    return check_name(name, "domain")


# -- connection -------------------------------------------------------------------------------
# What an unprivileged user's libvirt (qemu:///session) cannot do; the runbooks need none of it.
SESSION_LIMITS = ("skipped as unprivileged (qemu:///session): VMs run as this user with no "
                  "libvirt networks, bridges or host devices (those need qemu:///system); "
                  "nothing in the runbooks uses them")


def default_uri() -> str:
    """The sandbox's libvirt URI: $LIBVIRT_DEFAULT_URI, else system as root, session otherwise."""
    return os.environ.get("LIBVIRT_DEFAULT_URI") or paths.default_libvirt_uri()


_EVENT_LOOP: list = []


def _ensure_event_loop() -> None:
    """libvirt's default event loop, run by a daemon thread (keepalives need one).

    Also silences libvirt's default error handler, which prints every error to
    stderr: rbdnb raises its own one-line errors instead.
    """
    import libvirt
    import threading
    if _EVENT_LOOP:
        return
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    libvirt.virEventRegisterDefaultImpl()

    def run():
        while True:
            libvirt.virEventRunDefaultImpl()

    thread = threading.Thread(target=run, name="libvirt-events", daemon=True)
    thread.start()
    _EVENT_LOOP.append(thread)


CONNECT_TIMEOUT = 15.0


def check_uri(uri: object) -> str:
    """A libvirt URI: ``driver[+transport]://[host]/path[?query]``, no markup or spaces."""
    if not isinstance(uri, str) or not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^\s<>&\"']*", uri):
        raise InvalidArgument(f"libvirt URI {uri!r} is not valid: expected e.g. qemu:///system "
                              f"or qemu:///session")
    return uri


def connect_libvirt(uri: str | None = None, *, keepalive: int = 5,
                    timeout: float = CONNECT_TIMEOUT):
    """Open a libvirt connection within ``timeout`` s; keepalives then close it if the
    daemon stops answering, so no call on it blocks forever either.

    A daemon that does not answer (stopped, frozen, gone) gives :class:`Timeout`.
    """
    import libvirt
    _ensure_event_loop()
    uri = check_uri(uri or default_uri())
    if uri == "qemu:///system":
        # The system daemon is never started on demand: without it, say so at once. (The
        # session daemon is: libvirt's client starts one for qemu:///session.)
        from ._proc import unix_socket_answers
        if not unix_socket_answers(paths.libvirt_daemons(uri).libvirtd_socket):
            raise Timeout(f"libvirtd is not serving {uri}: start it (rbdnb sandbox up)")

    def open_():
        with _translated(f"libvirt {uri}"):
            conn = libvirt.open(uri)
            # A daemon that misses 3 keepalives 5 s apart is taken as gone: calls then fail
            # instead of blocking forever. In-process drivers (test:///) have no daemon.
            try:
                conn.setKeepAlive(keepalive, 3)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
        return conn

    from ._proc import bounded
    return bounded(open_, timeout, f"libvirt {uri} (libvirtd does not answer: is it stopped "
                                   f"or frozen? rbdnb sandbox status tells)",
                   on_late=lambda conn: conn.close())


def reachable(uri: str | None = None, *, timeout: float = 5.0) -> bool:
    """Whether a libvirt daemon serving ``uri`` answers a question within ``timeout`` s.

    A frozen daemon still accepts connections on its socket; this asks it its version.
    For qemu:///system and qemu:///session the socket is checked first, so asking never
    makes libvirt's client start a session daemon.
    """
    uri = uri or default_uri()
    if uri in ("qemu:///system", "qemu:///session"):
        from ._proc import unix_socket_answers
        if not unix_socket_answers(paths.libvirt_daemons(uri).libvirtd_socket):
            return False
    try:
        conn = connect_libvirt(uri, timeout=timeout)
    except RbdnbError:
        return False
    from ._proc import bounded
    try:
        bounded(conn.getLibVersion, timeout, f"libvirt {uri}")
        return True
    except Exception:
        return False
    finally:
        close_quietly(conn)


def close_quietly(conn, timeout: float = 5.0) -> None:
    """Close a libvirt connection without waiting long for a daemon that does not answer."""
    from ._proc import bounded
    try:
        bounded(conn.close, timeout, "closing a libvirt connection")
    except Exception:
        pass


# -- the ceph secret --------------------------------------------------------------------------
def secret_usage(client: str) -> str:
    return f"client.{parse_client(client)} secret"


def secret_xml(client: str, uuid: str | None = None) -> str:
    root = ET.Element("secret", ephemeral="no", private="yes")
    if uuid:
        ET.SubElement(root, "uuid").text = check_uuid(uuid)
    ET.SubElement(ET.SubElement(root, "usage", type="ceph"), "name").text = secret_usage(client)
    return ET.tostring(root, encoding="unicode")


def define_secret(conn, cluster: Cluster, client: str = "libvirt", uuid: str | None = None, *,
                  dry_run: bool = False) -> Result | Plan:
    """Define (or reuse, by usage name) the ceph secret of ``client.NAME`` and set its value.

    A given ``uuid`` is honoured; an existing secret with another UUID is a
    :class:`Conflict`. The key goes from the cluster to libvirt through the API.
    """
    import libvirt
    from .users import get_key
    usage = secret_usage(client)
    if uuid is not None:
        check_uuid(uuid)
    plan = Plan(f"libvirt secret for client.{parse_client(client)}")
    plan.add("virsh", "secret-define", "secret.xml")
    plan.note(f"secret.xml: `{secret_xml(client, uuid)}`")
    plan.note("the value is set through libvirt's API from `ceph auth get`, never with "
              "`virsh secret-set-value KEY`; the secret is private, so libvirt does not "
              "reveal it again")
    if dry_run:
        return plan
    key = get_key(cluster, client)
    with _translated(f"secret {usage!r}"):
        existing = _find(conn.secretLookupByUsage, libvirt.VIR_SECRET_USAGE_TYPE_CEPH, usage,
                         missing=libvirt.VIR_ERR_NO_SECRET)
    if existing is not None:
        if uuid and existing.UUIDString() != uuid:
            raise Conflict(f"secret {usage!r} exists with UUID {existing.UUIDString()}, "
                           f"not {uuid}")
        # A private secret cannot be read back: "unchanged" only when the value rbdnb set
        # last is this cluster's key (a fingerprint, kept 0600 beside the keyrings).
        if _value_fingerprints().get(existing.UUIDString()) == _fingerprint(key):
            return Result(plan.action, False, f"unchanged: secret {existing.UUIDString()} "
                          f"holds this cluster's key of client.{parse_client(client)}", plan,
                          value=existing.UUIDString())
        with _translated(f"secret {usage!r}"):
            existing.setValue(base64.b64decode(key.reveal()))
        _remember_value(existing.UUIDString(), key)
        return Result(plan.action, True, f"secret {existing.UUIDString()} exists: its value was "
                      f"set from the cluster (it held another key, or one rbdnb had not set)",
                      plan, value=existing.UUIDString())
    with _translated(f"secret {usage!r}"):
        secret = conn.secretDefineXML(secret_xml(client, uuid))
        secret.setValue(base64.b64decode(key.reveal()))
    _remember_value(secret.UUIDString(), key)
    return Result(plan.action, True, f"defined secret {secret.UUIDString()} and set its value",
                  plan, value=secret.UUIDString())


def _fingerprint(key) -> str:
    import hashlib
    return hashlib.sha256(b"rbdnb libvirt secret\0" + key.reveal().encode()).hexdigest()[:32]


def _fingerprints_path():
    return paths.keyring_dir() / "libvirt-secrets.json"


def _value_fingerprints() -> dict:
    import json
    try:
        return json.loads(_fingerprints_path().read_text())
    except (OSError, ValueError):
        return {}


def _remember_value(uuid: str, key) -> None:
    import json
    try:
        paths.ensure_keyring_dir()
        known = _value_fingerprints()
        known[uuid] = _fingerprint(key)
        path = _fingerprints_path()
        fd = os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(known, indent=1))
        os.replace(f"{path}.tmp", path)
    except OSError:
        pass  # without the record, the next run sets the value again and says so


PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"


def find_secret(conn, client: str = "libvirt") -> str | None:
    """The UUID of ``client.NAME``'s ceph secret in libvirt, or None (changes nothing)."""
    import libvirt
    usage = secret_usage(client)
    with _translated(f"secret {usage!r}"):
        found = _find(conn.secretLookupByUsage, libvirt.VIR_SECRET_USAGE_TYPE_CEPH, usage,
                      missing=libvirt.VIR_ERR_NO_SECRET)
    return found.UUIDString() if found is not None else None


def ensure_secret(conn, cluster: Cluster, client: str = "libvirt",
                  uuid: str | None = None, *, dry_run: bool = False) -> str:
    """The UUID of ``client.NAME``'s ceph secret in libvirt, defined and set if needed.
    With ``dry_run``, the UUID it has (or would get: ``uuid``, else a placeholder), and
    nothing is defined."""
    if dry_run:
        return find_secret(conn, client) or uuid or PLACEHOLDER_UUID
    return define_secret(conn, cluster, client, uuid).value


def list_secrets(conn):
    import pandas as pd
    rows = []
    with _translated("secrets"):
        for s in conn.listAllSecrets():
            rows.append({"uuid": s.UUIDString(), "usage_type": s.usageType(),
                         "usage": s.usageID()})
    return pd.DataFrame(rows, columns=["uuid", "usage_type", "usage"])


def undefine_secret(conn, uuid: str, *, dry_run: bool = False) -> Result | Plan:
    """``virsh secret-undefine UUID``."""
    check_uuid(uuid)
    plan = Plan(f"undefine secret {uuid}").add("virsh", "secret-undefine", uuid)
    if dry_run:
        return plan
    import libvirt
    with _translated(f"secret {uuid}"):
        secret = _find(conn.secretLookupByUUIDString, uuid, missing=libvirt.VIR_ERR_NO_SECRET)
        if secret is None:
            return Result(plan.action, False, "unchanged: no such secret", plan)
        secret.undefine()
    return Result(plan.action, True, "undefined", plan)


# -- monitors and auth for RBD in XML ---------------------------------------------------------
@dataclass
class RbdAuth:
    """Where the monitors are and who libvirt/QEMU connect as."""

    hosts: list[tuple[str, int]]
    username: str
    secret_uuid: str

    def __post_init__(self):
        if not self.hosts:
            raise InvalidArgument("no monitor hosts given")
        for host, port in self.hosts:
            check_xml_value(host, "monitor host")
            if not isinstance(port, int) or not 0 < port < 65536:
                raise InvalidArgument(f"monitor port {port!r} is not valid")
        self.username = parse_client(self.username)
        check_uuid(self.secret_uuid)


def monitor_hosts(cluster: Cluster) -> list[tuple[str, int]]:
    """Monitors as (host, port) pairs that mean the same when written bare as ``host:port``.

    Ceph reads a bare ``host:port`` as msgr v1 on port 6789 and msgr v2 elsewhere,
    and libvirt and QEMU pass monitors on bare; so a v1 address on 6789 or a v2
    address on another port is taken.
    """
    return pick_monitor_hosts(cluster.mon_command({"prefix": "mon dump"}, "monitor map"))


def pick_monitor_hosts(dump: dict) -> list[tuple[str, int]]:
    """The (host, port) pairs of a ``mon dump`` that a bare ``host:port`` names correctly."""
    hosts = []
    for mon in dump.get("mons", []):
        chosen = None
        for addr in mon.get("public_addrs", {}).get("addrvec", []):
            host, _, port = addr["addr"].rpartition(":")
            port = int(port)
            if (addr["type"] == "v1" and port == 6789) or (addr["type"] == "v2" and port != 6789):
                chosen = (host.strip("[]"), port)
                if addr["type"] == "v1":
                    break
        if chosen:
            hosts.append(chosen)
    if not hosts:
        raise RbdnbError("no monitor has an address that libvirt can name as host:port")
    return hosts


def rbd_auth(cluster: Cluster, client: str, secret_uuid: str) -> RbdAuth:
    return RbdAuth(monitor_hosts(cluster), client, secret_uuid)


# -- storage pools ----------------------------------------------------------------------------
def rbd_pool_xml(name: str, ceph_pool: str, auth: RbdAuth) -> str:
    root = ET.Element("pool", type="rbd")
    ET.SubElement(root, "name").text = check_name(name, "libvirt pool")
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "name").text = check_name(ceph_pool, "pool")
    for host, port in auth.hosts:
        ET.SubElement(source, "host", name=host, port=str(port))
    a = ET.SubElement(source, "auth", type="ceph", username=auth.username)
    ET.SubElement(a, "secret", uuid=auth.secret_uuid)
    return ET.tostring(root, encoding="unicode")


def _pool_source(xml: str) -> dict:
    root = ET.fromstring(xml)
    src = root.find("source")
    auth = src.find("auth") if src is not None else None
    return {"type": root.get("type"), "name": src.findtext("name") if src is not None else None,
            "hosts": [(h.get("name"), int(h.get("port") or 6789)) for h in src.findall("host")]
            if src is not None else [],
            "username": auth.get("username") if auth is not None else None,
            "secret": auth.find("secret").get("uuid") if auth is not None else None}


def ensure_rbd_pool(conn, name: str, ceph_pool: str, cluster: Cluster, client: str,
                    secret_uuid: str, *, autostart: bool = True,
                    dry_run: bool = False) -> Result | Plan:
    """Define, start and autostart a libvirt ``rbd`` pool for ``ceph_pool``."""
    import libvirt
    check_name(name, "libvirt pool")
    check_name(ceph_pool, "pool")
    auth = rbd_auth(cluster, client, secret_uuid)
    xml = rbd_pool_xml(name, ceph_pool, auth)
    plan = Plan(f"libvirt rbd pool {name}")
    plan.add("virsh", "pool-define", "pool.xml")
    plan.add("virsh", "pool-start", name)
    if autostart:
        plan.add("virsh", "pool-autostart", name)
    plan.note(f"pool.xml: `{xml}`")
    if dry_run:
        return plan
    changed = []
    with _translated(f"libvirt pool {name}"):
        pool = _find(conn.storagePoolLookupByName, name,
                     missing=libvirt.VIR_ERR_NO_STORAGE_POOL)
        if pool is None:
            pool = conn.storagePoolDefineXML(xml, 0)
            changed.append("defined")
        else:
            have = _pool_source(pool.XMLDesc(0))
            want = _pool_source(xml)
            if have != want:
                raise Conflict(f"libvirt pool {name} exists with another source "
                               f"({have['type']} pool {have['name']}, user {have['username']})")
        if not pool.isActive():
            pool.create(0)
            changed.append("started")
        if autostart and not pool.autostart():
            pool.setAutostart(1)
            changed.append("set to autostart")
        pool.refresh(0)
    message = ", ".join(changed) if changed else "unchanged: defined, running, autostarted"
    return Result(plan.action, bool(changed), message, plan, value=name)


def _rbd_pool_auth(conn, ceph_pool: str, cluster: Cluster | None = None) -> RbdAuth | None:
    """The monitors and auth of the libvirt rbd pool that serves ``ceph_pool``.

    libvirt is machine-wide, and two clusters may both have a pool of that name: with
    ``cluster`` only a libvirt pool on its monitors counts; without it, pools on
    different monitors are ambiguous and refused.
    """
    mons = set(monitor_hosts(cluster)) if cluster is not None else None
    found = []
    with _translated("storage pools"):
        for pool in conn.listAllStoragePools(0):
            src = _pool_source(pool.XMLDesc(0))
            if src["type"] == "rbd" and src["name"] == ceph_pool and src["secret"]:
                if mons is None or set(src["hosts"]) & mons:
                    found.append((pool.name(), RbdAuth(src["hosts"], src["username"],
                                                       src["secret"])))
    if len({tuple(a.hosts) for _, a in found}) > 1:
        raise InvalidArgument(f"libvirt pools {', '.join(n for n, _ in found)} serve Ceph pools "
                              f"named {ceph_pool} on different clusters: pass cluster= (or auth=)")
    return found[0][1] if found else None


def delete_rbd_pool(conn, name: str, *, dry_run: bool = False) -> Result | Plan:
    """Stop and undefine a libvirt pool (the Ceph pool and its images stay)."""
    import libvirt
    check_name(name, "libvirt pool")
    plan = Plan(f"remove libvirt pool {name}").add("virsh", "pool-destroy", name)
    plan.add("virsh", "pool-undefine", name)
    if dry_run:
        return plan
    with _translated(f"libvirt pool {name}"):
        pool = _find(conn.storagePoolLookupByName, name,
                     missing=libvirt.VIR_ERR_NO_STORAGE_POOL)
        if pool is None:
            return Result(plan.action, False, "unchanged: no such pool", plan)
        if pool.isActive():
            pool.destroy()
        pool.undefine()
    return Result(plan.action, True, "stopped and undefined (the Ceph pool is kept)", plan)


def list_volumes(conn, name: str):
    """``virsh vol-list``: the volumes (RBD images) of a libvirt pool, as a DataFrame."""
    import pandas as pd
    with _translated(f"libvirt pool {name}"):
        pool = conn.storagePoolLookupByName(check_name(name, "libvirt pool"))
        pool.refresh(0)
        rows = []
        for vol in pool.listAllVolumes(0):
            kind, capacity, allocation = vol.info()
            rows.append({"name": vol.name(), "path": vol.path(), "capacity": capacity,
                         "allocation": allocation})
    return pd.DataFrame(rows, columns=["name", "path", "capacity", "allocation"])


def create_volume(conn, pool: str, name: str, size, *, dry_run: bool = False) -> Result | Plan:
    """``virsh vol-create-as POOL NAME SIZE`` (an RBD image made by libvirt)."""
    from .units import parse_size
    check_name(pool, "libvirt pool")
    nbytes = parse_size(size, what="volume size")
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = check_name(name, "volume")
    ET.SubElement(root, "capacity", unit="bytes").text = str(nbytes)
    plan = Plan(f"create volume {pool}/{name}").add("virsh", "vol-create-as", pool, name,
                                                    f"{nbytes}b")
    if dry_run:
        return plan
    with _translated(f"volume {pool}/{name}"):
        p = conn.storagePoolLookupByName(check_name(pool, "libvirt pool"))
        p.createXML(ET.tostring(root, encoding="unicode"), 0)
    return Result(plan.action, True, "created", plan)


# -- domains ----------------------------------------------------------------------------------
def kvm_usable() -> bool:
    """True only where KVM can really run guests: /dev/kvm and a CPU with vmx or svm.

    On this project's machines /dev/kvm exists but the CPU lacks the flags, and a
    KVM guest spins without output; TCG is used there instead.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.MULTILINE))


def _rbd_disk(spec: ImageSpec, target: str, auth: RbdAuth, bus: str = "virtio") -> ET.Element:
    disk = ET.Element("disk", type="network", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="raw", cache="writeback")
    a = ET.SubElement(disk, "auth", username=auth.username)
    ET.SubElement(a, "secret", type="ceph", uuid=auth.secret_uuid)
    source = ET.SubElement(disk, "source", protocol="rbd", name=_rbd_name(spec))
    for host, port in auth.hosts:
        ET.SubElement(source, "host", name=host, port=str(port))
    ET.SubElement(disk, "target", dev=check_target(target), bus=bus)
    return disk


def _rbd_name(spec: ImageSpec) -> str:
    return f"{spec.pool}/{spec.namespace}/{spec.image}" if spec.namespace else spec.image_path


def _auth_for(conn, spec: ImageSpec, auth: RbdAuth | None,
              cluster: Cluster | None = None) -> RbdAuth:
    if auth is not None:
        return auth
    found = _rbd_pool_auth(conn, spec.pool, cluster)
    if found is None:
        raise InvalidArgument(f"no libvirt rbd pool serves Ceph pool {spec.pool}, so its "
                              f"monitors and auth are unknown: call ensure_rbd_pool first, or "
                              f"pass auth=rbd_auth(cluster, client, secret_uuid)")
    return found


def _targets(n: int) -> list[str]:
    return [f"vd{chr(ord('a') + i)}" for i in range(n)]


def domain_xml(name: str, disks: list[ET.Element], *, memory_mib: int = DEFAULT_MEMORY_MIB,
               vcpus: int = 1, boot: GuestBoot | None = None, console_log: str | None = None,
               virt_type: str = "auto") -> str:
    """Domain XML for a VM with the given disk elements."""
    check_domain_name(name)
    if isinstance(memory_mib, bool) or not isinstance(memory_mib, int) or \
            not 32 <= memory_mib <= 1024 * 1024:
        raise InvalidArgument(f"memory_mib {memory_mib!r} is not valid: 32 to 1048576")
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or not 1 <= vcpus <= 256:
        raise InvalidArgument(f"vcpus {vcpus!r} is not valid: 1 to 256")
    if virt_type not in ("auto", "kvm", "qemu"):
        raise InvalidArgument(f"virt_type {virt_type!r} is not valid: auto, kvm or qemu")
    if virt_type == "auto":
        virt_type = "kvm" if kvm_usable() else "qemu"
    root = ET.Element("domain", type=virt_type)
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(root, "vcpu").text = str(vcpus)
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    if boot is not None and boot.direct:
        ET.SubElement(os_el, "kernel").text = check_path(boot.kernel, "kernel")
        ET.SubElement(os_el, "initrd").text = check_path(boot.initrd, "initrd")
        if boot.cmdline:
            ET.SubElement(os_el, "cmdline").text = check_xml_value(boot.cmdline, "kernel cmdline")
    else:
        ET.SubElement(os_el, "boot", dev="hd")
    features = ET.SubElement(root, "features")
    ET.SubElement(features, "acpi")  # ACPI PCI hotplug: disks attached live appear in the guest
    ET.SubElement(root, "on_poweroff").text = "destroy"
    ET.SubElement(root, "on_reboot").text = "restart"
    ET.SubElement(root, "on_crash").text = "destroy"
    devices = ET.SubElement(root, "devices")
    for disk in disks:
        devices.append(disk)
    serial = ET.SubElement(devices, "serial", type="pty")
    if console_log:
        ET.SubElement(serial, "log", file=check_path(console_log, "console log"), append="off")
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(ET.SubElement(devices, "console", type="pty"), "target", type="serial", port="0")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(root, encoding="unicode")


def define_vm(conn, name: str, disks: list[str], *, memory_mib: int = DEFAULT_MEMORY_MIB,
              vcpus: int = 1, boot: GuestBoot | None = None, console_log: str | None = None,
              virt_type: str = "auto", auth: RbdAuth | None = None,
              cluster: Cluster | None = None, exist_ok: bool = False,
              dry_run: bool = False) -> Result | Plan:
    """Define a VM whose disks are RBD images ``pool/image`` (vda, vdb, ... in order).

    Monitors and cephx auth come from the libvirt rbd pool serving each disk's
    Ceph pool on ``cluster`` (see :func:`ensure_rbd_pool`) unless ``auth`` is given.
    """
    import libvirt
    check_domain_name(name)
    if not disks:
        raise InvalidArgument("a VM needs at least one disk")
    specs = [parse_spec(d) for d in disks]
    elements = [_rbd_disk(s, t, _auth_for(conn, s, auth, cluster))
                for s, t in zip(specs, _targets(len(specs)))]
    xml = domain_xml(name, elements, memory_mib=memory_mib, vcpus=vcpus, boot=boot,
                     console_log=console_log, virt_type=virt_type)
    plan = Plan(f"define VM {name}").add("virsh", "define", f"{name}.xml")
    plan.note(f"disks: {', '.join(f'{t}={s}' for s, t in zip(specs, _targets(len(specs))))}")
    if dry_run:
        return plan
    with _translated(f"domain {name}"):
        existing = _find(conn.lookupByName, name, missing=libvirt.VIR_ERR_NO_DOMAIN)
        if existing is not None:
            if not exist_ok:
                raise DomainExists(f"domain {name} already exists")
            have = sorted(d["source"] for d in _disks(existing.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
            if have != sorted(_rbd_name(s) for s in specs):
                raise Conflict(f"domain {name} exists with other disks ({', '.join(have)})")
            return Result(plan.action, False, "unchanged: defined with these disks", plan,
                          value=name)
        conn.defineXML(xml)
    return Result(plan.action, True, f"defined ({len(specs)} RBD disk(s))", plan, value=name)


def _domain(conn, name: str):
    with _translated(f"domain {check_domain_name(name)}"):
        return conn.lookupByName(name)


def start_vm(conn, name: str, *, dry_run: bool = False) -> Result | Plan:
    """``virsh start``."""
    check_domain_name(name)
    plan = Plan(f"start VM {name}").add("virsh", "start", name)
    if dry_run:
        return plan
    dom = _domain(conn, name)
    with _translated(f"domain {name}"):
        if dom.isActive():
            return Result(plan.action, False, "unchanged: running", plan)
        dom.create()
    return Result(plan.action, True, "started", plan)


def shutdown_vm(conn, name: str, *, timeout: float = 60,
                dry_run: bool = False) -> Result | Plan:
    """Ask the guest to power off (ACPI); wait up to ``timeout`` s."""
    check_domain_name(name)
    plan = Plan(f"shut down VM {name}").add("virsh", "shutdown", name)
    if dry_run:
        return plan
    dom = _domain(conn, name)
    with _translated(f"domain {name}"):
        if not dom.isActive():
            return Result(plan.action, False, "unchanged: not running", plan)
        dom.shutdown()
        deadline = time.monotonic() + timeout
        while dom.isActive():
            if time.monotonic() > deadline:
                raise Timeout(f"domain {name} did not shut down within {timeout:g} s: "
                              f"destroy_vm forces it off")
            time.sleep(0.5)
    return Result(plan.action, True, "shut down", plan)


def destroy_vm(conn, name: str, *, dry_run: bool = False) -> Result | Plan:
    """Force the VM off (``virsh destroy``); its definition and disks stay."""
    check_domain_name(name)
    plan = Plan(f"destroy VM {name}").add("virsh", "destroy", name)
    if dry_run:
        return plan
    dom = _domain(conn, name)
    with _translated(f"domain {name}"):
        if not dom.isActive():
            return Result(plan.action, False, "unchanged: not running", plan)
        dom.destroy()
    return Result(plan.action, True, "forced off", plan)


def undefine_vm(conn, name: str, *, missing_ok: bool = False,
                dry_run: bool = False) -> Result | Plan:
    """Forget the VM (``virsh undefine``); it must be off. Its RBD disks stay."""
    check_domain_name(name)
    plan = Plan(f"undefine VM {name}").add("virsh", "undefine", name)
    if dry_run:
        return plan
    try:
        dom = _domain(conn, name)
    except DomainNotFound:
        if missing_ok:
            return Result(plan.action, False, "unchanged: no such domain", plan)
        raise
    with _translated(f"domain {name}"):
        if dom.isActive():
            raise InvalidArgument(f"domain {name} is running: destroy or shut it down first")
        dom.undefine()
    return Result(plan.action, True, "undefined (its disks are kept)", plan)


def dump_xml(conn, name: str, *, inactive: bool = False) -> str:
    """``virsh dumpxml`` (``--inactive`` for the persistent definition)."""
    import libvirt
    dom = _domain(conn, name)
    with _translated(f"domain {name}"):
        return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0)


def _disks(xml: str) -> list[dict]:
    out = []
    for disk in ET.fromstring(xml).findall("./devices/disk"):
        source = disk.find("source")
        target = disk.find("target")
        name = None
        if source is not None:
            name = source.get("name") or source.get("file") or source.get("dev")
        out.append({"target": target.get("dev") if target is not None else None,
                    "type": disk.get("type"), "source": name,
                    "protocol": source.get("protocol") if source is not None else None,
                    "element": disk})
    return out


def list_disks(conn, name: str, *, inactive: bool = False):
    """The VM's disks as a DataFrame (target, type, protocol, source)."""
    import pandas as pd
    rows = [{k: v for k, v in d.items() if k != "element"}
            for d in _disks(dump_xml(conn, name, inactive=inactive))]
    return pd.DataFrame(rows, columns=["target", "type", "protocol", "source"])


def _flags(live: bool, persistent: bool, active: bool) -> int:
    import libvirt
    flags = 0
    if live and active:
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    if persistent:
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    return flags


def attach_rbd(conn, domain: str, image: str, target: str = "vdb", *, live: bool = True,
               persistent: bool = True, auth: RbdAuth | None = None,
               cluster: Cluster | None = None, dry_run: bool = False) -> Result | Plan:
    """Attach RBD image ``pool/image`` as disk ``target`` (live if the VM runs, and/or in its config)."""
    check_domain_name(domain)
    spec = parse_spec(image)
    check_target(target)
    if not live and not persistent:
        raise InvalidArgument("attach needs live=True, persistent=True, or both")
    element = _rbd_disk(spec, target, _auth_for(conn, spec, auth, cluster))
    xml = ET.tostring(element, encoding="unicode")
    argv = ["virsh", "attach-device", domain, "disk.xml"]
    argv += (["--live"] if live else []) + (["--config"] if persistent else [])
    plan = Plan(f"attach {spec} to {domain} as {target}").add(*argv)
    plan.note(f"disk.xml: `{xml}`")
    if dry_run:
        return plan
    dom = _domain(conn, domain)
    with _translated(f"domain {domain}"):
        active = bool(dom.isActive())
        current = _disks(dom.XMLDesc(0))
        for disk in current:
            if disk["target"] == target:
                if disk["source"] == _rbd_name(spec):
                    return Result(plan.action, False, f"unchanged: {spec} is {target} already",
                                  plan)
                raise Conflict(f"domain {domain} already has a disk {target} "
                               f"({disk['source']})")
        dom.attachDeviceFlags(xml, _flags(live, persistent, active))
    where = ("live and in its config" if live and active and persistent else
             "live" if live and active else "in its config (applies at next start)")
    return Result(plan.action, True, f"attached {where}", plan)


def detach_rbd(conn, domain: str, image_or_target: str, *, live: bool = True,
               persistent: bool = True, timeout: float = 60,
               dry_run: bool = False) -> Result | Plan:
    """Detach a disk, named by its RBD image ``pool/image`` or its target (``vdb``).

    A live detach waits (up to ``timeout`` s) until the guest has released the disk.
    """
    import libvirt
    check_domain_name(domain)
    is_target = bool(_TARGET_RE.fullmatch(image_or_target) if isinstance(image_or_target, str) else None)
    if not is_target:
        wanted = _rbd_name(parse_spec(image_or_target))
    argv = ["virsh", "detach-disk", domain, image_or_target]
    argv += (["--live"] if live else []) + (["--config"] if persistent else [])
    plan = Plan(f"detach {image_or_target} from {domain}").add(*argv)
    if dry_run:
        return plan
    dom = _domain(conn, domain)
    with _translated(f"domain {domain}"):
        active = bool(dom.isActive())
        sources = [dom.XMLDesc(0)] + ([dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)]
                                      if persistent else [])
        match = None
        for xml in sources:
            for disk in _disks(xml):
                if (disk["target"] == image_or_target) if is_target else \
                        (disk["source"] == wanted):
                    match = disk
                    break
            if match:
                break
        if match is None:
            return Result(plan.action, False, f"unchanged: {domain} has no disk "
                          f"{image_or_target}", plan)
        element = ET.tostring(match["element"], encoding="unicode")
        dom.detachDeviceFlags(element, _flags(live, persistent, active))
        if live and active:
            deadline = time.monotonic() + timeout
            while any(d["target"] == match["target"] for d in _disks(dom.XMLDesc(0))):
                if time.monotonic() > deadline:
                    raise Timeout(f"the guest of {domain} did not release {match['target']} "
                                  f"within {timeout:g} s")
                time.sleep(0.5)
    return Result(plan.action, True, f"detached {match['target']} ({match['source']})", plan)


def replace_disk(conn, domain: str, target: str, image: str, *, auth: RbdAuth | None = None,
                 cluster: Cluster | None = None, dry_run: bool = False) -> Result | Plan:
    """Turn disk ``target`` of the VM's definition into RBD network disk ``pool/image``.

    The guide's ``virsh edit`` step: the rest of the XML (UUID, devices, the
    disk's bus and address) is kept. A running VM sees the change at its next start.
    """
    import libvirt
    check_domain_name(domain)
    spec = parse_spec(image)
    check_target(target)
    new = _rbd_disk(spec, target, _auth_for(conn, spec, auth, cluster))
    plan = Plan(f"replace disk {target} of {domain} by {spec}").add("virsh", "edit", domain)
    plan.note(f"the <disk> with target {target} becomes `{ET.tostring(new, encoding='unicode')}`")
    if dry_run:
        return plan
    dom = _domain(conn, domain)
    with _translated(f"domain {domain}"):
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        devices = root.find("devices")
        for index, disk in enumerate(list(devices)):
            if disk.tag != "disk":
                continue
            t = disk.find("target")
            if t is None or t.get("dev") != target:
                continue
            source = disk.find("source")
            if disk.get("type") == "network" and source is not None and \
                    source.get("name") == _rbd_name(spec):
                return Result(plan.action, False, f"unchanged: {target} is {spec} already", plan)
            # Keep the target's bus and the guest-visible address and boot order.
            new.find("target").set("bus", t.get("bus", "virtio"))
            for keep in ("address", "boot"):
                old = disk.find(keep)
                if old is not None:
                    new.append(old)
            devices.remove(disk)
            devices.insert(index, new)
            conn.defineXML(ET.tostring(root, encoding="unicode"))
            return Result(plan.action, True, f"{target} is now RBD disk {spec}"
                          + (" (at next start)" if dom.isActive() else ""), plan)
    raise NotFound(f"domain {domain} has no disk {target}")


def file_disk(path: str, target: str = "vda", fmt: str = "qcow2") -> ET.Element:
    """A file-backed disk element (what ``virt-install --disk path=...`` makes)."""
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=check_name(fmt, "disk format"))
    ET.SubElement(disk, "source", file=check_path(path, "disk path"))
    ET.SubElement(disk, "target", dev=check_target(target), bus="virtio")
    return disk


def clone_volume(conn, pool: str, source: str, name: str, *,
                 dry_run: bool = False) -> Result | Plan:
    """``virsh vol-clone``: for an rbd pool, libvirt makes a copy-on-write RBD clone."""
    check_name(pool, "libvirt pool")
    check_name(source, "volume")
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = check_name(name, "volume")
    plan = Plan(f"clone volume {pool}/{source} to {name}").add(
        "virsh", "vol-clone", "--pool", pool, source, name)
    if dry_run:
        return plan
    with _translated(f"volume {pool}/{source}"):
        p = conn.storagePoolLookupByName(check_name(pool, "libvirt pool"))
        src = p.storageVolLookupByName(check_name(source, "volume"))
        p.createXMLFrom(ET.tostring(root, encoding="unicode"), src, 0)
    return Result(plan.action, True, "cloned", plan)


def delete_volume(conn, pool: str, name: str, *, confirm: bool = False,
                  missing_ok: bool = False, dry_run: bool = False) -> Result | Plan:
    """``virsh vol-delete``: removes the RBD image. Needs ``confirm=True``."""
    import libvirt
    check_name(pool, "libvirt pool")
    check_name(name, "volume")
    plan = Plan(f"delete volume {pool}/{name}").add("virsh", "vol-delete", "--pool", pool, name)
    if dry_run:
        return plan
    require_confirmation(confirm, f"deleting volume {pool}/{name} destroys its RBD image")
    with _translated(f"volume {pool}/{name}"):
        p = conn.storagePoolLookupByName(check_name(pool, "libvirt pool"))
        try:
            vol = p.storageVolLookupByName(check_name(name, "volume"))
        except libvirt.libvirtError as exc:
            if missing_ok and exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return Result(plan.action, False, "unchanged: no such volume", plan)
            raise
        vol.delete(0)
    return Result(plan.action, True, "deleted", plan)
