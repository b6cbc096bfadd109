"""A process killed half-way (SIGKILL, and SIGKILL of its whole process group), run again.

The re-run either completes the job, verified by checksum against the source with the
real ``rbd`` CLI, or refuses in one line; it never reports success or "unchanged" for
something incomplete, and nothing half-made ever appears under the final name.
"""
import time

import pytest

import rbdnb
from tests.faults.conftest import (Worker, cli, file_sha256, fill_image,
                                   rbd_sha256, within, write_random)

KILLS = ["process", "group"]


@pytest.fixture
def golden(fresh):
    """Pool ``f``, a 64M golden image with data, and its snapshot ``@base``."""
    with rbdnb.connect(str(fresh.conf_path)) as cluster:
        rbdnb.create_pool(cluster, "f", 16)
        rbdnb.create_image(cluster, "f/golden", "64M")
        fill_image(cluster, "f/golden", 16 << 20)
        rbdnb.create_snapshot(cluster, "f/golden@base")
    return fresh


@pytest.mark.parametrize("kill", KILLS)
def test_killed_clone_many_completes_on_rerun(golden, kill, record):
    box = golden
    worker = Worker("clone_many", str(box.conf_path), parent="f/golden@base",
                    names="f/vm-{i:03d}", count=200)
    worker.wait_for(lambda: worker.done_fraction >= 0.4, what="clone_many")
    worker.kill(group=kill == "group")
    left = len(cli(box, "rbd", "ls", "f", json_out=True))
    with rbdnb.connect(str(box.conf_path), timeout=60) as cluster:
        result, seconds = within(180, lambda: rbdnb.clone_many(
            cluster, "f/golden@base", "f/vm-{i:03d}", count=200, exist_ok=True), "re-run")
    kids = cli(box, "rbd", "children", "f/golden@base", json_out=True)
    assert sorted(k["image"] for k in kids) == [f"vm-{i:03d}" for i in range(1, 201)]
    want = rbd_sha256(box, "f/golden@base")
    for name in ("vm-001", "vm-100", "vm-200"):
        assert rbd_sha256(box, f"f/{name}") == want
    record(seconds, f"killed with {left - 1} images made; re-run: {result.message}; "
                    f"200 clones of golden@base (rbd children), checksums equal")


@pytest.mark.parametrize("kill", KILLS)
@pytest.mark.parametrize("method", ["qemu-img", "rbd"])
def test_killed_import_never_passes_for_done(golden, tmp_path, method, kill, record):
    box = golden
    source = write_random(tmp_path / "disk.raw", 192 << 20)
    worker = Worker("import", str(box.conf_path), source=str(source), dest="f/imported",
                    method=method)
    if method == "qemu-img":
        worker.wait_for(lambda: worker.done_fraction >= 0.25, what="import")
    else:  # rbd import reports no progress: kill it once it is writing the staging image
        worker.wait_for(lambda: "imported.rbdnb-import" in cli(box, "rbd", "ls", "f").stdout,
                        what="import")
    worker.kill(group=kill == "group")
    names = cli(box, "rbd", "ls", "f", json_out=True)
    if "imported" in names:
        # On a loaded machine the kill may come after the import ended: then the image under
        # its name is whole. Whatever the timing, a partial one never has the name.
        assert rbd_sha256(box, "f/imported") == file_sha256(source)
        cli(box, "rbd", "rm", "--no-progress", "f/imported")
    with rbdnb.connect(str(box.conf_path), timeout=60) as cluster:
        result, seconds = within(180, lambda: rbdnb.import_image(
            cluster, source, "f/imported", method=method, exist_ok=True), "re-run")
        assert result.changed and "unchanged" not in result.message, result.message
        again, _ = within(60, lambda: rbdnb.import_image(
            cluster, source, "f/imported", method=method, exist_ok=True), "third run")
        assert not again.changed and "unchanged" in again.message
    assert rbd_sha256(box, "f/imported") == file_sha256(source)
    assert cli(box, "rbd", "info", "f/imported", json_out=True)["size"] == 192 << 20
    assert "imported.rbdnb-import" not in cli(box, "rbd", "ls", "f", json_out=True)
    record(seconds, "nothing under the name after the kill; re-run imported again "
                    "(sha256 equal, rbd export); third run: unchanged")


def test_killed_export_leaves_no_partial_file(golden, tmp_path, record):
    box = golden
    with rbdnb.connect(str(box.conf_path)) as cluster:
        rbdnb.create_image(cluster, "f/big", "256M")
        fill_image(cluster, "f/big", 256 << 20)
    dest = tmp_path / "out.raw"
    worker = Worker("export", str(box.conf_path), source="f/big", dest=str(dest))
    worker.wait_for(lambda: worker.done_fraction >= 0.3, what="export")
    worker.kill(group=False)
    assert not dest.exists(), "a partial export appeared under its final name"
    with rbdnb.connect(str(box.conf_path), timeout=60) as cluster:
        _, seconds = within(180, lambda: rbdnb.export_image(cluster, "f/big", dest), "re-run")
    assert file_sha256(dest) == rbd_sha256(box, "f/big")
    assert not list(tmp_path.glob(".out.raw*")), "a temporary file was left behind"
    record(seconds, "no file under the name after the kill; re-run exported it whole "
                    "(sha256 equal)")


def test_killed_flatten_completes_on_rerun(golden, record):
    box = golden
    with rbdnb.connect(str(box.conf_path)) as cluster:
        rbdnb.create_image(cluster, "f/base2", "256M")
        fill_image(cluster, "f/base2", 256 << 20)
        rbdnb.create_snapshot(cluster, "f/base2@s")
        rbdnb.clone(cluster, "f/base2@s", "f/child")
    worker = Worker("flatten", str(box.conf_path), spec="f/child")
    worker.wait_for(lambda: worker.done_fraction >= 0.3, what="flatten")
    worker.kill(group=True)
    assert "parent" in cli(box, "rbd", "info", "f/child", json_out=True)
    with rbdnb.connect(str(box.conf_path), timeout=60) as cluster:
        result, seconds = within(180, lambda: rbdnb.flatten(cluster, "f/child"), "re-run")
    assert "parent" not in cli(box, "rbd", "info", "f/child", json_out=True)
    assert rbd_sha256(box, "f/child") == rbd_sha256(box, "f/base2@s")
    record(seconds, f"re-run: {result.message}; no parent left, sha256 equal to base2@s")


def test_killed_copy_never_passes_for_done(golden, record):
    box = golden
    with rbdnb.connect(str(box.conf_path)) as cluster:
        rbdnb.create_image(cluster, "f/big", "384M")
        fill_image(cluster, "f/big", 384 << 20)
    worker = Worker("copy", str(box.conf_path), source="f/big", dest="f/copied")
    worker.wait_for(lambda: "copied.rbdnb-copy" in cli(box, "rbd", "ls", "f").stdout,
                    what="copy")
    time.sleep(0.3)
    worker.kill(group=True)
    assert "copied" not in cli(box, "rbd", "ls", "f", json_out=True)
    with rbdnb.connect(str(box.conf_path), timeout=60) as cluster:
        result, seconds = within(180, lambda: rbdnb.copy_image(cluster, "f/big", "f/copied",
                                                               exist_ok=True), "re-run")
        assert result.changed, result.message
        again, _ = within(60, lambda: rbdnb.copy_image(cluster, "f/big", "f/copied",
                                                       exist_ok=True), "third run")
        assert not again.changed
    assert rbd_sha256(box, "f/copied") == rbd_sha256(box, "f/big")
    record(seconds, "nothing under the name after the kill; re-run copied it whole "
                    "(sha256 equal); third run: unchanged")


def test_two_golden_steps_at_once_agree(golden, tmp_path, record):
    """import(exist_ok) then snapshot(exist_ok), by two processes at once: neither may
    snapshot a partial image, both succeed, the snapshot holds the source."""
    box = golden
    source = write_random(tmp_path / "golden.raw", 160 << 20, seed=11)
    workers = [Worker("golden", str(box.conf_path), source=str(source), dest="f/gold")
               for _ in range(2)]
    codes = [w.finish(timeout=240) for w in workers]
    assert [c for c, _ in codes] == [0, 0], [w.lines[-3:] for w in workers]
    want = file_sha256(source)
    assert rbd_sha256(box, "f/gold") == want
    assert rbd_sha256(box, "f/gold@base") == want
    imports = [next(ln for ln in w.lines if ln.startswith("result")).split(" | ")[0]
               for w in workers]
    assert sum("unchanged" in m for m in imports) == 1, imports
    record(max(s for _, s in codes), "both succeeded: one imported, the other waited and "
                                     "found it complete; image and snapshot sha256 equal "
                                     "to the source")

