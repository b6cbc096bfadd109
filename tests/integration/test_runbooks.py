"""Every runbook executed by papermill (through `rbdnb run`) against the sandbox, twice.

The second run must report that nothing changed. libvirt's names are machine-wide, so
this run's libvirt-side names carry a run id. Every produced file is scanned for keys.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from rbdnb.runbooks.run import read_summary
from rbdnb.base.secret import KEY_PATTERN

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
RUN = uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def params(sandbox, tmp_path_factory):
    guest_dir = tempfile.mkdtemp(prefix="rbdnb-it-rb-", dir="/var/tmp")
    os.chmod(guest_dir, 0o755)
    base = {"conf": str(sandbox.conf_path), "libvirt_uri": sandbox.libvirt_uri}
    yield {
        "00-preflight": base,
        "01-qemu-rbd": {**base, "guest_dir": guest_dir},
        "02-libvirt-rbd": {**base, "guest_dir": guest_dir, "user": f"lv{RUN}",
                           "libvirt_pool": f"ceph-lp-{RUN}", "vm": f"rbdnb-guide-{RUN}",
                           "edited_vm": f"rbdnb-edited-{RUN}",
                           "keyring_dir": str(tmp_path_factory.mktemp("keyrings"))},
        "03-golden-image-clones": {**base, "guest_dir": guest_dir, "pool": f"golden-{RUN}",
                                   "user": f"gold{RUN}", "vm_count": 6, "measure_count": 5},
        "04-benchmark": {**base, "pool": f"bench-{RUN}", "image_size": "256M",
                         "io_types": ["randwrite", "randread"], "io_sizes": ["4K", "64K"],
                         "queue_depths": [1, 16], "total": "8M",
                         "results_dir": str(tmp_path_factory.mktemp("bench-results"))},
        # Its own pool: a VM's disk takes its auth from a libvirt pool on its Ceph pool,
        # and runbook 02's (another user, another secret) is on libvirt-pool.
        "05-live-migration": {**base, "guest_dir": guest_dir, "user": f"mig{RUN}",
                              "pool": f"mig-{RUN}",
                              "libvirt_pool": f"ceph-lp5-{RUN}", "vm": f"rbdnb-mig-{RUN}",
                              "dest_uri": sandbox.host_uris()[1], "round_trips": 1,
                              "keyring_dir": str(tmp_path_factory.mktemp("keyrings5"))},
        "06-disaster-recovery": {**base, "guest_dir": guest_dir, "pool": f"dr-{RUN}",
                                 "user": f"dr{RUN}", "libvirt_pool": f"dr-lp-{RUN}",
                                 "vm": f"rbdnb-dr-{RUN}", "lost_mib": 2,
                                 "peer_conf": sandbox.site_confs()["b"],
                                 "peer_uri": sandbox.host_uris()[1]},
        "99-teardown": {**base, "pools": ["rdb_1", "libvirt-pool", f"golden-{RUN}",
                                          f"bench-{RUN}", f"mig-{RUN}", f"dr-{RUN}"],
                        "users": [f"lv{RUN}", f"gold{RUN}", f"mig{RUN}", f"dr{RUN}"],
                        "vm_prefix": "rbdnb-"},
    }
    shutil.rmtree(guest_dir, ignore_errors=True)


def rbdnb_run(name, parameters, out_dir, extra=()):
    argv = [sys.executable, "-m", "rbdnb", "run", str(RUNBOOKS / f"{name}.ipynb"),
            "-o", str(out_dir / f"{name}.ipynb"), "--html", str(out_dir / f"{name}.html")]
    for key, value in parameters.items():
        argv += ["-p", key, json.dumps(value) if isinstance(value, list) else str(value)]
    return subprocess.run(argv + list(extra), capture_output=True, text=True, timeout=600)


# The notebooks' sources and their cleanliness: tests/unit/runbooks/test_runbook_sources.py.


ORDER = ["00-preflight", "01-qemu-rbd", "02-libvirt-rbd", "03-golden-image-clones",
         "04-benchmark", "05-live-migration", "06-disaster-recovery"]


def test_every_runbook_runs_then_a_second_run_changes_nothing(params, tmp_path, sandbox, cli):
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        out.mkdir()
        for name in ORDER:
            proc = rbdnb_run(name, params[name], out)
            assert proc.returncode == 0, f"{name}: {proc.stderr[-1500:]}"
    for name in ORDER:
        s1, s2 = read_summary(first / f"{name}.ipynb"), read_summary(second / f"{name}.ipynb")
        assert s1["steps"] > 0 and s2["changed"] == 0, (name, s1, s2)
    assert read_summary(first / "02-libvirt-rbd.ipynb")["changed"] > 0
    html = (first / "02-libvirt-rbd.html").read_text()
    assert "ceph auth get-or-create" in html and "RBDNB-GUEST-READY" in html
    assert "<svg" in (first / "03-golden-image-clones.html").read_text() or \
        "image/png" in (first / "03-golden-image-clones.html").read_text()
    moved = (first / "05-live-migration.html").read_text()
    assert "the guest never rebooted" in moved and "image/png" in moved, moved[-2000:]
    recovered = (first / "06-disaster-recovery.html").read_text()
    assert "unplanned failover" in recovered and "(RPO)" in recovered and \
        recovered.count("image/png") >= 2, recovered[-2000:]
    bench_html = (first / "04-benchmark.html").read_text()
    assert bench_html.count("image/png") >= 4 and "native / rbd" in bench_html
    saved = sorted(os.listdir(params["04-benchmark"]["results_dir"]))
    assert len(saved) == 4 and saved[0].endswith(".csv")  # two runs, CSV and Parquet each
    # The guide's objects exist, as the real CLIs see them.
    assert "os-data" in cli("rbd", "ls", "libvirt-pool", json_out=True)
    caps = cli("ceph", "auth", "get", f"client.lv{RUN}", json_out=True)[0]["caps"]
    assert caps["osd"] == "profile rbd pool=libvirt-pool"
    keys = [l.split("=", 1)[1].strip() for p in sandbox.dir.glob("*.keyring")
            for l in p.read_text().splitlines() if "key =" in l]
    keys.append(cli("ceph", "auth", "get", f"client.lv{RUN}", json_out=True)[0]["key"])
    # Site b's keys, and the mirror peers' (the bootstrap token holds one): never shown.
    for conf in sandbox.site_confs().values():
        for entity in (f"client.dr{RUN}", "client.rbd-mirror-peer"):
            keys.append(cli("ceph", "--conf", conf, "auth", "get", entity,
                            json_out=True)[0]["key"])
    keys += [l.split("=", 1)[1].strip() for p in (sandbox.dir / "sites").rglob("*.keyring")
             for l in p.read_text().splitlines() if "key =" in l]
    for path in list(first.iterdir()) + list(second.iterdir()):
        text = path.read_text(errors="replace")
        assert not KEY_PATTERN.search(text) and not any(k in text for k in keys), path

    # Teardown: refused without confirm, then everything goes, then nothing is left to do.
    proc = rbdnb_run("99-teardown", params["99-teardown"], tmp_path)
    assert proc.returncode == 2 and "confirm True" in proc.stderr
    for out in (first, second):
        proc = rbdnb_run("99-teardown", {**params["99-teardown"], "confirm": True}, out)
        assert proc.returncode == 0, proc.stderr[-1500:]
    assert read_summary(first / "99-teardown.ipynb")["changed"] > 0
    assert read_summary(second / "99-teardown.ipynb")["changed"] == 0
    pools = cli("ceph", "osd", "pool", "ls", json_out=True)
    assert not {"rdb_1", "libvirt-pool", f"golden-{RUN}", f"bench-{RUN}", f"mig-{RUN}",
                f"dr-{RUN}"} & set(pools)
    domains = subprocess.run(["virsh", "-c", sandbox.libvirt_uri, "list", "--all", "--name"],
                             capture_output=True, text=True, timeout=60).stdout
    assert RUN not in domains


@pytest.mark.parametrize("extra, code, text", [
    (["-p", "nope", "1"], 2, "unknown parameter 'nope'"),
    (["-p", "size", "10Q"], 2, "parameter size '10Q' is not valid"),
    (["-p", "pool", "bad/pool"], 2, "pool name 'bad/pool' is not valid"),
])
def test_bad_parameters_are_refused_before_a_kernel_starts(params, tmp_path, extra, code, text):
    proc = rbdnb_run("01-qemu-rbd", params["01-qemu-rbd"], tmp_path, extra)
    assert proc.returncode == code and text in proc.stderr, proc.stderr[-800:]
    # rbdnb run checks what the runbook's first cell would check, before executing anything.
    assert not (tmp_path / "01-qemu-rbd.ipynb").exists()


def test_plain_papermill_still_stops_in_the_first_cell(params, tmp_path):
    """Without rbdnb run, the runbook's own first cell refuses a bad parameter."""
    out = tmp_path / "out.ipynb"
    proc = subprocess.run([sys.executable, "-m", "papermill", str(RUNBOOKS / "01-qemu-rbd.ipynb"),
                           str(out), "-k", "rbdnb", "-p", "pool", "bad/pool",
                           "-p", "conf", params["01-qemu-rbd"]["conf"]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    text = out.read_text()
    assert "bad parameter: parameter pool: pool name 'bad/pool' is not valid" in text


def test_an_unreachable_cluster_has_its_own_exit_code(sandbox, tmp_path):
    from rbdnb.sandbox import pick_free_port
    port = sandbox.status().mon_host.rsplit(":", 1)[1]
    dead = tmp_path / "dead.conf"
    dead.write_text(sandbox.conf_path.read_text().replace(f"127.0.0.1:{port}",
                                                          f"127.0.0.1:{pick_free_port()}")
                    .replace("client_mount_timeout = 30", "client_mount_timeout = 3"))
    proc = rbdnb_run("00-preflight", {"conf": str(dead)}, tmp_path)
    assert proc.returncode == 3 and "cluster unreachable" in proc.stderr, proc.stderr[-800:]
