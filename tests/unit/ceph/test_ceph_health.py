"""The one health model: read from the monitor once (rbdnb.ceph.health.read_health), and what
the preflight, the sandbox and the lab's status bar show is that model."""
from rbdnb.ceph.cluster import Preflight
from rbdnb.ceph.health import Health, read_health


class Monitor:
    """The surface of Cluster that read_health uses, answering like a 1-OSD cluster."""

    def __init__(self, osd_state=("exists", "up")):
        self.osd_state = list(osd_state)

    def mon_command(self, cmd, what, **kinds):
        assert cmd == {"prefix": "status"}
        return {"fsid": "f5", "health": {"status": "HEALTH_WARN", "checks": {
                    "OSD_NEARFULL": {"summary": {"message": "1 nearfull osd(s)"}}}},
                "osdmap": {"num_up_osds": 1, "num_in_osds": 1}, "mgrmap": {"available": True},
                "pgmap": {"num_pgs": 8, "pgs_by_state": [{"state_name": "active+clean",
                                                          "count": 8}],
                          "bytes_used": 870, "bytes_total": 1000}}

    def osd_dump(self):
        return {"full_ratio": 0.95, "nearfull_ratio": 0.85,
                "osds": [{"osd": 0, "up": 1, "state": self.osd_state}]}


def test_read_health_reads_status_and_the_osd_map():
    health = read_health(Monitor(osd_state=("exists", "up", "nearfull")))
    assert (health.fsid, health.status, health.osds_total, health.osds_up) == ("f5", "HEALTH_WARN", 1, 1)
    assert health.checks == {"OSD_NEARFULL": "1 nearfull osd(s)"}
    assert health.nearfull_osds == [0] and health.full_osds == []
    assert health.nearfull and not health.full and not health.ok
    assert abs(health.used_ratio - 0.87) < 1e-9


def test_preflight_shows_the_same_health():
    health = Health(status="HEALTH_OK", fsid="f5", osds_total=1, osds_up=1, used_bytes=100,
                    total_bytes=1000)
    pre = Preflight(health=health, client_version="16.2.11", cluster_versions={},
                    require_min_compat_client="luminous", clone_format=1)
    assert (pre.fsid, pre.status, pre.osds_up, pre.osds_total) == ("f5", "HEALTH_OK", 1, 1)
    assert pre.ok and pre.avail_bytes == 900 and abs(pre.used_ratio - 0.1) < 1e-9
    assert "clone format" in pre.to_frame().index
    health.full_osds.append(0)
    assert not pre.ok
