"""libvirt XML for Ceph RBD, built and read with ElementTree and nothing else: the ceph
secret, rbd storage pools, RBD network disks with monitors and cephx auth, domains. Every
value is validated before it goes into XML (no markup, no control characters)."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ..base.specs import ImageSpec, check_name, parse_client
from ..base.units import check_int
from ..errors import (InvalidArgument,
                      RbdnbError)
from .guest import GuestBoot


DEFAULT_MEMORY_MIB = 256


_TARGET_RE = re.compile(r"(vd|sd|hd)[a-z]{1,2}")


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


_UNSAFE = re.compile(r"[<>&\"'\x00-\x1f\x7f]")


def check_xml_value(value: object, what: str) -> str:
    """A value that goes into XML: a string with no markup and no control characters."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} {value!r} is not valid: expected a non-empty string")
    if _UNSAFE.search(value) or "/>" in value:
        raise InvalidArgument(f"{what} {value!r} is not valid: it may not contain quotes, "
                              f"'<', '>', '&' or control characters")
    return value


def check_path(path: object, what: str) -> str:
    """An absolute path that may go into XML."""
    path = check_xml_value(os.fspath(path) if isinstance(path, os.PathLike) else path, what)
    if not os.path.isabs(path):
        raise InvalidArgument(f"{what} {path!r} is not valid: expected an absolute path")
    return path


def is_target(value: object) -> bool:
    """Whether ``value`` names a disk target (vda, sdb, ...) rather than an image."""
    return isinstance(value, str) and bool(_TARGET_RE.fullmatch(value))


def check_target(target: object) -> str:
    """A disk target (vda, vdb, sdb, ...)."""
    if not isinstance(target, str) or not _TARGET_RE.fullmatch(target):
        raise InvalidArgument(f"disk target {target!r} is not valid: expected e.g. vda, vdb, sdb")
    return target


def check_uuid(value: object) -> str:
    """A UUID in libvirt's form (8-4-4-4-12 lower-case hex)."""
    if not isinstance(value, str) or not _UUID_RE.fullmatch(value):
        raise InvalidArgument(f"UUID {value!r} is not valid: expected 8-4-4-4-12 lower-case hex")
    return value


def check_domain_name(name: object) -> str:
    """A domain name rbdnb accepts (letters, digits, ``.``, ``_``, ``-``)."""
    return check_name(name, "domain")


def secret_usage(client: str) -> str:
    """The usage name of the libvirt secret holding ``client``'s key: ``client.NAME secret``."""
    return f"client.{parse_client(client)} secret"


def secret_xml(client: str, uuid: str | None = None) -> str:
    """``virsh secret-define``'s XML for the ceph secret of ``client`` (private, not ephemeral)."""
    root = ET.Element("secret", ephemeral="no", private="yes")
    if uuid:
        ET.SubElement(root, "uuid").text = check_uuid(uuid)
    ET.SubElement(ET.SubElement(root, "usage", type="ceph"), "name").text = secret_usage(client)
    return ET.tostring(root, encoding="unicode")


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


def rbd_pool_xml(name: str, ceph_pool: str, auth: RbdAuth) -> str:
    """``virsh pool-define``'s XML for an rbd storage pool on Ceph pool ``ceph_pool``."""
    root = ET.Element("pool", type="rbd")
    ET.SubElement(root, "name").text = check_name(name, "libvirt pool")
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "name").text = check_name(ceph_pool, "pool")
    for host, port in auth.hosts:
        ET.SubElement(source, "host", name=host, port=str(port))
    a = ET.SubElement(source, "auth", type="ceph", username=auth.username)
    ET.SubElement(a, "secret", uuid=auth.secret_uuid)
    return ET.tostring(root, encoding="unicode")


def pool_source(xml: str) -> dict:
    """What an rbd storage pool's XML names: type, Ceph pool, monitors, user, secret."""
    root = ET.fromstring(xml)
    src = root.find("source")
    auth = src.find("auth") if src is not None else None
    return {"type": root.get("type"), "name": src.findtext("name") if src is not None else None,
            "hosts": [(h.get("name"), int(h.get("port") or 6789)) for h in src.findall("host")]
            if src is not None else [],
            "username": auth.get("username") if auth is not None else None,
            "secret": auth.find("secret").get("uuid") if auth is not None else None}


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


def rbd_disk(spec: ImageSpec, target: str, auth: RbdAuth, bus: str = "virtio") -> ET.Element:
    """An RBD network ``<disk>`` element with monitors and cephx auth."""
    disk = ET.Element("disk", type="network", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="raw", cache="writeback")
    a = ET.SubElement(disk, "auth", username=auth.username)
    ET.SubElement(a, "secret", type="ceph", uuid=auth.secret_uuid)
    source = ET.SubElement(disk, "source", protocol="rbd", name=spec.image_path)
    for host, port in auth.hosts:
        ET.SubElement(source, "host", name=host, port=str(port))
    ET.SubElement(disk, "target", dev=check_target(target), bus=bus)
    return disk


def targets(n: int) -> list[str]:
    """The first ``n`` virtio disk targets: vda, vdb, ..."""
    return [f"vd{chr(ord('a') + i)}" for i in range(n)]


def domain_xml(name: str, disks: list[ET.Element], *, memory_mib: int = DEFAULT_MEMORY_MIB,
               vcpus: int = 1, boot: GuestBoot | None = None, console_log: str | None = None,
               virt_type: str = "auto") -> str:
    """Domain XML for a VM with the given disk elements."""
    check_domain_name(name)
    check_int(memory_mib, "memory_mib", 32, 1024 * 1024)
    check_int(vcpus, "vcpus", 1, 256)
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


def disks_of(xml: str) -> list[dict]:
    """The disks of a domain's XML: target, type, source (``pool/image`` or file), bus."""
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


def file_disk(path: str, target: str = "vda", fmt: str = "qcow2") -> ET.Element:
    """A file-backed disk element (what ``virt-install --disk path=...`` makes)."""
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=check_name(fmt, "disk format"))
    ET.SubElement(disk, "source", file=check_path(path, "disk path"))
    ET.SubElement(disk, "target", dev=check_target(target), bus="virtio")
    return disk
