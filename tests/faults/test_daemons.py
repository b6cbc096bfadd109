"""Ceph daemons frozen (SIGSTOP) or killed in the middle of an operation.

Every call returns a typed error within its bound; a whole operation stops issuing work
once the cluster stops answering and says what was done and what was not; once the
daemon is back (SIGCONT, or ``rbdnb sandbox up`` for a killed one), the same connection
works again and a re-run completes, checked by checksum.
"""
import json
import os
import signal
import subprocess
import sys
import time

import rbdnb
from tests.faults.conftest import (CLIENT_TIMEOUT, ROOT, Worker, answer, cli, daemon_pids,
                                   file_sha256, fill_image, frozen, rbd_sha256, settle,
                                   start_sandbox, within, write_random)

RBDNB = [sys.executable, "-m", "rbdnb"]
# A call that needs a daemon answers within its client timeout; give it three, plus room
# for a loaded 2-core machine.
BOUND = 3 * CLIENT_TIMEOUT + 15


def thawed(repaired: list[str]) -> str:
    return f" (sandbox up: {'; '.join(repaired)})" if repaired else ""


def golden(box, size_mib=32):
    with rbdnb.connect(str(box.conf_path)) as cluster:
        rbdnb.create_pool(cluster, "f", 16)
        rbdnb.create_image(cluster, "f/golden", f"{size_mib}M")
        fill_image(cluster, "f/golden", 8 << 20)
        rbdnb.create_snapshot(cluster, "f/golden@base")


def test_frozen_osd_during_clone_many(fresh, record):
    golden(fresh)
    worker = Worker("clone_many", str(fresh.conf_path), timeout=CLIENT_TIMEOUT,
                    parent="f/golden@base", names="f/vm-{i:03d}", count=200)
    worker.wait_for(lambda: worker.done_fraction >= 0.2, what="clone_many")
    with frozen(daemon_pids(fresh)["osd.0"]):
        code, seconds = worker.finish(timeout=BOUND + 30)
    assert code == 1 and worker.error.startswith("error Timeout:"), worker.lines[-3:]
    assert "stopped after" in worker.error and "not made" in worker.error, worker.error
    assert seconds < BOUND + 10, seconds
    repaired = settle(fresh)
    with rbdnb.connect(str(fresh.conf_path), timeout=60) as cluster:
        result, _ = within(180, lambda: rbdnb.clone_many(
            cluster, "f/golden@base", "f/vm-{i:03d}", count=200, exist_ok=True), "re-run")
    assert len(cli(fresh, "rbd", "children", "f/golden@base", json_out=True)) == 200
    record(seconds, f"{worker.error.split(':', 1)[0][6:]} after the freeze "
                    f"(\"{worker.error.split('because')[0][len('error Timeout: '):].strip()}\"); "
                    f"thawed{thawed(repaired)}, re-run: {result.message}")


def test_frozen_osd_during_import(fresh, tmp_path, record):
    golden(fresh)
    source = write_random(tmp_path / "disk.raw", 160 << 20)
    worker = Worker("import", str(fresh.conf_path), timeout=CLIENT_TIMEOUT,
                    source=str(source), dest="f/imported")
    worker.wait_for(lambda: worker.done_fraction >= 0.2, what="import")
    with frozen(daemon_pids(fresh)["osd.0"]):
        code, seconds = worker.finish(timeout=BOUND + 60)
    assert code == 1 and worker.error.split(":")[0] in ("error Timeout", "error CommandFailed"), \
        worker.lines[-3:]
    repaired = settle(fresh)
    assert "imported" not in cli(fresh, "rbd", "ls", "f", json_out=True)
    with rbdnb.connect(str(fresh.conf_path), timeout=60) as cluster:
        result, _ = within(180, lambda: rbdnb.import_image(cluster, source, "f/imported",
                                                           exist_ok=True), "re-run")
    assert result.changed and rbd_sha256(fresh, "f/imported") == file_sha256(source)
    record(seconds, f"{worker.error[6:].split(':')[0]} after the freeze, nothing under the "
                    f"name; thawed{thawed(repaired)}, re-run imported it (sha256 equal)")


def test_killed_osd_during_clone_many(tmp_path, record):
    """bluestore keeps its data when the OSD dies (memstore would lose it all)."""
    box = start_sandbox(tmp_path / "bluestore", osd_size="2G", store="bluestore")
    try:
        golden(box)
        worker = Worker("clone_many", str(box.conf_path), timeout=CLIENT_TIMEOUT,
                        parent="f/golden@base", names="f/vm-{i:03d}", count=200)
        worker.wait_for(lambda: worker.done_fraction >= 0.2, what="clone_many")
        os.kill(daemon_pids(box)["osd.0"], signal.SIGKILL)
        code, seconds = worker.finish(timeout=BOUND + 30)
        assert code == 1 and worker.error.startswith("error Timeout:"), worker.lines[-3:]
        up = subprocess.run(RBDNB + ["sandbox", "up", "--dir", str(box.dir)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        assert "osd.0" in daemon_pids(box)
        with rbdnb.connect(str(box.conf_path), timeout=60) as cluster:
            result, _ = within(180, lambda: rbdnb.clone_many(
                cluster, "f/golden@base", "f/vm-{i:03d}", count=200, exist_ok=True), "re-run")
        assert len(cli(box, "rbd", "children", "f/golden@base", json_out=True)) == 200
        assert rbd_sha256(box, "f/vm-150") == rbd_sha256(box, "f/golden@base")
        record(seconds, f"Timeout after the OSD died; sandbox up restarted it; re-run: "
                        f"{result.message}")
    finally:
        box.down()


def test_frozen_monitor(fresh, tmp_path, record):
    golden(fresh)
    cluster = rbdnb.connect(str(fresh.conf_path), timeout=CLIENT_TIMEOUT)
    try:
        with frozen(daemon_pids(fresh)["mon.a"]):
            rows = []
            for what, call in [
                    ("create_pool", lambda: rbdnb.create_pool(cluster, "more", 8)),
                    ("preflight", lambda: rbdnb.preflight(cluster)),
                    ("create_image", lambda: rbdnb.create_image(cluster, "f/more", "1M")),
                    ("connect", lambda: rbdnb.connect(str(fresh.conf_path),
                                                      timeout=CLIENT_TIMEOUT))]:
                error, seconds = answer(BOUND, call, what)
                assert isinstance(error, rbdnb.Timeout), (what, error)
                rows.append((what, seconds))
            t0 = time.monotonic()
            status = subprocess.run(RBDNB + ["sandbox", "status", "--dir", str(fresh.dir),
                                             "--json"], cwd=ROOT, capture_output=True,
                                    text=True, timeout=60)
            status_seconds = time.monotonic() - t0
            assert status_seconds < 15, status_seconds
            health = json.loads(status.stdout)["health"]
            assert health["status"] == "UNREACHABLE", health
            t0 = time.monotonic()
            run = subprocess.run(RBDNB + ["run", str(ROOT / "runbooks/00-preflight.ipynb"),
                                          "-p", "conf", str(fresh.conf_path),
                                          "-p", "timeout", str(CLIENT_TIMEOUT),
                                          "-o", str(tmp_path / "pre.ipynb")],
                                 cwd=ROOT, capture_output=True, text=True, timeout=300)
            run_seconds = time.monotonic() - t0
            assert run.returncode == 3, run.stderr[-500:]
            assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        # The same connection works again once the monitor is back.
        pre, _ = within(60, lambda: rbdnb.preflight(cluster), "preflight after thaw")
        assert pre.fsid == cli(fresh, "ceph", "fsid").stdout.strip()
    finally:
        cluster.close()
    worst = max(s for _, s in rows)
    record(worst, f"every call Timeout ({', '.join(f'{w} {s:.1f}s' for w, s in rows)}); "
                  f"sandbox status {status_seconds:.1f}s (UNREACHABLE); rbdnb run exit 3 in "
                  f"{run_seconds:.0f}s; same connection works after SIGCONT")


def test_killed_monitor(fresh, record):
    golden(fresh)
    cluster = rbdnb.connect(str(fresh.conf_path), timeout=CLIENT_TIMEOUT)
    try:
        os.kill(daemon_pids(fresh)["mon.a"], signal.SIGKILL)
        error, seconds = answer(BOUND, lambda: rbdnb.create_pool(cluster, "more", 8),
                                "create_pool")
        assert isinstance(error, rbdnb.Timeout), error
        up = subprocess.run(RBDNB + ["sandbox", "up", "--dir", str(fresh.dir)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        result, _ = within(60, lambda: rbdnb.create_pool(cluster, "more", 8), "after restart")
        assert result.changed and "more" in cli(fresh, "ceph", "osd", "pool", "ls",
                                                json_out=True)
    finally:
        cluster.close()
    record(seconds, "Timeout while the monitor was dead; sandbox up restarted it; the same "
                    "connection created a pool")


def test_manager_respawned_under_a_new_pid_is_stopped_by_down(fresh, record):
    before = daemon_pids(fresh)["mgr.x"]
    # Enabling a module makes the manager re-exec itself; daemonized again, it gets a new pid.
    cli(fresh, "ceph", "mgr", "module", "enable", "stats")
    deadline = time.monotonic() + 60
    while daemon_pids(fresh).get("mgr.x") in (None, before) and time.monotonic() < deadline:
        time.sleep(0.5)
    after = daemon_pids(fresh).get("mgr.x")
    assert after not in (None, before), "the manager did not respawn under a new pid"
    assert fresh.status().running
    t0 = time.monotonic()
    stopped = fresh.down()
    from tests.faults.conftest import running_under
    assert not running_under(fresh.dir), "down left a daemon running"
    assert "mgr.x" in stopped
    record(time.monotonic() - t0, f"manager respawned (pid {before} -> {after}); down stopped "
                                  f"it and everything else")
    start_sandbox(fresh.dir, osd_size="1G")  # for the fixture's own down
