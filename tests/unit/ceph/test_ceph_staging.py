"""Work a killed process left half-made (rbdnb.ceph.staging, rbdnb.ceph.clones) on the fake
cluster: a dead writer's client is cut off so its watch cannot keep the leftover busy; the
caller's own client never is."""
import subprocess

import rbdnb
from rbdnb.base.specs import parse_spec
from rbdnb.ceph import journal
from rbdnb.ceph.staging import remove_left_behind

DEAD = "127.0.0.1:0/424242"


def dead_owner() -> dict:
    """An owner record of a process of this host that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    who = journal.owner()
    return {**who, "pid": child.pid, "started": (who["started"] or 0) + 1, "client": DEAD}


def golden(cluster):
    rbdnb.create_pool(cluster, "p")
    rbdnb.create_image(cluster, "p/golden", "8M")
    rbdnb.create_snapshot(cluster, "p/golden@base")


def test_owner_records_the_writing_client(cluster):
    assert journal.owner(cluster)["client"] == cluster.rados.get_addrs()
    assert "client" not in journal.owner()


def test_half_made_clone_watched_by_its_dead_writer_is_cut_off_and_remade(cluster, fake_ceph):
    golden(cluster)
    rbdnb.create_image(cluster, "p/vm-1", "8M")      # no parent, no data: a half-made clone
    fake_ceph.store.pools["p"].images["vm-1"].watchers = [DEAD]
    journal.record(cluster, "p", "", {"clone:vm-1": {"parent": "p/golden@base", **dead_owner()}})
    result = rbdnb.clone_many(cluster, "p/golden@base", "p/vm-{i}", count=2, start=0,
                              exist_ok=True)
    assert result.changed and "1 half-made by an earlier run remade" in result.message
    assert fake_ceph.store.pools["p"].images["vm-1"].parent == ("p", "golden", "base")
    assert DEAD in fake_ceph.store.blocklist
    assert cluster.rados.get_addrs() not in fake_ceph.store.blocklist


def test_the_callers_own_client_is_never_blocklisted(cluster, fake_ceph):
    golden(cluster)
    rbdnb.create_image(cluster, "p/left", "8M")
    own = cluster.rados.get_addrs()
    fake_ceph.store.pools["p"].images["left"].watchers = [own]
    gone = remove_left_behind(cluster, parse_spec("p/left"), dead_writer=True, wait=0,
                              what="staging image", client=own)
    assert gone is False and "left" in fake_ceph.store.pools["p"].images
    assert own not in fake_ceph.store.blocklist


def test_a_writer_not_known_dead_is_never_cut_off(cluster, fake_ceph):
    golden(cluster)
    rbdnb.create_image(cluster, "p/left", "8M")
    fake_ceph.store.pools["p"].images["left"].watchers = [DEAD]
    gone = remove_left_behind(cluster, parse_spec("p/left"), dead_writer=None, wait=0,
                              what="staging image", client=DEAD)
    assert gone is False and not fake_ceph.store.blocklist
