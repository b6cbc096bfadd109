"""Cluster health as the monitor reports it (``ceph status``, ``ceph osd dump``): the one
parser of it, and the one model of it (:class:`Health`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Health:
    """What the monitor says of the cluster: health status and checks, OSDs, manager, PGs,
    space and the full ratios (:func:`read_health`)."""

    status: str = "UNKNOWN"
    checks: dict[str, str] = field(default_factory=dict)
    fsid: str = ""
    osds_total: int = 0
    osds_up: int = 0
    osds_in: int = 0
    full_osds: list[int] = field(default_factory=list)
    nearfull_osds: list[int] = field(default_factory=list)
    mgr_available: bool = False
    pgs_total: int = 0
    pgs_active_clean: int = 0
    pgs_laggy: int = 0
    used_bytes: int = 0
    total_bytes: int = 0
    full_ratio: float = 0.95
    nearfull_ratio: float = 0.85

    @property
    def used_ratio(self) -> float:
        return self.used_bytes / self.total_bytes if self.total_bytes else 0.0

    @property
    def full(self) -> bool:
        return ("OSD_FULL" in self.checks or "POOL_FULL" in self.checks
                or (self.total_bytes > 0 and self.used_ratio >= self.full_ratio))

    @property
    def nearfull(self) -> bool:
        return self.full or "OSD_NEARFULL" in self.checks or (
            self.total_bytes > 0 and self.used_ratio >= self.nearfull_ratio)

    @property
    def ok(self) -> bool:
        """Healthy: HEALTH_OK, the OSD up and in, a manager, every PG active+clean, not full."""
        return (self.status == "HEALTH_OK" and self.osds_up >= 1 and self.osds_in >= 1
                and self.mgr_available and self.pgs_active_clean == self.pgs_total
                and not self.nearfull)

    def describe(self) -> str:
        parts = [self.status]
        parts += [f"{name}: {text}" for name, text in self.checks.items()]
        if not self.mgr_available:
            parts.append("no active manager")
        if self.pgs_active_clean != self.pgs_total:
            parts.append(f"{self.pgs_active_clean}/{self.pgs_total} PGs active+clean")
        if self.pgs_laggy:
            parts.append(f"{self.pgs_laggy} PG(s) laggy: their read lease ran out (the OSD "
                         f"was frozen?); `rbdnb sandbox up` re-peers them if it lasts")
        if self.nearfull and not self.checks:
            parts.append(f"OSD {self.used_ratio:.0%} used")
        return "; ".join(parts)


def read_health(cluster) -> Health:
    """The cluster's health as its monitor reports it, in two monitor commands."""
    status = cluster.mon_command({"prefix": "status"}, "cluster status")
    health = Health(status=status["health"]["status"], fsid=status.get("fsid", ""),
                    checks={name: check.get("summary", {}).get("message", "")
                            for name, check in status["health"].get("checks", {}).items()})
    osdmap = status.get("osdmap", {})
    osdmap = osdmap.get("osdmap", osdmap)  # older releases nest it once more
    health.osds_up = osdmap.get("num_up_osds", 0)
    health.osds_in = osdmap.get("num_in_osds", 0)
    health.mgr_available = bool(status.get("mgrmap", {}).get("available"))
    pgmap = status.get("pgmap", {})
    states = pgmap.get("pgs_by_state", [])
    health.pgs_total = pgmap.get("num_pgs", 0)
    health.pgs_active_clean = sum(s["count"] for s in states
                                  if s["state_name"] == "active+clean")
    health.pgs_laggy = sum(s["count"] for s in states if "laggy" in s["state_name"].split("+"))
    health.used_bytes = pgmap.get("bytes_used", 0)
    health.total_bytes = pgmap.get("bytes_total", 0)
    dump = cluster.osd_dump()
    osds = dump.get("osds", [])
    health.osds_total = len(osds)
    for osd in osds:
        state = set(osd.get("state", []))
        if "full" in state:
            health.full_osds.append(osd["osd"])
        elif "nearfull" in state or "backfillfull" in state:
            health.nearfull_osds.append(osd["osd"])
    health.full_ratio = dump.get("full_ratio") or health.full_ratio
    health.nearfull_ratio = dump.get("nearfull_ratio") or health.nearfull_ratio
    return health
