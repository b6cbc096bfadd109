"""Runbooks scheduled with jupyter-scheduler on a real Jupyter server, on the sandbox: a job
definition every minute runs twice, the way `rbdnb run` does; its outputs are kept redacted
and the runs show in rbdnb's runs panel; a bad parameter is refused before anything is made."""
import json
import shutil
import time
import uuid
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (fixtures, for this module only)
from tornado.httpclient import HTTPClientError

from rbdnb.base.secret import KEY_PATTERN
from rbdnb.runbooks.run import read_summary

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
RUN = uuid.uuid4().hex[:6]
POOL = f"sched-{RUN}"


@pytest.fixture
def jp_server_config(sandbox):
    return {"ServerApp": {"jpserver_extensions": {"rbdnb.server": True,
                                                  "jupyter_scheduler": True}},
            "SchedulerApp": {"scheduler_class": "rbdnb.server.scheduler.RunbookScheduler"},
            "TaskRunner": {"poll_interval": 2},
            "RbdnbServer": {"conf": str(sandbox.conf_path), "libvirt_uri": sandbox.libvirt_uri,
                            "runbooks_dir": str(RUNBOOKS)}}


@pytest.fixture
def call(jp_fetch, jp_asyncio_loop):
    def run(*path, method="GET", body=None, params=None):
        kw = {"method": method, "params": params or {}}
        if body is not None:
            kw["body"] = json.dumps(body)
        response = jp_asyncio_loop.run_until_complete(jp_fetch(*path, **kw))
        return json.loads(response.body) if response.body else None
    return run



def test_a_runbook_scheduled_every_minute_runs_twice_as_rbdnb_run_does(
        sandbox, call, jp_root_dir, jp_data_dir, jp_asyncio_loop, guest_dir, cluster):
    shutil.copy(RUNBOOKS / "01-qemu-rbd.ipynb", jp_root_dir / "01-qemu-rbd.ipynb")
    env = call("scheduler", "runtime_environments")[0]["name"]
    definition = {"input_uri": "01-qemu-rbd.ipynb", "runtime_environment_name": env,
                  "name": f"qemu-rbd-{RUN}", "schedule": "* * * * *", "timezone": "UTC",
                  "output_formats": ["ipynb", "html"],
                  "parameters": {"conf": str(sandbox.conf_path), "libvirt_uri": sandbox.libvirt_uri,
                                 "guest_dir": guest_dir, "pool": POOL}}

    # A bad parameter: refused in one line naming it; no definition made.
    with pytest.raises(HTTPClientError) as exc:
        call("scheduler", "job_definitions", method="POST",
             body={**definition, "parameters": {**definition["parameters"], "pool": "no/such"}})
    message = json.loads(exc.value.response.body)["message"]
    assert "01-qemu-rbd: parameter pool" in message and "\n" not in message.strip(), message
    assert call("scheduler", "job_definitions")["job_definitions"] == []

    made = call("scheduler", "job_definitions", method="POST", body=definition)
    definition_id = made["job_definition_id"]
    try:
        deadline = time.monotonic() + 420  # two minute marks, and two runs of the runbook
        jobs = []
        while time.monotonic() < deadline:
            jobs = call("scheduler", "jobs", params={"job_definition_id": definition_id})["jobs"]
            # (a job's row says STOPPED until its process starts: not an outcome)
            done = [j for j in jobs if j["status"] in ("COMPLETED", "FAILED")]
            if len(done) >= 2:
                break
            jp_asyncio_loop.run_until_complete(__import__("asyncio").sleep(3))
        done = sorted((j for j in jobs if j["status"] in ("COMPLETED", "FAILED")),
                      key=lambda j: j["create_time"])
        assert len(done) >= 2, jobs
        first, second = done[:2]
        assert [first["status"], second["status"]] == ["COMPLETED", "COMPLETED"], \
            [(j["status"], j.get("status_message")) for j in done]
    finally:
        call("scheduler", "job_definitions", definition_id, method="PATCH",
             body={"active": False})

    # What jupyter-scheduler keeps is rbdnb's run: summary, no key, the real image there.
    keys = [line.split("=", 1)[1].strip() for p in sandbox.dir.glob("*.keyring")
            for line in p.read_text().splitlines() if "key =" in line]
    summaries = []
    for job in (first, second):
        staged = jp_data_dir / "scheduler_staging_area" / job["job_id"]
        notebooks = list(staged.glob("*.ipynb"))
        outputs = [p for p in notebooks if p.name != "01-qemu-rbd.ipynb"] or notebooks
        pages = list(staged.glob("*.html"))
        assert outputs and pages, list(staged.iterdir())
        for path in [*outputs, *pages]:
            text = path.read_text()
            assert not KEY_PATTERN.search(text) and not any(k in text for k in keys), path
        summaries.append(read_summary(max(outputs, key=lambda p: p.stat().st_mtime)))
    assert summaries[0]["changed"] > 0 and summaries[1]["changed"] == 0, summaries

    # The same runs in rbdnb's runs panel, each with its scheduler job.
    runs = [r for r in call("rbdnb", "api", "runs")
            if (r.get("scheduler") or {}).get("job_definition_id") == definition_id]
    assert {r["scheduler"]["job_id"] for r in runs} >= {first["job_id"], second["job_id"]}, runs
    assert all(r["state"] == "ok" and r["html"] for r in runs
               if r["scheduler"]["job_id"] in (first["job_id"], second["job_id"])), runs

    import rbdnb
    assert rbdnb.image_info(cluster, f"{POOL}/image3").size == 10 * 2**30
    rbdnb.delete_pool(cluster, POOL, confirm=True)
