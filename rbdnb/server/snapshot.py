"""One look at everything a user wants to see at a glance: the cluster, libvirt, KVM or TCG.

``snapshot()`` never raises for an unreachable cluster or daemon: what could not be
reached is reported as such, within ``timeout`` seconds.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from ..errors import RbdnbError


@dataclass
class Snapshot:
    """What the status bar shows: the cluster's :class:`~rbdnb.ceph.health.Health` reduced to a
    colour and a line, plus libvirt's reachability and KVM or TCG."""

    reachable: bool
    health: str                       # HEALTH_OK | HEALTH_WARN | HEALTH_ERR | UNREACHABLE
    message: str                      # one line: the checks, or why it is unreachable
    fsid: str | None = None
    conf: str | None = None
    used_ratio: float = 0.0
    total_bytes: int = 0
    full: bool = False
    nearfull: bool = False
    checks: dict[str, str] = field(default_factory=dict)
    libvirt_uri: str | None = None
    libvirt_reachable: bool = False
    virtualization: str = "TCG"       # KVM | TCG
    # Every libvirt host of the fleet (uri, reachable) and every further site (name, conf,
    # reachable, health): a sandbox up with --hosts 2 --sites 2 shows two of each.
    hosts: list[dict] = field(default_factory=list)
    sites: list[dict] = field(default_factory=list)
    checked_at: float = 0.0
    seconds: float = 0.0

    @property
    def level(self) -> str:
        """ok | warn | error: the colour to show."""
        if not self.reachable or self.health == "HEALTH_ERR" or self.full:
            return "error"
        if self.health != "HEALTH_OK" or self.nearfull or not self.libvirt_reachable:
            return "warn"
        if not all(h["reachable"] for h in self.hosts) or \
                not all(s["reachable"] and s["health"] == "HEALTH_OK" for s in self.sites):
            return "warn"
        return "ok"

    def to_json(self) -> dict:
        return {**asdict(self), "level": self.level}


def snapshot(conf: str | None = None, *, libvirt_uri: str | None = None,
             timeout: float = 5) -> Snapshot:
    """The cluster's health and fullness, libvirt's reachability, and KVM or TCG."""
    from ..ceph.cluster import connect, resolve_conf
    from ..ceph.health import read_health
    from ..sandbox import libvirt_reachable
    from ..virt import default_uri, kvm_usable
    t0 = time.monotonic()
    uri = libvirt_uri or default_uri()
    snap = Snapshot(reachable=False, health="UNREACHABLE", message="", libvirt_uri=uri,
                    virtualization="KVM" if kvm_usable() else "TCG", checked_at=time.time())
    try:
        snap.conf = resolve_conf(conf, None)[0]
        with connect(conf, timeout=timeout) as cluster:
            health = read_health(cluster)
        snap.reachable, snap.health, snap.fsid = True, health.status, health.fsid
        snap.checks = dict(health.checks)
        snap.used_ratio, snap.total_bytes = round(health.used_ratio, 4), health.total_bytes
        snap.full = bool(health.full_osds) or health.full
        snap.nearfull = bool(health.nearfull_osds) or health.nearfull
        snap.message = "; ".join(f"{k}: {v}" for k, v in health.checks.items()) or health.status
    except RbdnbError as exc:
        snap.message = str(exc)
    snap.libvirt_reachable = libvirt_reachable(uri)
    snap.hosts, snap.sites = _topology(uri, snap.libvirt_reachable, timeout)
    snap.seconds = round(time.monotonic() - t0, 3)
    return snap


def _topology(uri: str, reachable: bool, timeout: float) -> tuple[list[dict], list[dict]]:
    """The fleet's hosts besides ``uri`` and the sites besides this cluster, each asked at
    once (a host or site that does not answer within ``timeout`` s is shown as such)."""
    from concurrent.futures import ThreadPoolExecutor
    from ..ceph.cluster import connect
    from ..ceph.health import read_health
    from ..ceph.mirror import site_confs
    from ..sandbox import libvirt_reachable
    from ..virt import fleet_of
    try:
        others = [u for u in fleet_of(uri) if u != uri]
    except RbdnbError:
        others = []
    sites = {name: conf for name, conf in site_confs().items() if name != "a"}

    def site(item):
        name, conf = item
        try:
            with connect(conf, timeout=timeout) as cluster:
                health = read_health(cluster)
            return {"name": name, "conf": conf, "reachable": True, "health": health.status}
        except RbdnbError as exc:
            return {"name": name, "conf": conf, "reachable": False, "health": "UNREACHABLE",
                    "message": str(exc)}

    with ThreadPoolExecutor(max_workers=8) as pool:
        hosts = list(pool.map(lambda u: {"uri": u, "reachable": libvirt_reachable(
            u, timeout=timeout)}, others))
        found = list(pool.map(site, sites.items()))
    hosts = [{"uri": uri, "reachable": reachable}] + hosts if others else []
    return hosts, found
