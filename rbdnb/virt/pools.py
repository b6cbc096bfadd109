"""rbd storage pools (define, start, autostart with the cluster's monitors and cephx auth)
and their volumes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..base.plan import Plan, Result
from ..base.specs import check_name
from ..base.units import parse_size
from ..ceph.cluster import Cluster
from ..errors import (Conflict, InvalidArgument,
                      require_confirmation)
from .xml import RbdAuth, pick_monitor_hosts, pool_source, rbd_pool_xml
from .connection import find, translated


def find_pool(conn, name: str):
    """The libvirt storage pool ``name``, or None if libvirt has none of that name."""
    import libvirt
    return find(conn.storagePoolLookupByName, name, missing=libvirt.VIR_ERR_NO_STORAGE_POOL)


def monitor_hosts(cluster: Cluster) -> list[tuple[str, int]]:
    """Monitors as (host, port) pairs that mean the same when written bare as ``host:port``.

    Ceph reads a bare ``host:port`` as msgr v1 on port 6789 and msgr v2 elsewhere,
    and libvirt and QEMU pass monitors on bare; so a v1 address on 6789 or a v2
    address on another port is taken.
    """
    return pick_monitor_hosts(cluster.mon_command({"prefix": "mon dump"}, "monitor map"))


def rbd_auth(cluster: Cluster, client: str, secret_uuid: str) -> RbdAuth:
    """RBD auth for XML: this cluster's monitors, client ``client``, libvirt secret
    ``secret_uuid``."""
    return RbdAuth(monitor_hosts(cluster), client, secret_uuid)


def ensure_rbd_pool(conn, name: str, ceph_pool: str, cluster: Cluster, client: str,
                    secret_uuid: str, *, autostart: bool = True,
                    dry_run: bool = False) -> Result | Plan:
    """Define, start and autostart a libvirt ``rbd`` pool for ``ceph_pool``."""
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
    with translated(f"libvirt pool {name}"):
        pool = find_pool(conn, name)
        if pool is None:
            pool = conn.storagePoolDefineXML(xml, 0)
            changed.append("defined")
        else:
            have = pool_source(pool.XMLDesc(0))
            want = pool_source(xml)
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


def rbd_pool_auth(conn, ceph_pool: str, cluster: Cluster | None = None) -> RbdAuth | None:
    """The monitors and auth of the libvirt rbd pool that serves ``ceph_pool``.

    libvirt is machine-wide, and two clusters may both have a pool of that name: with
    ``cluster`` only a libvirt pool on its monitors counts; without it, pools on
    different monitors are ambiguous and refused.
    """
    mons = set(monitor_hosts(cluster)) if cluster is not None else None
    found = []
    with translated("storage pools"):
        for pool in conn.listAllStoragePools(0):
            src = pool_source(pool.XMLDesc(0))
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
    check_name(name, "libvirt pool")
    plan = Plan(f"remove libvirt pool {name}").add("virsh", "pool-destroy", name)
    plan.add("virsh", "pool-undefine", name)
    if dry_run:
        return plan
    with translated(f"libvirt pool {name}"):
        pool = find_pool(conn, name)
        if pool is None:
            return Result(plan.action, False, "unchanged: no such pool", plan)
        if pool.isActive():
            pool.destroy()
        pool.undefine()
    return Result(plan.action, True, "stopped and undefined (the Ceph pool is kept)", plan)


def list_volumes(conn, name: str):
    """``virsh vol-list``: the volumes (RBD images) of a libvirt pool, as a DataFrame."""
    import pandas as pd
    with translated(f"libvirt pool {name}"):
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
    check_name(pool, "libvirt pool")
    nbytes = parse_size(size, what="volume size")
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = check_name(name, "volume")
    ET.SubElement(root, "capacity", unit="bytes").text = str(nbytes)
    plan = Plan(f"create volume {pool}/{name}").add("virsh", "vol-create-as", pool, name,
                                                    f"{nbytes}b")
    if dry_run:
        return plan
    with translated(f"volume {pool}/{name}"):
        p = conn.storagePoolLookupByName(check_name(pool, "libvirt pool"))
        p.createXML(ET.tostring(root, encoding="unicode"), 0)
    return Result(plan.action, True, "created", plan)


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
    with translated(f"volume {pool}/{source}"):
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
    with translated(f"volume {pool}/{name}"):
        p = conn.storagePoolLookupByName(check_name(pool, "libvirt pool"))
        try:
            vol = p.storageVolLookupByName(check_name(name, "volume"))
        except libvirt.libvirtError as exc:
            if missing_ok and exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return Result(plan.action, False, "unchanged: no such volume", plan)
            raise
        vol.delete(0)
    return Result(plan.action, True, "deleted", plan)
