"""The sandbox's conf, keys and checks, without starting anything."""
import base64
import os
import re
import socket
import struct
import time

import pytest

from rbdnb import sandbox as sb
from rbdnb.errors import InvalidArgument, MissingTool, NotWritable
from rbdnb.base import proc as _proc

KEY_SHAPE = re.compile(r"^AQ[A-Za-z0-9+/]{36}==$")  # 28 bytes in base64


def test_new_key_is_a_cephx_aes_key():
    key = sb.new_cephx_key()
    assert KEY_SHAPE.match(key)
    raw = base64.b64decode(key)
    kind, _created, _nsec, length = struct.unpack("<HIIH", raw[:12])
    assert (kind, length, len(raw)) == (1, 16, 28)
    assert sb.new_cephx_key() != key


def test_keyring_text_matches_ceph_authtool_layout():
    text = sb.render_keyring({"client.admin": ("KEY", {"mon": "allow *", "osd": "allow *"})})
    assert text == '[client.admin]\n\tkey = KEY\n\tcaps mon = "allow *"\n\tcaps osd = "allow *"\n'


@pytest.mark.parametrize("port, addr", [(6789, "v1:127.0.0.1:6789"), (3300, "v2:127.0.0.1:3300"),
                                        (40123, "v2:127.0.0.1:40123")])
def test_mon_address_speaks_what_a_bare_host_port_means(port, addr):
    assert sb.mon_address(port) == addr


def test_conf_is_loopback_cephx_with_client_timeouts(tmp_path):
    conf = sb.render_conf(tmp_path, fsid="f" * 8, port=40123, store="memstore", osd_size=2**33)
    assert "mon_host = v2:127.0.0.1:40123" in conf
    for option in ("auth_cluster_required = cephx", "auth_client_required = cephx",
                   "client_mount_timeout = 30", "rados_osd_op_timeout = 30",
                   "rados_mon_op_timeout = 30", "memstore_device_bytes = 8589934592",
                   "osd_objectstore = memstore", "osd_fast_shutdown = false"):
        assert option in conf
    assert re.findall(r"public_addr = (\S+)", conf) == ["127.0.0.1", "127.0.0.1"]
    assert "AQ" not in conf  # keys live in keyrings only
    blue = sb.render_conf(tmp_path, fsid="f", port=1, store="bluestore", osd_size=2**30)
    assert "bluestore_block_size = 1073741824" in blue and "memstore" not in blue


def test_default_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RBDNB_SANDBOX_DIR", str(tmp_path / "box"))
    assert sb.default_dir() == tmp_path / "box"
    monkeypatch.delenv("RBDNB_SANDBOX_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert sb.default_dir() == tmp_path / "state" / "rbdnb" / "sandbox"


@pytest.mark.parametrize("kwargs, message", [
    ({"osd_size": "10Q"}, "OSD size '10Q' is not valid"),
    ({"osd_size": "1M"}, "too small"),
    ({"store": "filestore"}, "store 'filestore' is not valid"),
    ({"port": 70000}, "port 70000 is not valid"),
])
def test_bad_parameters_are_refused_before_anything_happens(tmp_path, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        sb.Sandbox(tmp_path / "box", **kwargs)
    assert not (tmp_path / "box").exists()


def test_missing_binary_names_the_package_and_creates_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_proc, "_EXTRA_PATH", ())
    with pytest.raises(MissingTool, match="install the Debian package ceph-mon"):
        sb.Sandbox(tmp_path / "box").up()
    assert not (tmp_path / "box").exists()


def test_unwritable_dir_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotWritable) as err:
        sb.Sandbox(blocker / "box").up()
    assert str(blocker / "box") in str(err.value) and "\n" not in str(err.value)


def test_port_helpers():
    port = sb.pick_free_port()
    assert sb.port_is_free(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not sb.port_is_free(sock.getsockname()[1])


def test_private_files_are_0600_from_the_start(tmp_path):
    path = tmp_path / "k.keyring"
    old = os.umask(0)
    try:
        sb.write_private(path, "secret")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600


def test_status_of_a_sandbox_that_never_ran(tmp_path):
    status = sb.Sandbox(tmp_path / "none").status()
    assert not status.running and not status.healthy
    assert "not running" in status.summary()
    assert sb.Sandbox(tmp_path / "none").down() == []


def test_health_ok_needs_every_condition():
    good = sb.Health(status="HEALTH_OK", osds_up=1, osds_in=1, mgr_available=True,
                     pgs_total=8, pgs_active_clean=8, used_bytes=10, total_bytes=1000)
    assert good.ok
    for change in ({"status": "HEALTH_WARN"}, {"osds_up": 0}, {"mgr_available": False},
                   {"pgs_active_clean": 7}, {"used_bytes": 960}, {"used_bytes": 900}):
        bad = sb.Health(**{**good.__dict__, **change})
        assert not bad.ok, change
    full = sb.Health(**{**good.__dict__, "used_bytes": 960})
    assert full.full and "96% used" in full.describe()
    flagged = sb.Health(**{**good.__dict__, "checks": {"OSD_FULL": "1 full osd(s)"}})
    assert flagged.full and not flagged.ok


class _FakeMonitor:
    """Answers ``status``/``osd dump`` like a single-OSD cluster whose PGs are laggy until
    the OSD is marked down (what Ceph 16.2 does after the OSD was frozen); the surface of
    :class:`rbdnb.ceph.cluster.Cluster` that health reading uses."""

    def __init__(self):
        self.commands = []
        self.laggy = True

    def mon_command(self, cmd, what, **kinds):
        self.commands.append(cmd["prefix"])
        if cmd["prefix"] == "osd down":
            self.laggy = False
            return None
        states = ([{"state_name": "active+clean", "count": 7},
                   {"state_name": "active+clean+laggy", "count": 1}] if self.laggy
                  else [{"state_name": "active+clean", "count": 8}])
        return {"health": {"status": "HEALTH_OK", "checks": {}},
                "osdmap": {"num_up_osds": 1, "num_in_osds": 1}, "mgrmap": {"available": True},
                "pgmap": {"num_pgs": 8, "pgs_by_state": states, "bytes_used": 10,
                          "bytes_total": 1000}}

    def osd_dump(self):
        self.commands.append("osd dump")
        return {"full_ratio": 0.95, "nearfull_ratio": 0.85}


def _with_monitor(box, monitor):
    import contextlib

    @contextlib.contextmanager
    def client(timeout=10):
        yield monitor
    box._client = client


def test_laggy_pgs_are_not_healthy_and_up_re_peers_them_once(tmp_path, monkeypatch):
    box = sb.Sandbox(tmp_path / "s")
    monitor = _FakeMonitor()
    _with_monitor(box, monitor)
    from rbdnb.ceph.health import read_health
    health = read_health(monitor)
    assert not health.ok and health.pgs_laggy == 1
    assert "1 PG(s) laggy" in health.describe() and "rbdnb sandbox up" in health.describe()
    # Waiting without healing (as at creation) leaves them alone and times out.
    monkeypatch.setattr(sb.Sandbox, "LAGGY_GRACE", 0.3)
    box.timeout = 1
    with pytest.raises(sb.Timeout, match="laggy"):
        box._wait_healthy(deadline=time.monotonic() + 1)
    assert "osd down" not in monitor.commands
    # `up` heals: after the grace, the OSD is marked down once and the PGs re-peer.
    healed = ["libvirtd"]  # what `up` brought back before: healing happens all the same
    assert box._wait_healthy(deadline=time.monotonic() + 10, healed=healed).ok
    assert monitor.commands.count("osd down") == 1
    assert healed[0] == "libvirtd"
    assert healed[1].startswith("osd.0 re-peered (1 PG(s) had been laggy")
