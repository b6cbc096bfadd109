"""A sandbox of several hosts and sites, without daemons: the counts it takes, where each
host keeps its state and how it is reached, what the environment says."""
import os
import stat

import pytest

from rbdnb.errors import InvalidArgument, SandboxError
from rbdnb.sandbox import Sandbox, hosts, sites


@pytest.mark.parametrize("kwargs", [{"hosts": 0}, {"hosts": 9}, {"hosts": True},
                                    {"hosts": "2"}, {"sites": 0}, {"sites": 3},
                                    {"sites": 1.5}])
def test_bad_counts_are_refused_before_anything_starts(tmp_path, kwargs):
    with pytest.raises(InvalidArgument):
        Sandbox(tmp_path / "box", **kwargs)
    assert not (tmp_path / "box").exists()


def test_a_root_host_lives_in_the_sandbox_and_is_reached_by_its_socket(monkeypatch, tmp_path):
    monkeypatch.setattr(hosts.paths, "privileged", lambda: True)
    base = hosts.host_base(tmp_path, "host2")
    assert base == tmp_path / "hosts" / "host2"
    assert hosts.host_uri(base) == f"qemu:///system?socket={base}/sock/libvirt-sock"


def test_an_unprivileged_host_has_a_short_private_directory(monkeypatch, tmp_path):
    monkeypatch.setattr(hosts.paths, "privileged", lambda: False)
    monkeypatch.setattr(hosts.tempfile, "gettempdir", lambda: str(tmp_path))
    deep = tmp_path / ("x" * 60) / "sandbox"
    base = hosts.host_base(deep, "host2")
    assert base.parent == tmp_path and base.name.endswith("-host2")
    assert str(os.geteuid()) in base.name
    # The longest socket a session daemon makes there: a VM's monitor socket.
    monitor = base / "c/libvirt/qemu/lib/domain-999-" / ("n" * 20) / "monitor.sock"
    assert len(str(monitor)) - len(str(tmp_path)) + len("/tmp") < 108
    assert hosts.host_uri(base).startswith("qemu:///session?socket=") and \
        hosts.host_uri(base).endswith("/r/libvirt/libvirt-sock")
    hosts._private_base(base)
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    base.chmod(0o755)  # someone made it readable: refused
    with pytest.raises(SandboxError, match="not a private directory"):
        hosts._private_base(base)


def test_the_environment_names_every_host_and_site(tmp_path):
    box = Sandbox(tmp_path / "box")
    (tmp_path / "box").mkdir()
    box._save_state({"hosts": [{"name": "host2", "uri": "qemu:///system?socket=/s"}],
                     "sites": [{"name": "b", "dir": str(tmp_path / "box/sites/b")}]})
    env = box.env()
    assert env["RBDNB_LIBVIRT_URIS"].split() == [box.libvirt_uri, "qemu:///system?socket=/s"]
    assert env["RBDNB_SITES"] == (f"a={box.conf_path} "
                                  f"b={tmp_path / 'box/sites/b/ceph.conf'}")
    assert box.host_uris()[1] == "qemu:///system?socket=/s"
    assert sites.site_dir(box.dir, "b") == box.dir / "sites" / "b"


def test_a_dry_run_up_says_what_hosts_and_sites_it_would_start(tmp_path):
    plan = Sandbox(tmp_path / "box", hosts=3, sites=2).up(dry_run=True)
    text = str(plan)
    assert "host2" in text and "host3" in text and "site b" in text
    assert not (tmp_path / "box").exists()
