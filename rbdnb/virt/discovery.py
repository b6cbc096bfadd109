"""What libvirt holds that points at one Ceph cluster: libvirt is machine-wide, so a teardown
(``sandbox down``, runbook 99) must find exactly the domains, rbd storage pools and secrets
that use *this* cluster's monitors, and leave everything else alone."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Iterable

from .connection import translated

CEPH_PORT = "6789"  # what libvirt and QEMU assume when a <host> names no port


@dataclass
class ClusterObjects:
    """Names of the domains and rbd pools, and UUIDs of the secrets those pools use."""

    domains: list[str] = field(default_factory=list)
    pools: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


def _hosts(element) -> set[tuple[str, str]]:
    return {(h.get("name"), h.get("port") or CEPH_PORT) for h in element.iter("host")}


def objects_on_cluster(conn, monitors: Iterable[tuple[str, int | str]], *,
                       ceph_pools: Iterable[str] | None = None) -> ClusterObjects:
    """Domains with an RBD disk, and rbd storage pools, on one of ``monitors`` ((host, port)
    pairs) -- and, with ``ceph_pools``, only in those Ceph pools -- plus the secrets the pools
    use. Reads only; a domain or pool that goes away meanwhile is skipped."""
    import libvirt
    mons = {(host, str(port)) for host, port in monitors}
    wanted = None if ceph_pools is None else set(ceph_pools)

    def in_pools(name: str | None) -> bool:
        return wanted is None or (name or "").split("/")[0] in wanted

    found = ClusterObjects()
    with translated("libvirt objects"):
        for dom in conn.listAllDomains():
            try:
                xml = ET.fromstring(dom.XMLDesc(0))
            except libvirt.libvirtError:
                continue  # undefined meanwhile
            for disk in xml.iter("disk"):
                source = disk.find("source")
                if disk.get("type") == "network" and source is not None and \
                        source.get("protocol", "rbd") == "rbd" and _hosts(disk) & mons and \
                        in_pools(source.get("name")):
                    found.domains.append(dom.name())
                    break
        secrets = set()
        for pool in conn.listAllStoragePools(0):
            try:
                xml = ET.fromstring(pool.XMLDesc(0))
            except libvirt.libvirtError:
                continue
            if xml.get("type") == "rbd" and _hosts(xml) & mons and \
                    in_pools(xml.findtext("source/name")):
                found.pools.append(pool.name())
                secrets.update(s.get("uuid") for s in xml.iter("secret") if s.get("uuid"))
        found.secrets = sorted(secrets)
    return found
