"""The README's main job as on a machine where rbdnb never ran.

``scripts/setup.sh`` ends with ``rbdnb sandbox up`` and ``rbdnb run
runbooks/02-libvirt-rbd.ipynb`` with no parameters. Here that runs against a data dir,
a runtime dir and a sandbox dir that do not exist yet, with a umask of 077 (the
strictest an operator may have), then every runbook with no parameters in the
documented order. Every directory rbdnb makes must get the mode fit for what it holds,
whatever existed before and whatever the umask.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from rbdnb.runbooks.run import read_summary

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["00-preflight", "01-qemu-rbd", "02-libvirt-rbd", "03-golden-image-clones",
         "04-benchmark"]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def fresh_machine():
    # Like /var/lib: a directory others may pass through, holding nothing of rbdnb's yet.
    base = Path(tempfile.mkdtemp(prefix="rbdnb-fresh-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    env = {k: v for k, v in os.environ.items()
           if k not in ("CEPH_CONF", "LIBVIRT_DEFAULT_URI", "PYTEST_CURRENT_TEST")}
    env.update(RBDNB_DATA_DIR=str(base / "data"), RBDNB_RUNTIME_DIR=str(base / "run"),
               RBDNB_SANDBOX_DIR=str(base / "sandbox"))

    def rbdnb(*argv, timeout=900):
        # umask 077, as the strictest operator's shell: rbdnb sets modes itself.
        return subprocess.run(["bash", "-c", 'umask 077; exec "$@"', "rbdnb", sys.executable,
                               "-m", "rbdnb", *argv], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    yield base, rbdnb
    rbdnb("sandbox", "down")
    left = [pid for pid, cmdline in processes() if str(base) in cmdline]
    shutil.rmtree(base, ignore_errors=True)
    assert not left, "the fresh sandbox left processes running"


def processes():
    from rbdnb.base import proc as _proc
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if _proc.start_time(int(entry.name)) is not None:
                yield int(entry.name), cmdline


def test_the_readme_main_job_then_every_runbook_on_a_fresh_machine(fresh_machine):
    base, rbdnb = fresh_machine
    assert not (base / "data").exists() and not (base / "run").exists()
    up = rbdnb("sandbox", "up")
    assert up.returncode == 0, up.stderr[-1500:]

    # The main job, exactly as scripts/setup.sh runs it.
    runs = base / "runs"
    main = rbdnb("run", "runbooks/02-libvirt-rbd.ipynb", "--output", str(runs / "02.ipynb"),
                 "--html", str(runs / "02.html"))
    assert main.returncode == 0, (main.stdout + main.stderr)[-2000:]
    summary = read_summary(runs / "02.ipynb")
    assert summary["changed"] > 0, summary
    text = (runs / "02.ipynb").read_text()
    assert "the guest booted from RBD" in text and "RBDNB-GUEST-READY" in text

    # Every directory got the mode fit for what it holds, under umask 077.
    data = base / "data"
    assert mode(data) == 0o755 and mode(data / "guest") == 0o755
    assert mode(data / "keyrings") == 0o700
    assert mode(data / "keyrings" / "ceph.client.libvirt.keyring") == 0o600
    assert mode(data / "guest" / "guest.vmlinuz") == 0o644
    assert mode(base / "run") == 0o700 and mode(base / "sandbox") == 0o700
    assert mode(runs / "02.ipynb") == 0o600

    # Then every runbook with no parameters, in the documented order.
    for name in ORDER:
        out = runs / f"{name}.ipynb"
        proc = rbdnb("run", f"runbooks/{name}.ipynb", "--output", str(out))
        assert proc.returncode == 0, (name, (proc.stdout + proc.stderr)[-2000:])
        assert read_summary(out)["steps"] > 0
    assert read_summary(runs / "02-libvirt-rbd.ipynb")["changed"] == 0  # the second 02 run
    refused = rbdnb("run", "runbooks/99-teardown.ipynb", "--output", str(runs / "99.ipynb"))
    assert refused.returncode == 2 and "confirm True" in refused.stderr
    torn = rbdnb("run", "runbooks/99-teardown.ipynb", "-p", "confirm", "True",
                 "--output", str(runs / "99.ipynb"))
    assert torn.returncode == 0, torn.stderr[-1500:]
    status = json.loads(rbdnb("sandbox", "status", "--json").stdout)
    assert status["healthy"], status["health"]


def test_another_user_sees_the_kernel():
    """The kernel spec is installed readable like the venv (it was 0700: NoSuchKernel)."""
    probe = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c", "1"],
                           capture_output=True, timeout=60)
    where = subprocess.run([sys.executable, "-m", "rbdnb", "kernel", "install"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120, check=True).stdout
    spec = Path(where.rsplit(" in ", 1)[1].strip())
    assert mode(spec) == 0o755 and mode(spec / "kernel.json") == 0o644
    if probe.returncode == 0:  # the venv itself is reachable by others here
        listed = subprocess.run(["runuser", "-u", "nobody", "--", "env", "HOME=/tmp",
                                 sys.executable, "-m", "jupyter", "kernelspec", "list",
                                 "--json"], capture_output=True, text=True, timeout=120)
        assert "rbdnb" in json.loads(listed.stdout)["kernelspecs"], listed.stderr
