"""VMs with RBD disks: define, start, stop, and attach, detach or replace disks of defined
or running domains."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..base.plan import Plan, Result
from ..base.specs import ImageSpec, parse_spec
from ..base.waiting import wait_until
from ..ceph.cluster import Cluster
from ..errors import (Conflict, DomainExists, DomainNotFound, InvalidArgument,
                      NotFound, Timeout)
from .guest import GuestBoot
from .xml import DEFAULT_MEMORY_MIB, RbdAuth, check_domain_name, check_target, disks_of, domain_xml, is_target, rbd_disk, targets
from .connection import find, translated
from .pools import rbd_pool_auth


def auth_for(conn, spec: ImageSpec, auth: RbdAuth | None,
              cluster: Cluster | None = None) -> RbdAuth:
    """The RBD auth for a disk of ``spec``: ``auth`` if given, else that of the libvirt rbd pool on
    its Ceph pool, else from ``cluster``."""
    if auth is not None:
        return auth
    found = rbd_pool_auth(conn, spec.pool, cluster)
    if found is None:
        raise InvalidArgument(f"no libvirt rbd pool serves Ceph pool {spec.pool}, so its "
                              f"monitors and auth are unknown: call ensure_rbd_pool first, or "
                              f"pass auth=rbd_auth(cluster, client, secret_uuid)")
    return found


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
    elements = [rbd_disk(s, t, auth_for(conn, s, auth, cluster))
                for s, t in zip(specs, targets(len(specs)))]
    xml = domain_xml(name, elements, memory_mib=memory_mib, vcpus=vcpus, boot=boot,
                     console_log=console_log, virt_type=virt_type)
    plan = Plan(f"define VM {name}").add("virsh", "define", f"{name}.xml")
    plan.note(f"disks: {', '.join(f'{t}={s}' for s, t in zip(specs, targets(len(specs))))}")
    if dry_run:
        return plan
    with translated(f"domain {name}"):
        existing = find(conn.lookupByName, name, missing=libvirt.VIR_ERR_NO_DOMAIN)
        if existing is not None:
            if not exist_ok:
                raise DomainExists(f"domain {name} already exists")
            have = sorted(d["source"] for d in disks_of(existing.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
            if have != sorted(s.image_path for s in specs):
                raise Conflict(f"domain {name} exists with other disks ({', '.join(have)})")
            return Result(plan.action, False, "unchanged: defined with these disks", plan,
                          value=name)
        conn.defineXML(xml)
    return Result(plan.action, True, f"defined ({len(specs)} RBD disk(s))", plan, value=name)


def _domain(conn, name: str):
    with translated(f"domain {check_domain_name(name)}"):
        return conn.lookupByName(name)


def start_vm(conn, name: str, *, dry_run: bool = False) -> Result | Plan:
    """``virsh start``."""
    check_domain_name(name)
    plan = Plan(f"start VM {name}").add("virsh", "start", name)
    if dry_run:
        return plan
    dom = _domain(conn, name)
    with translated(f"domain {name}"):
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
    with translated(f"domain {name}"):
        if not dom.isActive():
            return Result(plan.action, False, "unchanged: not running", plan)
        dom.shutdown()
        if not wait_until(lambda: not dom.isActive(), timeout, interval=0.5):
            raise Timeout(f"domain {name} did not shut down within {timeout:g} s: "
                          f"destroy_vm forces it off")
    return Result(plan.action, True, "shut down", plan)


def destroy_vm(conn, name: str, *, dry_run: bool = False) -> Result | Plan:
    """Force the VM off (``virsh destroy``); its definition and disks stay."""
    check_domain_name(name)
    plan = Plan(f"destroy VM {name}").add("virsh", "destroy", name)
    if dry_run:
        return plan
    dom = _domain(conn, name)
    with translated(f"domain {name}"):
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
    with translated(f"domain {name}"):
        if dom.isActive():
            raise InvalidArgument(f"domain {name} is running: destroy or shut it down first")
        dom.undefine()
    return Result(plan.action, True, "undefined (its disks are kept)", plan)


def dump_xml(conn, name: str, *, inactive: bool = False) -> str:
    """``virsh dumpxml`` (``--inactive`` for the persistent definition)."""
    import libvirt
    dom = _domain(conn, name)
    with translated(f"domain {name}"):
        return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0)


def list_disks(conn, name: str, *, inactive: bool = False):
    """The VM's disks as a DataFrame (target, type, protocol, source)."""
    import pandas as pd
    rows = [{k: v for k, v in d.items() if k != "element"}
            for d in disks_of(dump_xml(conn, name, inactive=inactive))]
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
    element = rbd_disk(spec, target, auth_for(conn, spec, auth, cluster))
    xml = ET.tostring(element, encoding="unicode")
    argv = ["virsh", "attach-device", domain, "disk.xml"]
    argv += (["--live"] if live else []) + (["--config"] if persistent else [])
    plan = Plan(f"attach {spec} to {domain} as {target}").add(*argv)
    plan.note(f"disk.xml: `{xml}`")
    if dry_run:
        return plan
    dom = _domain(conn, domain)
    with translated(f"domain {domain}"):
        active = bool(dom.isActive())
        current = disks_of(dom.XMLDesc(0))
        for disk in current:
            if disk["target"] == target:
                if disk["source"] == spec.image_path:
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
    target_given = is_target(image_or_target)
    if not target_given:
        wanted = parse_spec(image_or_target).image_path
    argv = ["virsh", "detach-disk", domain, image_or_target]
    argv += (["--live"] if live else []) + (["--config"] if persistent else [])
    plan = Plan(f"detach {image_or_target} from {domain}").add(*argv)
    if dry_run:
        return plan
    dom = _domain(conn, domain)
    with translated(f"domain {domain}"):
        active = bool(dom.isActive())
        sources = [dom.XMLDesc(0)] + ([dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)]
                                      if persistent else [])
        match = None
        for xml in sources:
            for disk in disks_of(xml):
                if (disk["target"] == image_or_target) if target_given else \
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
            def released() -> bool:
                return all(d["target"] != match["target"] for d in disks_of(dom.XMLDesc(0)))
            if not wait_until(released, timeout, interval=0.5):
                raise Timeout(f"the guest of {domain} did not release {match['target']} "
                              f"within {timeout:g} s")
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
    new = rbd_disk(spec, target, auth_for(conn, spec, auth, cluster))
    plan = Plan(f"replace disk {target} of {domain} by {spec}").add("virsh", "edit", domain)
    plan.note(f"the <disk> with target {target} becomes `{ET.tostring(new, encoding='unicode')}`")
    if dry_run:
        return plan
    dom = _domain(conn, domain)
    with translated(f"domain {domain}"):
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
                    source.get("name") == spec.image_path:
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
