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


def _rbd_disks(conn, specs, targets_, auth, cluster, plan: Plan, dry_run: bool) -> list:
    """The RBD disk elements of ``specs`` on ``targets_``. A dry run of a whole runbook may
    come before the libvirt pool their auth is taken from: its plan says so (no elements)."""
    try:
        return [rbd_disk(s, t, auth_for(conn, s, auth, cluster)) for s, t in zip(specs, targets_)]
    except InvalidArgument:
        if not dry_run:
            raise
        plan.note("the disks' monitors and cephx auth: from the libvirt rbd pool serving their "
                  "Ceph pool, which the real run defines first")
        return []


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
    plan = Plan(f"define VM {name}").add("virsh", "define", f"{name}.xml")
    plan.note(f"disks: {', '.join(f'{t}={s}' for s, t in zip(specs, targets(len(specs))))}")
    elements = _rbd_disks(conn, specs, targets(len(specs)), auth, cluster, plan, dry_run)
    xml = domain_xml(name, elements, memory_mib=memory_mib, vcpus=vcpus, boot=boot,
                     console_log=console_log, virt_type=virt_type)
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
    plan = Plan(f"replace disk {target} of {domain} by {spec}").add("virsh", "edit", domain)
    for new in _rbd_disks(conn, [spec], [target], auth, cluster, plan, dry_run):
        plan.note(f"the <disk> with target {target} becomes "
                  f"`{ET.tostring(new, encoding='unicode')}`")
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


def wait_guest(conn, name: str, *, disk: str = "vda", sha256: str | None = None,
               timeout: float = 120, after: int = 0, dry_run: bool = False) -> Result | Plan:
    """Wait until the guest of VM ``name`` has booted and reports ``disk`` (with ``sha256``
    if given) on its console log (reports from byte ``after`` on); a check: it changes
    nothing. Its value is what the console said, and the log's path."""
    from .guest import MARKER, wait_console
    check_domain_name(name)
    check_target(disk)
    plan = Plan(f"the guest of {name} sees {disk}").add("virsh", "console", name)
    plan.note(f"waits up to {timeout:g} s for the guest's report of {disk} on its console log")
    if dry_run:
        return plan
    import libvirt
    dom = _domain(conn, name)
    with translated(f"domain {name}"):
        running = bool(dom.isActive())
        # The running VM's console log (a migrated VM logs to a file of its new host's).
        root = ET.fromstring(dom.XMLDesc(0 if running else libvirt.VIR_DOMAIN_XML_INACTIVE))
    log = root.find("devices/serial/log")
    if log is None:
        raise InvalidArgument(f"domain {name} has no console log to read: define it with "
                              f"a console log (--console-log FILE)")
    log = log.get("file")
    if root.find("os/kernel") is None:
        # Only rbdnb's offline guest (booted from its kernel) reports its disks.
        return Result(plan.action, False, f"not checked: the guest is not rbdnb's offline "
                      f"guest, which reports its disks; its console is logged to {log}", plan)
    if not running:
        raise InvalidArgument(f"domain {name} is not running, so its guest reports nothing: "
                              f"start it first (virsh start {name})")

    def seen_disk(s):
        found = s["disks"].get(disk)
        return s["booted"] and found is not None and sha256 in (None, found["sha256"])
    seen = wait_console(log, seen_disk, timeout=timeout, after=after)
    seen["log"] = log
    digest = seen["disks"][disk]["sha256"]
    shows = MARKER if seen["boots"] else (f"the guest running, up {seen['uptime'] or 0:.0f} s "
                                          f"(it booted on another host)")
    return Result(plan.action, False, f"console shows {shows}; {disk} sha256 {digest[:16]}…",
                  plan, value=seen)


def define_file_vm(conn, name: str, image: str, directory: str, *,
                   boot: GuestBoot | None = None, dry_run: bool = False) -> Result | Plan:
    """A VM with a file disk, as ``virt-install --disk path=...`` makes: ``image`` copied to
    ``DIRECTORY/NAME.qcow2`` (readable by libvirt's QEMU). A VM of that name is left as it is."""
    import os
    import shutil
    import libvirt
    from .xml import check_path, file_disk
    check_domain_name(name)
    disk = os.path.join(check_path(directory, "directory"), f"{name}.qcow2")
    log = os.path.join(directory, f"{name}.console.log")
    plan = Plan(f"define {name} with a file disk").add(
        "cp", image, disk).add("virt-install", "--name", name, "--disk", f"path={disk}",
                               "--import")
    if dry_run:
        return plan
    if find(conn.lookupByName, name, missing=libvirt.VIR_ERR_NO_DOMAIN) is not None:
        return Result(plan.action, False, "unchanged: defined", plan, value=name)
    tmp = f"{disk}.tmp"
    shutil.copyfile(image, tmp)  # a copy killed half-way is never taken for the disk
    os.chmod(tmp, 0o644)
    os.replace(tmp, disk)
    with translated(f"domain {name}"):
        conn.defineXML(domain_xml(name, [file_disk(disk)], boot=boot, console_log=log))
    return Result(plan.action, True, f"defined with {disk}", plan, value=name)


def check_hotplug(conn, cluster: Cluster, domain: str, image: str, *, target: str = "vdb",
                  timeout: float = 120, dry_run: bool = False) -> Result | Plan:
    """Attach ``image`` to the running VM, see the guest read the bytes the host wrote into
    it, detach it again: the VM ends as it began. Creates ``image`` (1 MiB) if missing."""
    import hashlib
    from ..ceph.images import create_image, image_info, open_image
    spec = parse_spec(image)
    check_target(target)
    payload = hashlib.sha256(spec.image_path.encode()).digest() * (1024 * 1024 // 32)
    want = hashlib.sha256(payload).hexdigest()
    check_domain_name(domain)
    try:  # an image made earlier (of any size from 1 MiB) is used as it is
        have = None if dry_run else image_info(cluster, spec).size
    except NotFound:
        have = None
    if have is not None and have < 2**20:
        raise Conflict(f"image {spec} exists with {have} bytes: the check writes 1 MiB")
    made = create_image(cluster, image, have or "1M", exist_ok=True, dry_run=dry_run)
    plan = Plan(f"attach {target} to {domain}, see it in the guest, detach it")
    plan.commands = [*(made if dry_run else made.plan).commands,
                     ["virsh", "attach-device", domain, "disk.xml", "--live", "--config"],
                     ["virsh", "console", domain],
                     ["virsh", "detach-disk", domain, str(spec), "--live", "--config"]]
    plan.note(f"the host writes 1 MiB into {image}; the guest must report sha256 {want[:16]}…")
    if dry_run:
        return plan
    import os
    first = wait_guest(conn, domain, timeout=timeout)  # booted, and its console logged
    if first.message.startswith("not checked"):
        raise InvalidArgument(f"domain {domain}: {first.message}; attach and detach it "
                              f"with attach_rbd and detach_rbd instead")
    with open_image(cluster, spec) as img:
        img.write(payload, 0)
    try:  # only what the guest says from now on counts (a report of an earlier run does not)
        after = os.path.getsize(first.value["log"])
    except OSError:
        after = 0
    attach_rbd(conn, domain, image, target, cluster=cluster)
    try:
        wait_guest(conn, domain, disk=target, sha256=want, timeout=timeout, after=after)
    finally:
        detach_rbd(conn, domain, image)
    return Result(plan.action, made.changed, f"the guest saw {target} with sha256 "
                  f"{want[:16]}…; detached again: the VM is as before", plan, value=want)
