"""The server extension's REST API on a real Jupyter server (pytest-jupyter), on the sandbox."""
import json
import os
import time
import uuid
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (fixtures, for this module only)
from tornado.httpclient import HTTPClientError

from rbdnb import virt
from rbdnb.server.runs import Runbooks, RunStore
from rbdnb.server.snapshot import snapshot

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
RUN = uuid.uuid4().hex[:6]
POOL = f"lab-{RUN}"


@pytest.fixture
def jp_server_config(sandbox):
    return {"ServerApp": {"jpserver_extensions": {"rbdnb.server": True}},
            "RbdnbServer": {"conf": str(sandbox.conf_path), "libvirt_uri": sandbox.libvirt_uri,
                            "runbooks_dir": str(RUNBOOKS), "status_ttl": 30.0}}


class Api:
    """The REST API through pytest-jupyter's authenticated client, called synchronously."""

    def __init__(self, fetch, loop):
        self.fetch, self.loop = fetch, loop

    def get(self, *path):
        response = self.loop.run_until_complete(self.fetch("rbdnb", "api", *path))
        return json.loads(response.body)

    def post(self, path, body):
        response = self.loop.run_until_complete(
            self.fetch("rbdnb", "api", path, method="POST", body=json.dumps(body)))
        return response.code, json.loads(response.body)

    def refused(self, path, body, code=400, method="POST"):
        kw = {"method": method}
        if method == "POST":
            kw["body"] = body if isinstance(body, bytes) else json.dumps(body)
        with pytest.raises(HTTPClientError) as exc:
            self.loop.run_until_complete(self.fetch("rbdnb", "api", *path.split("/"), **kw))
        assert exc.value.code == code, exc.value
        return json.loads(exc.value.response.body)["message"]


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop):
    return Api(jp_fetch, jp_asyncio_loop)


def test_nothing_is_reachable_without_jupyters_auth(jp_serverapp, http_server_client,
                                                    jp_base_url, jp_asyncio_loop):
    for method, path, body in [("GET", "status", None), ("GET", "runbooks", None),
                               ("GET", "runs", None), ("GET", "runs/x", None),
                               ("POST", "runs", b'{"runbook": "00-preflight"}'),
                               ("POST", "copies", b'{"runbook": "00-preflight"}')]:
        with pytest.raises(HTTPClientError) as exc:
            jp_asyncio_loop.run_until_complete(http_server_client.fetch(
                f"{jp_base_url}rbdnb/api/{path}", method=method, body=body))
        assert exc.value.code == 403, (method, path, exc.value.code)


def test_status_reports_the_sandbox(api, cli):
    status = api.get("status")
    assert status["reachable"] and status["health"] == "HEALTH_OK", status
    assert status["fsid"] == cli("ceph", "fsid").stdout.strip()
    assert status["level"] == "ok" and not status["full"] and 0 <= status["used_ratio"] < 0.85
    assert status["libvirt_reachable"] and status["libvirt_uri"] == "qemu:///system"
    assert status["virtualization"] == ("KVM" if virt.kvm_usable() else "TCG")
    again = api.get("status")
    assert again["cached"] and again["checked_at"] == status["checked_at"]


def test_an_unreachable_cluster_is_reported_in_time(tmp_path):
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nmon_host = v2:127.0.0.1:9\nauth_client_required = none\n")
    t0 = time.monotonic()
    snap = snapshot(str(conf), libvirt_uri="qemu:///system", timeout=2)
    assert time.monotonic() - t0 < 15
    assert not snap.reachable and snap.health == "UNREACHABLE" and snap.level == "error"
    assert str(conf) in snap.message


def test_runbooks_are_listed_with_their_parameters(api):
    books = api.get("runbooks")
    assert [b["name"] for b in books] == sorted(p.stem for p in RUNBOOKS.glob("[0-9]*.ipynb"))
    by_name = {b["name"]: b for b in books}
    lv = by_name["02-libvirt-rbd"]
    assert lv["title"] == "02 — libvirt with Ceph RBD" and "least-privilege" in lv["description"]
    params = {p["name"]: p for p in lv["parameters"]}
    assert params["pool"]["value"] == "libvirt-pool" and params["pool"]["type"] == "str"
    assert params["pg_num"] == {"name": "pg_num", "default": "32", "value": 32, "type": "int",
                                "kind": "int[1,32768]",
                                "help": "the guide uses 128 on a real cluster"}
    assert params["dry_run"]["type"] == "bool" and params["conf"]["type"] == "None"
    bench = {p["name"]: p for p in by_name["04-benchmark"]["parameters"]}
    assert bench["queue_depths"]["value"] == [1, 16] and bench["queue_depths"]["type"] == "list"


def test_bad_parameters_are_refused_before_anything_runs(api, jp_root_dir,
                                                               cluster_state):
    before = cluster_state()
    assert "unknown parameter 'colour'" in api.refused(
        "runs", {"runbook": "01-qemu-rbd", "parameters": {"colour": "red"}})
    assert "parameter pool: 7 is not a pool" in api.refused(
        "runs", {"runbook": "01-qemu-rbd", "parameters": {"pool": 7}})
    assert "vm_count: 'ten' is not valid: expected a whole number" in api.refused(
        "runs", {"runbook": "03-golden-image-clones",
                           "parameters": {"vm_count": "ten"}})
    # What the runbook's first cell would refuse is refused before any kernel starts.
    assert "pool name 'bad/pool' is not valid" in api.refused(
        "runs", {"runbook": "01-qemu-rbd", "parameters": {"pool": "bad/pool"}})
    assert "engine 'warp' is not valid" in api.refused(
        "runs", {"runbook": "04-benchmark", "parameters": {"engines": ["warp"]}})
    assert "does not exist" in api.refused(
        "runs", {"runbook": "../../etc/passwd", "parameters": {}}, code=404)
    assert "JSON object" in api.refused(
        "runs", {"runbook": "01-qemu-rbd", "parameters": ["pool"]})
    assert "not JSON" in api.refused("runs", b"{pool")
    assert "unknown parameter" in api.refused(
        "copies", {"runbook": "01-qemu-rbd", "parameters": {"colour": "red"}})
    assert "does not exist" in api.refused("runs/20990101-000000-x-000000", None, code=404,
                                           method="GET")
    assert api.get("runs") == []
    assert not (jp_root_dir / "runs").exists()
    assert cluster_state() == before



def test_a_run_of_01_goes_to_completion(api, jp_root_dir, cli, cluster, sandbox, guest_dir):
    import rbdnb
    code, run = api.post("runs", {"runbook": "01-qemu-rbd", "parameters": {
        "pool": POOL, "image": "img", "guest_dir": guest_dir}})
    assert code == 201 and run["state"] == "running" and run["runbook"] == "01-qemu-rbd"
    # The server's conf and libvirt URI were given to the run; the form's values kept.
    assert run["parameters"] == {"conf": str(sandbox.conf_path),
                                 "libvirt_uri": sandbox.libvirt_uri, "pool": POOL,
                                 "image": "img", "guest_dir": guest_dir}
    seen_progress = set()
    deadline = time.monotonic() + 300
    while run["state"] == "running":
        assert time.monotonic() < deadline, run
        time.sleep(0.5)
        run = api.get("runs", run["id"])
        seen_progress.add(run["progress"]["done"])
    try:
        assert run["state"] == "ok", (run, (jp_root_dir / run["log"]).read_text()[-3000:])
        total = run["progress"]["total"]
        assert run["progress"]["done"] == total > 5 and len(seen_progress) >= 2, seen_progress
        assert run["summary"]["runbook"] == "01-qemu-rbd" and run["summary"]["changed"] >= 3
        notebook, html = jp_root_dir / run["notebook"], jp_root_dir / run["html"]
        assert run["notebook"].startswith("runs/lab/") and notebook.is_file()
        assert "QEMU and RBD" in html.read_text()
        nb = json.loads(notebook.read_text())
        injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        assert f"pool = \"{POOL}\"" in "".join(injected[0]["source"])
        # The cluster holds what the runbook made.
        assert sorted(cli("rbd", "ls", POOL, json_out=True)) == ["img", "vm-image"]
        assert cli("qemu-img", "info", "--output=json", f"rbd:{POOL}/img").returncode == 0
        # Listed, and the same from a fresh store on the same directory (a restarted server).
        assert [r["id"] for r in api.get("runs")] == [run["id"]]
        again = RunStore(jp_root_dir / "runs" / "lab", Runbooks(RUNBOOKS), jp_root_dir).get(run["id"])
        assert {k: again[k] for k in ("state", "progress", "notebook", "html", "summary")} == \
            {k: run[k] for k in ("state", "progress", "notebook", "html", "summary")}
    finally:
        rbdnb.delete_pool(cluster, POOL, confirm=True, missing_ok=True)


def test_open_a_copy_fills_in_the_parameters(api, jp_root_dir, sandbox):
    code, copy = api.post("copies", {"runbook": "02-libvirt-rbd",
                                                 "parameters": {"pool": "mine", "pg_num": 16}})
    assert code == 201 and copy["path"].startswith("runs/copies/02-libvirt-rbd-")
    nb = json.loads((jp_root_dir / copy["path"]).read_text())
    tags = [c["metadata"].get("tags", []) for c in nb["cells"]]
    at = next(i for i, t in enumerate(tags) if "injected-parameters" in t)
    assert "parameters" in tags[at - 1] and not any(c.get("outputs") for c in nb["cells"])
    source = "".join(nb["cells"][at]["source"])
    assert 'pool = "mine"' in source and "pg_num = 16" in source
    assert f'conf = "{sandbox.conf_path}"' in source  # the server's cluster
    assert nb["metadata"]["kernelspec"]["name"] == "rbdnb"


def test_hostile_bodies_are_refused_with_400_and_nothing_starts(api, jp_root_dir):
    runs_before = len(api.get("runs"))
    nan = b'{"runbook": "01-qemu-rbd", "parameters": {"pg_num": NaN}}'
    assert "not a JSON number" in api.refused("runs", nan)
    inf = b'{"runbook": "01-qemu-rbd", "parameters": {"size": Infinity}}'
    assert "not a JSON number" in api.refused("runs", inf)
    deep = ('{"runbook": "01-qemu-rbd", "parameters": {"pool": ' + "[" * 5000 + "]" * 5000
            + "}}").encode()
    assert "nested" in api.refused("runs", deep) or "too deep" in api.refused("runs", deep)
    assert "longer than 4096" in api.refused("runs", {"runbook": "01-qemu-rbd",
                                                      "parameters": {"pool": "x" * 5000}})
    assert "larger than" in api.refused("copies", b'{"pad": "' + b"x" * 70000 + b'"}')
    assert len(api.get("runs")) == runs_before  # GET runs stays valid JSON, nothing new


def test_copies_made_in_one_second_are_distinct_and_private(api, jp_root_dir):
    paths = [api.post("copies", {"runbook": "00-preflight", "parameters": {}})[1]["path"]
             for _ in range(3)]
    assert len(set(paths)) == 3
    for path in paths:
        assert os.stat(jp_root_dir / path).st_mode & 0o777 == 0o600
    assert os.stat((jp_root_dir / paths[0]).parent).st_mode & 0o777 == 0o700
