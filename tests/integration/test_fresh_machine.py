"""The README's main job as on a machine where rbdnb never ran.

``scripts/setup.sh`` ends with ``rbdnb sandbox up`` and ``rbdnb run
runbooks/02-libvirt-rbd.ipynb`` with no parameters. Here that runs against a data dir,
a runtime dir and a sandbox dir that do not exist yet, with a umask of 077 (the
strictest an operator may have), then every runbook with no parameters in the
documented order. Every directory rbdnb makes must get the mode fit for what it holds,
whatever existed before and whatever the umask.
"""
import contextlib
import json
import os
import shutil
import signal
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


# What libvirt keeps on a machine: definitions, runtime state, caches, logs. On a machine where
# rbdnb never ran none of it holds rbdnb's objects; here another sandbox (the developer's, an
# earlier run's) may have defined the guide's pool, secret and VM under the same names in the
# system libvirtd. Each runs in a private mount namespace where these are empty, with a
# libvirtd of its own: the fresh machine's.
LIBVIRT_STATE = ["/run", "/etc/libvirt/qemu", "/etc/libvirt/storage", "/etc/libvirt/secrets",
                 "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt"]


def _sh(*argv):
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def fresh_libvirt(base: Path):
    """A persistent private mount namespace (bound to a file) with libvirt's state empty;
    yields the command prefix that runs a program inside it. As root only: a user's session
    libvirtd keeps its state under the fresh XDG directories anyway."""
    if os.geteuid() != 0:
        yield []
        return
    holder = base / "ns"
    holder.mkdir()
    _sh("mount", "--bind", str(holder), str(holder))
    _sh("mount", "--make-private", str(holder))
    (holder / "mnt").touch()
    try:
        _sh("unshare", f"--mount={holder / 'mnt'}", "--propagation", "private", "true")
        enter = ["nsenter", f"--mount={holder / 'mnt'}", f"--wd={ROOT}", "--"]
        mounts = " && ".join(f"mount -t tmpfs -o mode=0755 rbdnb-fresh {d}"
                             for d in LIBVIRT_STATE if os.path.isdir(d))
        _sh(*enter, "sh", "-c", mounts)
        yield enter
        inside = in_namespace(holder / "mnt")
        for pid in inside:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not inside, f"processes left in the fresh machine's namespace: {inside}"
    finally:
        subprocess.run(["umount", str(holder / "mnt")], capture_output=True, timeout=60)
        subprocess.run(["umount", str(holder)], capture_output=True, timeout=60)


def in_namespace(bound: Path) -> list[int]:
    """The processes (not zombies) whose mount namespace is the one bound at ``bound``."""
    wanted = f"mnt:[{os.stat(bound).st_ino}]"
    found = []
    for pid, _ in processes():
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/ns/mnt") == wanted:
                found.append(pid)
    return found


@pytest.fixture
def fresh_machine():
    # Like /var/lib: a directory others may pass through, holding nothing of rbdnb's yet.
    base = Path(tempfile.mkdtemp(prefix="rbdnb-fresh-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    env = {k: v for k, v in os.environ.items()
           if k not in ("CEPH_CONF", "LIBVIRT_DEFAULT_URI", "PYTEST_CURRENT_TEST")}
    env.update(RBDNB_DATA_DIR=str(base / "data"), RBDNB_RUNTIME_DIR=str(base / "run"),
               RBDNB_SANDBOX_DIR=str(base / "sandbox"))
    with fresh_libvirt(base) as inside:
        def rbdnb(*argv, timeout=900):
            # umask 077, as the strictest operator's shell: rbdnb sets modes itself.
            return subprocess.run([*inside, "bash", "-c", 'umask 077; exec "$@"', "rbdnb",
                                   sys.executable, "-m", "rbdnb", *argv], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=timeout)
        try:
            yield base, rbdnb
        finally:
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
    # The guest booted from its RBD disk and reported it (runbook 02's `%virsh console` step).
    assert "the guest of rbdnb-guide-vm sees vda**: console shows RBDNB-GUEST-READY" in text

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
