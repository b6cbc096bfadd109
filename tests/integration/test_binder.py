"""Binder, emulated: an unprivileged user builds and starts rbdnb the way repo2docker does.

As root (repo2docker's build does the same): a fresh user, the repository copied into
its home, binder/apt.txt already installed (scripts/setup.sh did it). Then, as that
user: a Python environment of its own that sees none of Debian's packages (Binder's
conda environment; here a venv of Debian's python3 without system site packages),
``pip install -r binder/requirements.txt``, ``binder/postBuild``, and ``binder/start``
twice, once before JupyterLab and once before papermill running runbooks 00-03 with no
parameters. The cluster, libvirt's session daemon and the VMs all run as that user.

Afterwards: no key in a file another user can read, nothing of the user's left running,
and the user removed.
"""
import base64
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from rbdnb.base import proc as _proc

from rbdnb.runbooks.run import read_summary
from tests.conftest import in_ci

ROOT = Path(__file__).resolve().parents[2]
USER = "rbdnb-binder"
RUNBOOKS = ["00-preflight", "01-qemu-rbd", "02-libvirt-rbd", "03-golden-image-clones",
            "05-live-migration", "06-disaster-recovery"]
ENV_DIR = ".binder-env"  # repo2docker's is /srv/conda/envs/notebook
NETWORK_ENV = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
               "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
               "PIP_CERT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS",
               "PIP_DEFAULT_TIMEOUT", "npm_config_registry", "npm_config_cafile"}


def processes_of(uid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live (not zombie) process of ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state != b"Z":
            found.append((int(entry), cmdline))
    return found


def kill_all(uid: int) -> None:
    """Stop what the test user still runs (only ever processes this test started)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, _ in processes_of(uid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while processes_of(uid) and time.monotonic() < deadline:
            time.sleep(0.2)


def remove_user() -> None:
    try:
        uid = pwd.getpwnam(USER).pw_uid
    except KeyError:
        return
    kill_all(uid)
    subprocess.run(["userdel", "-r", USER], capture_output=True, timeout=60)


class BinderUser:
    def __init__(self):
        entry = pwd.getpwnam(USER)
        self.uid, self.gid, self.home = entry.pw_uid, entry.pw_gid, Path(entry.pw_dir)
        self.env = {"HOME": str(self.home), "USER": USER, "LOGNAME": USER, "SHELL": "/bin/bash",
                    "LANG": "C.UTF-8", "PATH": f"{self.home}/{ENV_DIR}/bin:/usr/local/bin:"
                                              "/usr/bin:/bin",
                    # Two sites, for runbook 06 (binder/start makes one unless told).
                    "RBDNB_SANDBOX_SITES": "2",
                    # The build's network settings (proxy, CA bundle), as a Binder build has.
                    **{k: v for k, v in os.environ.items() if k in NETWORK_ENV}}
        self.ceph = {"CEPH_CONF": f"{self.home}/.local/state/rbdnb/sandbox/ceph.conf"}

    def popen(self, argv, **kw):
        return subprocess.Popen(argv, user=self.uid, group=self.gid, extra_groups=[],
                                env=self.env, cwd=self.home, umask=0o022, **kw)

    def run(self, *argv, timeout=300, check=True, env=None):
        proc = subprocess.run(list(argv), user=self.uid, group=self.gid, extra_groups=[],
                              env={**self.env, **(env or {})}, cwd=self.home, umask=0o022,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"as {USER}: {' '.join(argv)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc


@pytest.fixture(scope="module")
def binder():
    if os.geteuid() != 0:
        message = "emulating Binder needs root, to create the unprivileged user"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    remove_user()  # left by an interrupted run
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True,
                   timeout=60)
    user = BinderUser()
    try:
        # repo2docker copies the repository into the user's home.
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                "--exclude-standard"], cwd=ROOT, capture_output=True,
                               check=True, timeout=60).stdout.split(b"\0")
        for rel in filter(None, (f.decode() for f in files)):
            src, dst = ROOT / rel, user.home / rel
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(user.home)], check=True,
                       timeout=60)
        t0 = time.monotonic()
        user.run("/usr/bin/python3", "-m", "venv", ENV_DIR)
        user.run("pip", "install", "-q", "--disable-pip-version-check", "-r",
                 "binder/requirements.txt", timeout=900)
        user.timings = {"requirements": time.monotonic() - t0}
        user.post_build = user.run("binder/postBuild", timeout=300)
        user.timings["postBuild"] = time.monotonic() - t0 - user.timings["requirements"]
        yield user
    finally:
        # The last test takes the sandbox down; this is only for a run that failed before.
        subprocess.run(["runuser", "-u", USER, "--", f"{user.home}/{ENV_DIR}/bin/rbdnb",
                        "sandbox", "down"], capture_output=True, timeout=300)
        remove_user()


def test_postbuild_links_debians_bindings_and_installs_the_kernel(binder):
    assert "linked Debian's rados, rbd and libvirt bindings" in binder.post_build.stdout
    out = binder.run("python", "-c", "import sys, rados, rbd, libvirt, rbdnb; "
                     "print(sys.prefix, rados.__file__, rbd.__file__, libvirt.__file__)").stdout
    prefix, *modules = out.split()
    assert prefix == str(binder.home / ENV_DIR)
    for module in modules:
        assert module.startswith(prefix) and os.path.realpath(module).startswith(
            "/usr/lib/python3/dist-packages/"), module
    # Debian's other packages stay invisible: the environment is Binder-like.
    assert binder.run("python", "-c", "import apt_pkg", check=False).returncode != 0
    specs = json.loads(binder.run("jupyter", "kernelspec", "list", "--json").stdout)
    spec = specs["kernelspecs"]["rbdnb"]
    assert spec["resource_dir"].startswith(str(binder.home / ENV_DIR))
    assert Path(spec["spec"]["argv"][0]).parent == binder.home / ENV_DIR / "bin", spec
    # What requirements.txt pinned is what was installed.
    frozen = dict(line.split("==") for line in binder.run(
        "pip", "freeze", "--exclude-editable").stdout.split() if "==" in line)
    pinned = [line for line in (ROOT / "binder/requirements.txt").read_text().split()
              if "==" in line]
    assert pinned and all(frozen.get(p.split("==")[0]) == p.split("==")[1] for p in pinned)
    assert binder.run("pip", "check").returncode == 0
    # The JupyterLab side: the prebuilt extension linked in, the server extension enabled.
    assert "frontend: linked" in binder.post_build.stdout, binder.post_build.stdout
    labext = binder.run("jupyter", "labextension", "list")
    assert re.search(r"@rbdnb/jupyterlab v\S+ .*enabled.*OK", labext.stdout + labext.stderr)
    server = binder.run("jupyter", "server", "extension", "list")
    assert re.search(r"rbdnb\.server .*enabled", server.stdout + server.stderr)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_start_opens_jupyterlab_with_the_sandbox_running(binder):
    port, token = _free_port(), secrets.token_hex(16)
    server = binder.popen(["binder/start", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                           f"--port={port}", f"--IdentityProvider.token={token}",
                           f"--ServerApp.root_dir={binder.home}"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not answer in 120 s"
                time.sleep(0.5)
        # The sandbox was up before JupyterLab started, as this user, with session libvirt.
        status = json.loads(binder.run("rbdnb", "sandbox", "status", "--json").stdout)
        assert status["healthy"] and status["libvirt_uri"] == "qemu:///session", status
        assert status["dir"] == str(binder.home / ".local/state/rbdnb/sandbox")
        assert status["libvirt_reachable"] and status["libvirt_owner"] == "rbdnb"
        ours = dict(processes_of(binder.uid))
        for daemon in status["daemons"]:
            assert daemon["running"] and daemon["pid"] in ours, daemon
        assert any(c.startswith("/usr/sbin/libvirtd") for c in ours.values()), ours
        # start exported the sandbox's environment to the server it exec'ed (same pid).
        environ = dict(v.split("=", 1) for v in Path(f"/proc/{server.pid}/environ").read_bytes()
                       .decode().split("\0") if "=" in v)
        assert environ["CEPH_CONF"] == status["conf"]
        assert environ["LIBVIRT_DEFAULT_URI"] == "qemu:///session"
        with urllib.request.urlopen(f"{base}/api/kernelspecs?token={token}", timeout=10) as r:
            assert "rbdnb" in json.load(r)["kernelspecs"]
        with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=10) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
        # rbdnb's server extension answers there, with the user's cluster.
        with urllib.request.urlopen(f"{base}/rbdnb/api/status?token={token}", timeout=30) as r:
            lab_status = json.load(r)
        assert lab_status["health"] == "HEALTH_OK" and lab_status["fsid"] == status["fsid"]
        assert lab_status["libvirt_uri"] == "qemu:///session" and lab_status["libvirt_reachable"]
        with urllib.request.urlopen(f"{base}/rbdnb/api/runbooks?token={token}", timeout=30) as r:
            listed = [b["name"] for b in json.load(r)]
            assert listed[:4] == RUNBOOKS[:4] and set(RUNBOOKS) <= set(listed), listed
        # The status bar's reading names both hosts (binder/start makes two).
        assert len(lab_status["hosts"]) == 2 and all(h["reachable"] for h in lab_status["hosts"])
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{base}/api/kernelspecs", timeout=10)
        assert denied.value.code == 403
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def executed(binder):
    """Runbooks 00-03, 05 and 06 run by papermill with no parameters, after binder/start
    (two libvirt hosts: 05 live-migrates a VM between them; two sites: 06 fails over)."""
    script = "set -e; mkdir -p runs; for nb in " + " ".join(RUNBOOKS) + "; do " \
             "papermill --no-progress-bar runbooks/$nb.ipynb runs/$nb.ipynb; done"
    t0 = time.monotonic()
    proc = binder.run("binder/start", "bash", "-c", script, timeout=1500, check=False)
    binder.timings["runbooks"] = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    # The second start found the sandbox running and changed nothing.
    assert "sandbox already running" in proc.stdout, proc.stdout
    return {nb: json.loads((binder.home / "runs" / f"{nb}.ipynb").read_text())
            for nb in RUNBOOKS}


def _notes(notebook: dict) -> str:
    """The runbook's step notes (``**step**: result``), as displayed."""
    return "\n".join("".join(o.get("data", {}).get("text/markdown", ""))
                     for c in notebook["cells"] for o in c.get("outputs", []))


def test_runbooks_ran_unprivileged_with_no_parameters(binder, executed):
    for name, notebook in executed.items():
        errors = [o for c in notebook["cells"] for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, (name, errors)
        summary = read_summary(binder.home / "runs" / f"{name}.ipynb")
        assert summary["runbook"] == name and not summary["dry_run"], summary
        assert summary["steps"] >= 2 and (name == "00-preflight" or summary["changed"]), summary
    preflight = _notes(executed["00-preflight"])
    assert "**libvirt**: qemu:///session" in preflight
    assert "**libvirt session mode**: skipped as unprivileged" in preflight
    # The guest booted from its RBD disk and reported it (runbook 02's `%virsh console` step).
    assert ("**the guest of rbdnb-guide-vm sees vda**: console shows RBDNB-GUEST-READY"
            in _notes(executed["02-libvirt-rbd"]))
    # The VM moved to the second host (a session libvirtd of the user's) and back, running.
    moved = _notes(executed["05-live-migration"])
    assert "live migrations, the VM back on qemu:///session" in moved, moved[-3000:]
    assert "the guest never rebooted" in moved and "0 bytes of storage copied" in moved
    # Its disks went to site b and back, planned and not, checked by checksum.
    recovered = _notes(executed["06-disaster-recovery"])
    assert "planned failover" in recovered and "resynced from b first" in recovered, \
        recovered[-3000:]
    # The defaults put the guest and the keyring in the user's data dir.
    data = binder.home / ".local/share/rbdnb"
    assert (data / "guest/guest.qcow2").is_file()
    assert (data / "keyrings/ceph.client.libvirt.keyring").stat().st_mode & 0o777 == 0o600
    assert (data / "keyrings").stat().st_mode & 0o777 == 0o700


def test_vms_boot_from_rbd_clones_under_session_libvirt(binder, executed):
    running = binder.run("virsh", "-c", "qemu:///session", "list", "--name").stdout.split()
    assert {"rbdnb-guide-vm", "rbdnb-golden-pool-vm-001", "rbdnb-golden-pool-vm-002"} <= \
        set(running), running
    for vm in ("rbdnb-guide-vm", "rbdnb-golden-pool-vm-001"):
        xml = binder.run("virsh", "-c", "qemu:///session", "dumpxml", vm).stdout
        assert re.search(r"<disk type=.network.", xml) and "protocol='rbd'" in xml, xml
        log = binder.home / f".local/share/rbdnb/guest/{vm}.console.log"
        assert "RBDNB-GUEST-READY" in log.read_text(errors="replace")
    # The disk of a golden-pool VM is a copy-on-write clone of the golden snapshot.
    info = json.loads(binder.run("rbd", "info", "golden-pool/vm-001", "--format", "json",
                                 env=binder.ceph).stdout)
    assert info["parent"]["image"] == "golden" and info["parent"]["snapshot"] == "base"
    # QEMU itself runs as the user.
    qemus = [c for _, c in processes_of(binder.uid) if "qemu-system" in c]
    assert len(qemus) >= 3, qemus


def _keys(binder) -> set[str]:
    """Every cephx key of the user's sandbox: its entities and the keyrings on disk."""
    auth = json.loads(binder.run("ceph", "auth", "ls", "--format", "json",
                                 env=binder.ceph).stdout)
    keys = {e["key"] for e in auth["auth_dump"]}
    sandbox = binder.home / ".local/state/rbdnb/sandbox"
    for keyring in sandbox.rglob("keyring"):
        keys.update(re.findall(r"key = (\S+)", keyring.read_text()))
    assert len(keys) >= 6, keys  # mon., admin, osd.0, mgr.x, libvirt, golden
    return keys


def _files_holding(uid: int, roots: list[Path], keys: set[str]) -> list[Path]:
    needles = [k.encode() for k in keys] + [base64.b64decode(k)[-16:] for k in keys]
    holding = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in filenames:
                path = Path(dirpath) / name
                try:
                    st = path.lstat()
                    if st.st_uid != uid or not path.is_file() or st.st_size > 256 * 1024**2:
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                if any(n in data for n in needles):
                    holding.append(path)
    return holding


def _readable_by_others(paths: list[Path]) -> list[str]:
    """Which of ``paths`` another user (nobody) can read, directories on the way included."""
    check = subprocess.run(["sh", "-c", 'for f; do [ -r "$f" ] && echo "$f"; done; true', "sh",
                            *map(str, paths)], user="nobody", group="nogroup", extra_groups=[],
                           env={"PATH": "/usr/bin:/bin"}, cwd="/", capture_output=True,
                           text=True, timeout=60, check=True)
    return check.stdout.split()


def test_no_key_is_readable_by_others_or_shown(binder, executed):
    keys = _keys(binder)
    roots = [binder.home, Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")]
    holding = _files_holding(binder.uid, roots, keys)
    names = {p.name for p in holding}
    # Where keys are meant to be: the sandbox's keyrings, client.libvirt's keyring, libvirt's
    # session secrets, the monitor's store.
    assert "ceph.client.admin.keyring" in names and "ceph.client.libvirt.keyring" in names
    assert any(p.suffix == ".base64" and ".config/libvirt/secrets" in str(p) for p in holding)
    for path in holding:
        assert not str(path).startswith(str(binder.home / "runs")), path
        assert ENV_DIR not in str(path), path
    assert _readable_by_others(holding) == []
    # Not on any command line of the user's processes (QEMU gets the key encrypted).
    for pid, cmdline in processes_of(binder.uid):
        assert not any(k in cmdline for k in keys), (pid, cmdline[:200])


def test_down_leaves_nothing_running(binder, executed):
    keys = _keys(binder)
    # The libvirtd rbdnb started dies, and libvirt's client autostarts another (as any
    # `virsh -c qemu:///session` does): down stops that one too, whoever restarted it.
    pidfile = binder.home / ".cache/libvirt/libvirtd.pid"
    first = int(pidfile.read_text())
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _proc.start_time(first) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    binder.run("virsh", "-c", "qemu:///session", "list", "--all", timeout=120)
    second = int(pidfile.read_text())
    assert second != first and _proc.start_time(second) is not None
    proc = binder.run("rbdnb", "sandbox", "down", timeout=300)
    assert "libvirtd" in proc.stdout and "virtlogd" in proc.stdout, proc.stdout
    deadline = time.monotonic() + 30
    while processes_of(binder.uid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(binder.uid) == []
    assert not (binder.home / ".local/state/rbdnb/sandbox").exists()
    # What stays (client.libvirt's keyring, libvirt's secrets of other clusters) stays private.
    left = _files_holding(binder.uid, [binder.home, Path("/tmp"), Path("/var/tmp")], keys)
    assert _readable_by_others(left) == []
    print(f"binder emulation timings (s): "
          f"{ {k: round(v, 1) for k, v in binder.timings.items()} }")
