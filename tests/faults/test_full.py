"""A full cluster: every write refused at once and named, reads and listing working, and
one explicit, confirmed way to free space (``free_space``) after which writes work again
without restarting anything."""
import os
import time

import rbdnb
from tests.faults.conftest import answer, cli, fill_image, start_sandbox, within, write_random

FAST = 10  # seconds: "at once", with room for a loaded machine


def fill_until_full(box, spec: str) -> float:
    """Write into image ``spec`` until the monitor flags its pool full; returns seconds.

    A full pool pauses plain writes: the first one that times out (5 s) ends the fill."""
    import rados
    import rbd
    pool, name = spec.split("/")
    cluster = rados.Rados(conffile=str(box.conf_path), rados_id="admin",
                          conf={"keyring": str(box.keyring_path), "rados_osd_op_timeout": "5",
                                "rados_mon_op_timeout": "5"})
    cluster.connect(timeout=10)
    t0 = time.monotonic()
    try:
        with cluster.open_ioctx(pool) as ioctx, rbd.Image(ioctx, name) as image:
            chunk = os.urandom(4 << 20)
            for i in range(image.size() // len(chunk)):
                try:
                    image.write(chunk, i * len(chunk))
                except (rbd.Error, rados.Error):
                    break
    finally:
        cluster.shutdown()
    deadline = time.monotonic() + 60
    while "full" not in pool_flags(box, pool):
        assert time.monotonic() < deadline, "the pool was never flagged full"
        time.sleep(1)
    return time.monotonic() - t0


def pool_flags(box, pool: str) -> str:
    return {p["pool_name"]: p.get("flags_names", "")
            for p in cli(box, "ceph", "osd", "dump", json_out=True)["pools"]}[pool]


def test_full_cluster_refuses_writes_and_free_space_recovers(tmp_path, record):
    box = start_sandbox(tmp_path / "full", osd_size="1G")
    source = write_random(tmp_path / "small.raw", 4 << 20)
    try:
        with rbdnb.connect(str(box.conf_path), timeout=5) as cluster:
            rbdnb.create_pool(cluster, "f", 8)
            rbdnb.create_image(cluster, "f/golden", "32M")
            fill_image(cluster, "f/golden", 8 << 20)
            rbdnb.create_snapshot(cluster, "f/golden@base")
            rbdnb.create_image(cluster, "f/hog", "2G")
            fill_seconds = fill_until_full(box, "f/hog")
            # Every write: ClusterFull at once, naming the pool and the way out.
            rows = []
            for what, call in [
                    ("create_image", lambda: rbdnb.create_image(cluster, "f/new", "1G")),
                    ("clone_many", lambda: rbdnb.clone_many(cluster, "f/golden@base",
                                                            "f/vm-{i}", count=20)),
                    ("create_snapshot", lambda: rbdnb.create_snapshot(cluster, "f/golden@s2")),
                    ("import_image", lambda: rbdnb.import_image(cluster, source, "f/imp")),
                    ("remove_image", lambda: rbdnb.remove_image(cluster, "f/hog",
                                                                confirm=True))]:
                error, seconds = answer(FAST + 20, call, what)
                assert isinstance(error, rbdnb.ClusterFull), (what, error)
                assert "pool f" in str(error) and "free_space" in str(error), str(error)
                assert seconds < FAST, (what, seconds)
                rows.append((what, seconds))
            # Reads and listing keep working.
            names, _ = within(FAST, lambda: rbdnb.image_names(cluster, "f"), "listing")
            assert {"golden", "hog"} <= set(names)
            info, _ = within(FAST, lambda: rbdnb.image_info(cluster, "f/golden"), "info")
            assert info.size == 32 << 20
            # The way out: refused unless confirmed, and while a client (a VM) has the image
            # open, whose data would vanish under it; then it frees space.
            refused, _ = answer(FAST, lambda: rbdnb.free_space(cluster, ["f/hog"]), "free_space")
            assert isinstance(refused, rbdnb.ConfirmationRequired)
            from rbdnb.ceph.images import open_image
            from rbdnb.base.specs import parse_spec
            with open_image(cluster, parse_spec("f/hog")):
                busy, _ = answer(FAST, lambda: rbdnb.free_space(cluster, ["f/hog"],
                                                                confirm=True), "free_space")
            assert isinstance(busy, rbdnb.ImageBusy) and "still has it open" in str(busy)
            assert "hog" in cli(box, "rbd", "ls", "f", json_out=True)
            # A client that closed the image on a full pool may leave its watch behind until
            # the OSD times it out (osd_client_watch_timeout, 30 s): free_space rightly
            # refuses until then, so wait for the watchers to go as an operator would.
            deadline = time.monotonic() + 90
            while cli(box, "rbd", "status", "f/hog", json_out=True).get("watchers"):
                assert time.monotonic() < deadline, "a closed client still watches f/hog"
                time.sleep(1)
            result, free_seconds = within(120, lambda: rbdnb.free_space(
                cluster, ["f/hog"], confirm=True), "free_space")
            assert result.value == ["f/hog"]
            assert "hog" not in cli(box, "rbd", "ls", "f", json_out=True)
            deadline = time.monotonic() + 60
            while "full" in pool_flags(box, "f"):
                assert time.monotonic() < deadline, "still full after freeing space"
                time.sleep(1)
            # Writes work again, on the same connection, without restarting anything.
            made, _ = within(60, lambda: rbdnb.create_image(cluster, "f/new", "1G"), "create")
            assert made.changed
            assert "new" in cli(box, "rbd", "ls", "f", json_out=True)
            ratio = cli(box, "ceph", "osd", "dump", json_out=True)["full_ratio"]
            assert abs(ratio - 0.95) < 1e-6, f"the full ratio was not restored: {ratio}"
        worst = max(s for _, s in rows)
        record(worst, f"filled in {fill_seconds:.0f}s; every write ClusterFull at once "
                      f"({', '.join(f'{w} {s:.1f}s' for w, s in rows)}); reads worked; "
                      f"free_space {free_seconds:.1f}s: {result.message}; writes work again")
    finally:
        box.down()
