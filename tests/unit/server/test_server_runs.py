"""The server extension's run store and runbook listing, and `rbdnb lab install`, offline."""
import json
import os
from pathlib import Path

import pytest

from rbdnb import labext
from rbdnb.errors import InvalidArgument, MissingTool, NotFound
from rbdnb.server.runs import Runbooks, RunStore, _progress

RUNBOOKS = Path(__file__).resolve().parents[3] / "runbooks"


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs" / "lab", Runbooks(RUNBOOKS), tmp_path)


def test_runbooks_are_named_by_file_and_nothing_else(store):
    books = store.runbooks
    assert books.names()[0] == "00-preflight" and "99-teardown" in books.names()
    for bad in ("../runbooks/00-preflight", "00-preflight.ipynb", "/etc/passwd", None, 3, ""):
        with pytest.raises(NotFound):
            books.path(bad)
    info = books.info("03-golden-image-clones")
    params = {p["name"]: p for p in info["parameters"]}
    assert info["title"] == "03 — Golden image, many clones"
    assert params["vm_count"]["type"] == "int" and params["vm_count"]["value"] == 10


def test_a_refused_run_leaves_nothing_behind(store, tmp_path):
    with pytest.raises(InvalidArgument, match="unknown parameter 'poool'"):
        store.start("01-qemu-rbd", {"poool": "x"})
    with pytest.raises(InvalidArgument, match="vm_count: 2.5 is not valid"):
        store.start("03-golden-image-clones", {"vm_count": 2.5})
    with pytest.raises(InvalidArgument, match="JSON object"):
        store.start("01-qemu-rbd", [("pool", "x")])
    with pytest.raises(InvalidArgument, match="size '10Q' is not valid"):
        store.start("01-qemu-rbd", {"size": "10Q"})
    with pytest.raises(InvalidArgument, match="1 to 10000"):
        store.copy("03-golden-image-clones", {"vm_count": 0})
    with pytest.raises(NotFound):
        store.start("05-nothing", {})
    assert not (tmp_path / "runs").exists() and store.all() == []


def test_server_defaults_apply_only_where_declared_and_not_given(tmp_path):
    store = RunStore(tmp_path / "runs", Runbooks(RUNBOOKS), tmp_path,
                     defaults={"conf": "/etc/ceph/x.conf", "libvirt_uri": "", "nope": 1})
    assert store.defaults == {"conf": "/etc/ceph/x.conf", "nope": 1}
    assert store._with_defaults("00-preflight", {}) == {"conf": "/etc/ceph/x.conf"}
    assert store._with_defaults("00-preflight", {"conf": None}) == {"conf": None}


def _notebook(statuses):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# t"}]
    cells += [{"cell_type": "code", "metadata": {"papermill": {"status": s}}, "source": "",
               "outputs": []} for s in statuses]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_progress_is_read_from_papermills_cell_status(tmp_path):
    nb = tmp_path / "nb.ipynb"
    nb.write_text(json.dumps(_notebook(["completed", "completed", "running", "pending"])))
    assert _progress(nb) == {"done": 2, "total": 4, "current": 2}
    assert _progress(tmp_path / "missing.ipynb") == {"done": 0, "total": 0, "current": None}
    nb.write_text("{half a notebo")
    assert _progress(nb)["total"] == 0


def _fake_run(store, run_id, process=None):
    rundir = store.dir / run_id
    rundir.mkdir(parents=True)
    (rundir / "run.json").write_text(json.dumps({
        "id": run_id, "runbook": "01-qemu-rbd", "parameters": {}, "started": "t",
        "process": process}))
    (rundir / "01-qemu-rbd.ipynb").write_text(json.dumps(_notebook(["completed"] * 3)))
    return rundir


def test_a_run_is_read_back_from_its_files(store, tmp_path):
    run_id = "20260101-120000-01-qemu-rbd-abcdef"
    rundir = _fake_run(store, run_id, {"name": "rbdnb run", "pid": 2**22 + 7, "started": 1})
    # Its process is gone and it left no outcome: lost, said so.
    run = store.get(run_id)
    assert run["state"] == "lost" and "run.log" in run["message"]
    assert run["notebook"] == f"runs/lab/{run_id}/01-qemu-rbd.ipynb" and run["html"] is None
    # It finished while no server watched: the outcome it wrote is taken.
    (rundir / "outcome.json.part").write_text(json.dumps(
        {"status": "ok", "message": "", "summary": {"steps": 5, "changed": 0}, "seconds": 2.0}))
    run = store.get(run_id)
    assert run["state"] == "ok" and run["summary"]["steps"] == 5
    assert (rundir / "outcome.json").exists() and not (rundir / "outcome.json.part").exists()
    assert run["progress"] == {"done": 3, "total": 3, "current": None}
    assert [r["id"] for r in store.all()] == [run_id]
    for bad in ("../../etc", "20260101-120000-01-qemu-rbd-abcdeg", run_id + "/.."):
        with pytest.raises(NotFound):
            store.get(bad)


def test_lab_install_links_the_build_and_enables_the_server(tmp_path, monkeypatch):
    built = tmp_path / "labextension"
    monkeypatch.setattr(labext, "BUILT", built)
    prefix = tmp_path / "env"
    with pytest.raises(MissingTool, match=r"extension \(rbdnb/labextension\) not found: build it "
                                          r"with scripts/build-frontend.sh"):
        labext.install(str(prefix))
    built.mkdir()
    (built / "package.json").write_text("{}")
    changes = labext.install(str(prefix))
    assert len(changes) == 2
    link = prefix / "share/jupyter/labextensions/@rbdnb/jupyterlab"
    assert link.is_symlink() and os.readlink(link) == str(built)
    config = json.loads((prefix / "etc/jupyter/jupyter_server_config.d/rbdnb.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"rbdnb.server": True}},
                      "SchedulerApp": {"scheduler_class": "rbdnb.server.scheduler.RunbookScheduler"}}
    assert labext.install(str(prefix)) == []  # unchanged
    link.unlink()
    link.mkdir()
    with pytest.raises(FileExistsError):
        labext.install(str(prefix))


def test_status_colour_follows_health_fullness_and_libvirt():
    from rbdnb.server.snapshot import Snapshot
    ok = dict(reachable=True, health="HEALTH_OK", message="", libvirt_reachable=True)
    assert Snapshot(**ok).level == "ok"
    assert Snapshot(**{**ok, "health": "HEALTH_WARN"}).level == "warn"
    assert Snapshot(**{**ok, "nearfull": True}).level == "warn"
    assert Snapshot(**{**ok, "libvirt_reachable": False}).level == "warn"
    assert Snapshot(**{**ok, "full": True}).level == "error"
    assert Snapshot(**{**ok, "health": "HEALTH_ERR"}).level == "error"
    assert Snapshot(**{**ok, "reachable": False, "health": "UNREACHABLE"}).level == "error"
    assert Snapshot(**ok).to_json()["level"] == "ok"
    # A host or a site of the topology that does not answer, or is not healthy, is a warning.
    hosts = [{"uri": "qemu:///system", "reachable": True}, {"uri": "qemu:///x", "reachable": True}]
    site = {"name": "b", "conf": "/b.conf", "reachable": True, "health": "HEALTH_OK"}
    assert Snapshot(**ok, hosts=hosts, sites=[site]).level == "ok"
    assert Snapshot(**ok, hosts=[hosts[0], {**hosts[1], "reachable": False}]).level == "warn"
    assert Snapshot(**ok, sites=[{**site, "reachable": False}]).level == "warn"
    assert Snapshot(**ok, sites=[{**site, "health": "HEALTH_WARN"}]).level == "warn"


def test_the_status_lists_the_fleets_hosts_and_the_sites(monkeypatch):
    from rbdnb.server import snapshot as snap
    monkeypatch.setenv("RBDNB_LIBVIRT_URIS", "test:///default qemu:///system?socket=/nonexistent/s")
    monkeypatch.setenv("RBDNB_SITES", "a=/a.conf b=/nonexistent/b.conf")
    hosts, sites = snap._topology("test:///default", True, timeout=2)
    assert [h["uri"] for h in hosts] == ["test:///default", "qemu:///system?socket=/nonexistent/s"]
    assert [h["reachable"] for h in hosts] == [True, False]
    assert sites[0]["name"] == "b" and not sites[0]["reachable"]
    monkeypatch.setenv("RBDNB_LIBVIRT_URIS", "test:///default")
    monkeypatch.setenv("RBDNB_SITES", "a=/a.conf")
    assert snap._topology("test:///default", True, timeout=2) == ([], [])


def test_a_slow_cluster_never_holds_the_event_loop(monkeypatch):
    """The status is taken in a worker thread; a request waits `timeout` at most."""
    import asyncio
    import time as clock
    from rbdnb.server import status as server_status
    from rbdnb.server.snapshot import Snapshot
    release = []

    calls = []

    def slow_snapshot(conf, **kw):
        calls.append(conf)
        while not release:
            clock.sleep(0.05)
        return Snapshot(reachable=True, health="HEALTH_OK", message="", checked_at=clock.time())

    monkeypatch.setattr(server_status, "snapshot", slow_snapshot)
    cache = server_status.StatusCache(conf=None, libvirt_uri=None, ttl=5, timeout=0.5)

    async def scenario():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.ensure_future(ticker())
        first = await cache.get()          # the cluster is slow: an answer after 0.5 s anyway
        release.append(True)
        await asyncio.sleep(0.2)
        second = await cache.get()         # the same refresh finished meanwhile
        tick.cancel()
        return first, second, ticks

    first, second, ticks = asyncio.run(scenario())
    assert first["health"] == "UNREACHABLE" and first["stale"] and "0.5 s" in first["message"]
    assert ticks > 20  # the loop kept running while the status waited
    assert second["health"] == "HEALTH_OK" and second["cached"] and len(calls) == 1
