"""Runbooks under faults: killed in the middle of a cell and run again; run twice at once."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from rbdnb.runbooks.run import read_summary
from tests.faults.conftest import ROOT, cli, rbd_sha256

RBDNB = [sys.executable, "-m", "rbdnb"]



def run_argv(name: str, out, params: dict) -> list[str]:
    argv = RBDNB + ["run", str(ROOT / "runbooks" / f"{name}.ipynb"), "-o", str(out)]
    for key, value in params.items():
        argv += ["-p", key, json.dumps(value) if isinstance(value, list) else str(value)]
    return argv


def running_cell(notebook) -> str:
    """The source of the cell papermill marks running in a notebook it is writing."""
    try:
        nb = json.loads(open(notebook).read())
    except (OSError, ValueError):
        return ""
    for cell in nb.get("cells", []):
        if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
            return "".join(cell.get("source", ""))
    return ""


def libvirtd_log_tail(lines: int = 15) -> str:
    """The end of libvirtd's log (the sandbox starts it logging warnings there): what tells
    a daemon that died from one that closed a connection."""
    from rbdnb.base import paths
    try:
        text = (Path(paths.libvirt_daemons().logs) / "libvirtd.log").read_text(errors="replace")
    except OSError as exc:
        return f"(no libvirtd log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def test_runbook_killed_mid_cell_then_run_again(fresh, tmp_path, guest_dir, record):
    params = {"conf": str(fresh.conf_path), "libvirt_uri": fresh.libvirt_uri,
              "guest_dir": guest_dir, "pool": "g", "user": "gold", "vm_count": 200,
              "boot_count": 1, "measure_count": 5}
    first = tmp_path / "first.ipynb"
    proc = subprocess.Popen(run_argv("03-golden-image-clones", first, params), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while "--count {vm_count}" not in running_cell(first):
        assert proc.poll() is None, proc.stderr.read().decode()[-800:]
        assert time.monotonic() < deadline, "the clone cell never started"
        time.sleep(0.05)
    time.sleep(0.4)  # some clones made, most not
    os.killpg(proc.pid, signal.SIGKILL)  # rbdnb run, papermill and the kernel at once
    proc.wait(timeout=30)
    made = len(cli(fresh, "rbd", "ls", "g", json_out=True))
    t0 = time.monotonic()
    again = subprocess.run(run_argv("03-golden-image-clones", tmp_path / "second.ipynb",
                                    params), cwd=ROOT, capture_output=True, text=True,
                           timeout=900)
    seconds = time.monotonic() - t0
    assert again.returncode == 0, again.stderr[-1500:] + libvirtd_log_tail()
    kids = cli(fresh, "rbd", "children", "g/golden@base", json_out=True)
    assert sorted(k["image"] for k in kids) == [f"vm-{i:03d}" for i in range(1, 201)]
    assert rbd_sha256(fresh, "g/vm-123") == rbd_sha256(fresh, "g/golden@base")
    third = subprocess.run(run_argv("03-golden-image-clones", tmp_path / "third.ipynb", params),
                           cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, third.stderr[-1500:] + libvirtd_log_tail()
    summary = read_summary(tmp_path / "third.ipynb")
    assert summary["changed"] == 0, summary
    record(seconds, f"killed in the clone cell ({made} images then); re-run completed "
                    f"(200 clones, checksums equal); a third run changed nothing")


def test_two_runs_of_a_runbook_at_once(fresh, tmp_path, guest_dir, record):
    params = {"conf": str(fresh.conf_path), "libvirt_uri": fresh.libvirt_uri,
              "guest_dir": guest_dir}
    t0 = time.monotonic()
    procs = [subprocess.Popen(run_argv("01-qemu-rbd", tmp_path / f"run{i}.ipynb", params),
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in (1, 2)]
    outs = [p.communicate(timeout=600) for p in procs]
    seconds = time.monotonic() - t0
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-800:] for o in outs]
    texts = [(tmp_path / f"run{i}.ipynb").read_text() for i in (1, 2)]
    assert sum("waited for it to end" in t for t in texts) == 1, \
        "one run should have waited for the other"
    third = subprocess.run(run_argv("01-qemu-rbd", tmp_path / "run3.ipynb", params), cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-800:]
    assert read_summary(tmp_path / "run3.ipynb")["changed"] == 0
    record(seconds, "both succeeded (the second waited for the first); a third run changed "
                    "nothing")
