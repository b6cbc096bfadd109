"""Every parameter of every runbook, fed hostile values: refused before any kernel starts
(exit 2, one line naming it), and nothing changed on the cluster or in libvirt.

A parameter added to a runbook without hostile values here fails the test."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rbdnb.runbooks.run import BAD_PARAMETERS, run_runbook, runbook_parameters

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = sorted((ROOT / "runbooks").glob("[0-9][0-9]-*.ipynb"))

NAME = ["evil\n", "../x", "a b", "<x/>"]
HOSTILE = {
    "conf": ["/nonexistent/ceph.conf", "x\n"], "client": ["x y", "admin\n"],
    "keyring": ["/nonexistent/keyring"], "libvirt_uri": ["qemu:///system\n", "x y"],
    "dry_run": ["yes", 1], "confirm": ["yes", 0], "timeout": [0, -5, 10**6, "30"], "guest_dir": ["/var/tmp/x\ny", 5],
    "source_image": ["/nonexistent.qcow2", "a\0b"],
    "pool": NAME, "image": NAME, "imported": NAME, "golden": NAME, "os_data": NAME,
    "libvirt_pool": NAME, "user": NAME, "vm": NAME, "edited_vm": NAME,
    "snapshot": ["s@t", "s\n"], "vm_prefix": ["../x", "a b", "x\n"],
    "size": ["10Q", "-1G"], "grown_size": ["lots"], "os_data_size": ["1X"],
    "image_size": ["lots", "1G\n2G"],
    "pg_num": [-1, 10**9], "boot_timeout": [0, 10**9], "vm_count": [0, 10**6],
    "boot_count": [-1, 10**6], "measure_count": [0, 10**6],
    "keyring_dir": ["/tmp/x\n", 3],
    "engines": [["nope"], "native"], "io_types": [["sideways"]], "io_sizes": [["0K"]],
    "queue_depths": [[0], [10**6]], "total": ["none"], "results_dir": ["x\n", ["a"]],
    "pools": [["evil\n"], "p"], "users": [["x y"]], "free_images": [["../x"], ["p/i\n"]],
    "libvirt_uris": [["qemu:///system\n"], "qemu:///system", ["x y"]],
    "dest_uri": ["qemu:///system\n", "<x/>"], "peer_uri": ["x y", "qemu:///system\n"],
    "peer_conf": ["/nonexistent/ceph.conf", "x\n"], "round_trips": [0, 10**6, "2"],
    "lost_mib": [0, 16, "4"], "sync_timeout": [0, 10**9],
}


def test_every_parameter_has_hostile_values():
    missing = {f"{p.stem}.{name}" for p in RUNBOOKS for name in runbook_parameters(p)
               if name not in HOSTILE}
    assert not missing, f"parameters without hostile values here: {sorted(missing)}"


@pytest.mark.parametrize("path", RUNBOOKS, ids=[p.stem for p in RUNBOOKS])
def test_hostile_values_are_refused_before_any_kernel_starts(path, sandbox, cluster_state,
                                                             tmp_path):
    base = {"conf": str(sandbox.conf_path), "libvirt_uri": sandbox.libvirt_uri}
    before = cluster_state()
    tried = 0
    for name in runbook_parameters(path):
        for value in HOSTILE[name]:
            out = tmp_path / f"{name}.ipynb"
            outcome = run_runbook(path, {**base, name: value}, output=out)
            assert outcome.exit_code == BAD_PARAMETERS, (name, value, outcome.message)
            message = outcome.message
            assert message and "\n" not in message and "Traceback" not in message, message
            assert not out.exists(), f"{name}={value!r}: a kernel ran"
            tried += 1
    assert tried >= len(runbook_parameters(path))
    assert cluster_state() == before


def test_the_cli_refuses_them_with_exit_2_and_one_line(sandbox, tmp_path):
    for name, value in [("pool", "evil\n"), ("vm_prefix", "../x"), ("user", "x y")]:
        book = "03-golden-image-clones" if name == "vm_prefix" else "02-libvirt-rbd"
        proc = subprocess.run([sys.executable, "-m", "rbdnb", "run",
                               str(ROOT / "runbooks" / f"{book}.ipynb"), "-p", "conf",
                               str(sandbox.conf_path), "-p", name, value,
                               "-o", str(tmp_path / "x.ipynb")],
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={**os.environ})
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "x.ipynb").exists()
