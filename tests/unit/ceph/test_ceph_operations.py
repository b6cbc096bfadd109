"""The Ceph core (rbdnb.ceph: pools, images, snapshots, clones, copy) on the fake cluster of
tests/fakes/ceph.py: fast, and the same code that runs against the real sandbox (the
integration tests check it there, against the real CLIs)."""
import pytest

import rbdnb


def test_pools_create_list_delete(cluster, fake_ceph):
    made = rbdnb.create_pool(cluster, "p", 16)
    assert made.changed and "p" in fake_ceph.store.pools
    assert fake_ceph.store.pools["p"].applications == {"rbd": {}}
    again = rbdnb.create_pool(cluster, "p", exist_ok=True)
    assert not again.changed and again.message.startswith("unchanged")
    with pytest.raises(rbdnb.PoolExists, match="pool p already exists"):
        rbdnb.create_pool(cluster, "p")
    with pytest.raises(rbdnb.Conflict, match="pg_num 16, not 32"):
        rbdnb.create_pool(cluster, "p", 32, exist_ok=True)
    assert "p" in list(rbdnb.list_pools(cluster)["pool"])
    with pytest.raises(rbdnb.ConfirmationRequired):
        rbdnb.delete_pool(cluster, "p")
    assert "p" in fake_ceph.store.pools
    assert rbdnb.delete_pool(cluster, "p", confirm=True).changed
    assert "p" not in fake_ceph.store.pools


def test_images_create_resize_info_rename_remove(cluster, fake_ceph):
    rbdnb.create_pool(cluster, "p")
    made = rbdnb.create_image(cluster, "p/a", "1G")
    assert made.changed and made.value.size == 1 << 30
    assert not rbdnb.create_image(cluster, "p/a", "1G", exist_ok=True).changed
    with pytest.raises(rbdnb.Conflict, match="exists with size 1G"):
        rbdnb.create_image(cluster, "p/a", "2G", exist_ok=True)
    assert rbdnb.resize_image(cluster, "p/a", "2G").changed
    with pytest.raises(rbdnb.ConfirmationRequired, match="allow_shrink"):
        rbdnb.resize_image(cluster, "p/a", "1G")
    assert fake_ceph.store.pools["p"].images["a"].size == 2 << 30
    info = rbdnb.image_info(cluster, "p/a")
    assert (info.size, info.format, info.parent) == (2 << 30, 2, None)
    assert "layering" in info.features
    assert rbdnb.rename_image(cluster, "p/a", "b").changed
    assert rbdnb.image_names(cluster, "p") == ["b"]
    assert list(rbdnb.list_images(cluster, "p")["name"]) == ["b"]
    with pytest.raises(rbdnb.ConfirmationRequired):
        rbdnb.remove_image(cluster, "p/b")
    assert rbdnb.remove_image(cluster, "p/b", confirm=True).changed
    assert not rbdnb.remove_image(cluster, "p/b", confirm=True, missing_ok=True).changed
    with pytest.raises(rbdnb.ImageNotFound, match="image p/b not found"):
        rbdnb.image_info(cluster, "p/b")
    with pytest.raises(rbdnb.PoolNotFound, match="pool nope"):
        rbdnb.image_names(cluster, "nope")


def test_snapshots_protect_rollback_purge(cluster, fake_ceph):
    from rbdnb.ceph.images import open_image
    from rbdnb.base.specs import parse_spec
    rbdnb.create_pool(cluster, "p")
    rbdnb.create_image(cluster, "p/a", "16M")
    with open_image(cluster, parse_spec("p/a")) as image:
        image.write(b"before", 0)
    assert rbdnb.create_snapshot(cluster, "p/a@s").changed
    assert not rbdnb.create_snapshot(cluster, "p/a@s", exist_ok=True).changed
    with open_image(cluster, parse_spec("p/a")) as image:
        image.write(b"after!", 0)
    with pytest.raises(rbdnb.ConfirmationRequired):
        rbdnb.rollback_snapshot(cluster, "p/a@s")
    assert rbdnb.rollback_snapshot(cluster, "p/a@s", confirm=True).changed
    with open_image(cluster, parse_spec("p/a"), read_only=True) as image:
        assert image.read(0, 6) == b"before"
    assert rbdnb.protect_snapshot(cluster, "p/a@s").changed
    assert not rbdnb.protect_snapshot(cluster, "p/a@s").changed
    with pytest.raises(rbdnb.SnapshotProtected):
        rbdnb.remove_snapshot(cluster, "p/a@s")
    with pytest.raises(rbdnb.ImageHasSnapshots):
        rbdnb.remove_image(cluster, "p/a", confirm=True)
    assert list(rbdnb.list_snapshots(cluster, "p/a")["name"]) == ["s"]
    assert rbdnb.remove_image(cluster, "p/a", confirm=True, purge_snapshots=True).changed
    assert "a" not in fake_ceph.store.pools["p"].images


def test_clones_of_a_golden_image_read_its_data_and_flatten(cluster, fake_ceph):
    from rbdnb.ceph.images import open_image
    from rbdnb.base.specs import parse_spec
    rbdnb.create_pool(cluster, "p")
    rbdnb.create_image(cluster, "p/golden", "16M")
    with open_image(cluster, parse_spec("p/golden")) as image:
        image.write(b"golden bytes", 4096)
    rbdnb.create_snapshot(cluster, "p/golden@base")
    made = rbdnb.clone_many(cluster, "p/golden@base", "p/vm-{i:02d}", count=5)
    assert made.changed and made.message.startswith("5 created")
    # v1 clones (require_min_compat_client luminous): rbdnb protected the snapshot first.
    assert fake_ceph.store.pools["p"].images["golden"].snaps["base"].protected
    kids = rbdnb.children(cluster, "p/golden@base")
    assert sorted(kids["pool"] + "/" + kids["image"]) == [f"p/vm-{i:02d}" for i in range(1, 6)]
    again = rbdnb.clone_many(cluster, "p/golden@base", "p/vm-{i:02d}", count=5, exist_ok=True)
    assert not again.changed and "5 unchanged" in again.message
    with open_image(cluster, parse_spec("p/vm-03"), read_only=True) as image:
        assert image.read(4096, 12) == b"golden bytes"
    assert rbdnb.image_info(cluster, "p/vm-03").parent == "p/golden@base"
    # A clone's parent cannot lose its snapshot, nor the snapshot its protection.
    with pytest.raises(rbdnb.ImageHasChildren):
        rbdnb.unprotect_snapshot(cluster, "p/golden@base")
    assert rbdnb.flatten(cluster, "p/vm-03").changed
    assert rbdnb.image_info(cluster, "p/vm-03").parent is None
    with open_image(cluster, parse_spec("p/vm-03"), read_only=True) as image:
        assert image.read(4096, 12) == b"golden bytes"
    assert "vm-03" not in list(rbdnb.children(cluster, "p/golden@base")["image"])
    # An image of that name that is not a clone of it (the flattened one; one made apart) is
    # a conflict, never "unchanged", and nothing is made before that is known.
    with pytest.raises(rbdnb.Conflict, match="p/vm-03 exists but is not a clone"):
        rbdnb.clone_many(cluster, "p/golden@base", "p/vm-{i:02d}", count=8, exist_ok=True)
    rbdnb.create_image(cluster, "p/other-2", "16M")
    with pytest.raises(rbdnb.Conflict, match="p/other-2 exists but is not a clone"):
        rbdnb.clone_many(cluster, "p/golden@base", "p/other-{i}", count=3, exist_ok=True)
    assert "vm-06" not in fake_ceph.store.pools["p"].images
    assert "other-1" not in fake_ceph.store.pools["p"].images


def test_copy_is_whole_and_a_rerun_verifies_it(cluster, fake_ceph):
    from rbdnb.ceph.images import open_image
    from rbdnb.base.specs import parse_spec
    rbdnb.create_pool(cluster, "p")
    rbdnb.create_image(cluster, "p/src", "8M")
    with open_image(cluster, parse_spec("p/src")) as image:
        image.write(b"x" * 5000, 1 << 20)
    assert rbdnb.copy_image(cluster, "p/src", "p/dst").changed
    assert rbdnb.checksum_image(cluster, "p/dst") == rbdnb.checksum_image(cluster, "p/src")
    again = rbdnb.copy_image(cluster, "p/src", "p/dst", exist_ok=True)
    assert not again.changed and "completed copy" in again.message
    assert sorted(fake_ceph.store.pools["p"].images) == ["dst", "src"]  # no staging left


def test_every_operation_as_a_dry_run_changes_nothing(cluster, fake_ceph):
    import copy
    rbdnb.create_pool(cluster, "p")
    rbdnb.create_image(cluster, "p/golden", "16M")
    rbdnb.create_snapshot(cluster, "p/golden@base")
    before = copy.deepcopy(fake_ceph.store.pools)
    for call in (lambda: rbdnb.create_pool(cluster, "q", dry_run=True),
                 lambda: rbdnb.delete_pool(cluster, "p", confirm=True, dry_run=True),
                 lambda: rbdnb.create_image(cluster, "p/x", "1G", dry_run=True),
                 lambda: rbdnb.resize_image(cluster, "p/golden", "1G", dry_run=True),
                 lambda: rbdnb.remove_image(cluster, "p/golden", confirm=True, dry_run=True),
                 lambda: rbdnb.rename_image(cluster, "p/golden", "g2", dry_run=True),
                 lambda: rbdnb.create_snapshot(cluster, "p/golden@s2", dry_run=True),
                 lambda: rbdnb.protect_snapshot(cluster, "p/golden@base", dry_run=True),
                 lambda: rbdnb.clone(cluster, "p/golden@base", "p/c", dry_run=True),
                 lambda: rbdnb.clone_many(cluster, "p/golden@base", "p/c{i}", count=3,
                                          dry_run=True),
                 lambda: rbdnb.copy_image(cluster, "p/golden", "p/cp", dry_run=True)):
        assert isinstance(call(), rbdnb.Plan)
    assert fake_ceph.store.pools == before


def test_users_least_privilege_and_keys_never_shown(cluster, fake_ceph):
    rbdnb.create_pool(cluster, "p")
    made = rbdnb.create_user(cluster, "libvirt", ["p"])
    assert made.changed
    caps = fake_ceph.store.users["client.libvirt"]["caps"]
    assert caps["osd"] == "profile rbd pool=p" and caps["mon"] == "profile rbd"
    assert not rbdnb.create_user(cluster, "libvirt", ["p"], exist_ok=True).changed
    key = rbdnb.get_key(cluster, "libvirt")
    real = fake_ceph.store.users["client.libvirt"]["key"]
    assert real not in repr(key) and real not in str(key) and key.reveal() == real
    frame = rbdnb.list_users(cluster)
    assert "client.libvirt" in list(frame["entity"]) and real not in frame.to_string()
    assert rbdnb.delete_user(cluster, "libvirt", confirm=True).changed
    assert "client.libvirt" not in fake_ceph.store.users


def test_long_listing_concurrent_in_name_order_skips_what_vanishes(cluster, fake_ceph,
                                                                    monkeypatch):
    """list_images opens images several at a time, keeps rbd ls -l's order (by name), calls
    progress for each, and leaves out (and names) an image removed while the pool is read."""
    import threading
    from tests.fakes import ceph as fake
    rbdnb.create_pool(cluster, "p")
    for i in range(40):
        rbdnb.create_image(cluster, f"p/img-{39 - i:02d}", "4M")
    rbdnb.create_snapshot(cluster, "p/img-00@s")
    rbdnb.protect_snapshot(cluster, "p/img-00@s")
    rbdnb.clone(cluster, "p/img-00@s", "p/kid")
    in_flight, peak, lock = [0], [0], threading.Lock()
    opened = fake.Image.__init__

    def slow_open(self, ioctx, name, *a, **kw):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            threading.Event().wait(0.01)
            if name == "img-07":  # removed after rbd.RBD().list() named it
                ioctx.pool.images.pop(name, None)
            opened(self, ioctx, name, *a, **kw)
        finally:
            with lock:
                in_flight[0] -= 1
    monkeypatch.setattr(fake.Image, "__init__", slow_open)
    seen = []
    df = rbdnb.list_images(cluster, "p", concurrency=8, progress=lambda d, t: seen.append((d, t)))
    names = [f"img-{i:02d}" for i in range(40) if i != 7] + ["kid"]
    assert list(df["name"]) == names
    assert df.attrs["skipped"] == ["img-07"]
    assert seen[-1] == (41, 41) and len(seen) == 41
    assert 1 < peak[0] <= 8
    kid = df[df["name"] == "kid"].iloc[0]
    assert kid["parent"] == "p/img-00@s"
    assert df[df["name"] == "img-00"].iloc[0]["protected_snapshots"] == "s"
    with pytest.raises(rbdnb.InvalidArgument, match="concurrency"):
        rbdnb.list_images(cluster, "p", concurrency=0)


def test_clone_many_refuses_a_count_the_pool_quota_cannot_hold_before_the_first(cluster,
                                                                                 fake_ceph):
    rbdnb.create_pool(cluster, "p")
    rbdnb.create_image(cluster, "p/golden", "4M")
    rbdnb.create_snapshot(cluster, "p/golden@base")
    fake_ceph.store.pools["p"].quota_max_objects = 30
    before = rbdnb.image_names(cluster, "p")
    with pytest.raises(rbdnb.ClusterFull, match=r"pool p can hold about 10 more clones, not 50: "
                       r"its quota is 30 objects.*ceph osd pool set-quota p max_objects"):
        rbdnb.clone_many(cluster, "p/golden@base", "p/vm-{i:02d}", count=50)
    assert rbdnb.image_names(cluster, "p") == before
    assert rbdnb.clone_many(cluster, "p/golden@base", "p/vm-{i:02d}", count=10).changed
