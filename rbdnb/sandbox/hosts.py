"""More libvirt hosts for one sandbox: the hypervisors of a small fleet, on one machine.

Host 1 is the sandbox's libvirt (the machine's ``qemu:///system`` as root, the user's
``qemu:///session`` otherwise). ``Sandbox(hosts=N)`` adds hosts 2..N, each a libvirtd of
its own, with its own host UUID (libvirt refuses to migrate a VM to a host whose UUID is
its own), its own definitions and runtime state, and its socket where clients reach it:

* as root, a system libvirtd and virtlogd in a private mount namespace where libvirt's
  state directories are empty tmpfs, the socket in the host's directory outside it:
  ``qemu:///system?socket=DIR/sock/libvirt-sock``;
* as anyone else, a session libvirtd and virtlogd with XDG directories of their own, in
  a private (0700) directory with a short path (a session daemon makes its VMs' monitor
  sockets under them, and a unix socket's path has 107 bytes at most):
  ``qemu:///session?socket=/tmp/rbdnb-UID-ID-hostN/r/libvirt/libvirt-sock``.

They share the machine's network, so QEMU migrates between them over loopback
(``tcp://127.0.0.1``), and every host reaches the sandbox's monitor. ``stop_host`` ends
everything a host runs: its VMs, its daemons, whatever else runs in its namespace.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import uuid as uuidlib
from pathlib import Path

from ..base import paths
from ..base import proc as _proc
from ..base.waiting import wait_until
from ..errors import SandboxError

MAX_HOSTS = 8
# What a root host keeps apart from the machine's libvirt: runtime state (pid files,
# sockets), definitions, the QEMU driver's state and caches. Its logs go to DIR/log.
PRIVATE_STATE = ("/run", "/etc/libvirt", "/var/lib/libvirt", "/var/cache/libvirt")
START_TIMEOUT = 60.0


def host_name(index: int) -> str:
    """``host2``, ``host3``, ...: the name of the sandbox's host number ``index``."""
    return f"host{index}"


def host_base(sandbox_dir: Path, name: str) -> Path:
    """Where a host keeps its state: a root host in the sandbox dir (its sockets are short:
    its VMs' are in its namespace); an unprivileged one in a short private directory under
    the temporary directory, named by user, sandbox and host."""
    if paths.privileged():
        return Path(sandbox_dir) / "hosts" / name
    digest = hashlib.sha1(str(Path(sandbox_dir).absolute()).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"rbdnb-{os.geteuid()}-{digest}-{name}"


def _private_base(base: Path) -> None:
    """Make ``base`` 0700, or accept it only if it is this user's own 0700 directory (not a
    link): a directory under /tmp that someone else made first is refused."""
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise SandboxError(f"{base} is not a private directory of this user: remove it (a "
                           f"libvirt host of the sandbox keeps its state there)")


def host_uri(base: Path) -> str:
    """The libvirt URI of the host whose state is in ``base``."""
    return f"qemu:///{'system' if paths.privileged() else 'session'}?socket={_socket(base)}"


def _socket(base: Path) -> Path:
    if paths.privileged():
        return base / "sock" / "libvirt-sock"
    return base / "r" / "libvirt" / "libvirt-sock"


def _sh(argv: list, what: str, timeout: float = 30) -> None:
    _proc.run([str(a) for a in argv], timeout=timeout, what=what)


def _enter(base: Path) -> list[str]:
    return ["nsenter", f"--mount={base / 'ns' / 'mnt'}", "--"]


def _namespace_made(base: Path) -> bool:
    """Whether the host's mount namespace exists (bound to DIR/ns/mnt)."""
    mnt = base / "ns" / "mnt"
    try:
        with open("/proc/self/mountinfo") as fh:
            return any(f" {mnt} " in line for line in fh)
    except OSError:
        return False


# Inside the namespace: libvirt's state on tmpfs, its logs bound to the host's log dir ($1).
_MOUNTS = " && ".join([f"mkdir -p {d} && mount -t tmpfs -o mode=0755 rbdnb-host {d}"
                       for d in PRIVATE_STATE] +
                      ['mkdir -p /var/log/libvirt && mount --bind "$1" /var/log/libvirt'])


def _make_namespace(base: Path) -> None:
    """A persistent private mount namespace, bound to DIR/ns/mnt, with libvirt's state
    directories empty (tmpfs) and its log directory DIR/log; all or nothing (a namespace
    half made is dropped again)."""
    ns = base / "ns"
    ns.mkdir(parents=True, exist_ok=True)
    try:
        _sh(["mount", "--bind", ns, ns], "binding the host's namespace directory")
        _sh(["mount", "--make-private", ns], "making the host's namespace directory private")
        (ns / "mnt").touch()
        _sh(["unshare", f"--mount={ns / 'mnt'}", "--propagation", "private", "true"],
            "making the host's mount namespace")
        # The paths go as arguments, never into the script.
        _sh([*_enter(base), "sh", "-c", _MOUNTS, "sh", base / "log"],
            "mounting the host's state")
    except BaseException:
        _drop_namespace(base)
        raise


def _namespace_ready(base: Path) -> bool:
    """Whether the host's namespace has its private state mounted (else a libvirtd started
    in it would share the machine's)."""
    try:
        out = subprocess.run([*_enter(base), "cat", "/proc/self/mountinfo"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return sum(" rbdnb-host " in line for line in out.splitlines()) >= len(PRIVATE_STATE)


def _drop_namespace(base: Path) -> None:
    ns = base / "ns"
    for path in (ns / "mnt", ns, ns):  # ns twice: a retry may have bound it again
        try:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            pass


def _in_namespace(base: Path) -> list[_proc.ProcessRef]:
    """The live processes whose mount namespace is the host's."""
    try:
        wanted = f"mnt:[{os.stat(base / 'ns' / 'mnt').st_ino}]"
    except OSError:
        return []
    if not _namespace_made(base):
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(entry / "ns" / "mnt") == wanted:
                name = (entry / "comm").read_text().strip()
                ref = _proc.ProcessRef.of(name, int(entry.name))
                if ref is not None:
                    refs_state = (entry / "stat").read_text()
                    if ") Z" not in refs_state:  # a zombie is not running
                        found.append(ref)
    return found


def _session_env(base: Path) -> dict[str, str]:
    return {**os.environ, "XDG_RUNTIME_DIR": str(base / "r"),
            "XDG_CONFIG_HOME": str(base / "c"), "XDG_CACHE_HOME": str(base / "k")}


def start_host(base: Path, name: str, host_uuid: str | None = None) -> dict:
    """Start the libvirt daemons of one more host in ``base``; its record (name, uri,
    uuid, base, daemons). A host whose daemons died is started again in place (as root,
    in the namespace it had, so its definitions are kept)."""
    host_uuid = host_uuid or str(uuidlib.uuid4())
    base = Path(base)
    _check_base(base)
    try:
        return _start(base, name, host_uuid)
    except BaseException:
        # Nothing half-started is left: daemons, mounts, directories.
        stop_host({"name": name, "base": str(base)}, remove=False)
        raise


def _check_base(base: Path) -> None:
    """A host directory whose path can go into libvirt's conf and a URI, and whose socket
    paths fit a unix socket (107 bytes)."""
    import re
    text = str(base)
    if not re.fullmatch(r"[A-Za-z0-9_./+-]+", text):
        raise SandboxError(f"the sandbox directory {base} has characters a libvirt host's "
                           f"paths cannot carry (spaces, quotes, ...): use a plainer path")
    if any(text == d or text.startswith(d + "/") for d in PRIVATE_STATE):
        raise SandboxError(f"the sandbox directory {base} is under {PRIVATE_STATE}, which a "
                           f"libvirt host of the sandbox hides: use another")
    if len(str(_socket(base).with_name("libvirt-admin-sock"))) > 107:
        raise SandboxError(f"the sandbox directory {base} is too deep for a libvirt host's "
                           f"sockets (107 bytes at most): use a shorter path")


def _start(base: Path, name: str, host_uuid: str) -> dict:
    if paths.privileged():
        paths.ensure_dir(base, 0o755)
        paths.ensure_dir(base / "sock", 0o700)
    else:
        _private_base(base)
    log = paths.ensure_dir(base / "log", 0o755 if paths.privileged() else 0o700)
    if paths.privileged():
        conf = base / "libvirtd.conf"
        conf.write_text(f'unix_sock_dir = "{base / "sock"}"\nhost_uuid = "{host_uuid}"\n'
                        f'log_outputs = "3:file:{log / "libvirtd.log"}"\n')
        if _namespace_made(base) and not _namespace_ready(base):
            _drop_namespace(base)  # half made by a run that was killed: made again
        if not _namespace_made(base):
            _make_namespace(base)
        running = {r.name for r in _in_namespace(base)}
        if "virtlogd" not in running:
            _sh([*_enter(base), "virtlogd", "-d"], f"starting virtlogd of {name}")
        if "libvirtd" not in running:
            _sh([*_enter(base), "libvirtd", "-d", "-f", conf], f"starting libvirtd of {name}")
    else:
        env = _session_env(base)
        for sub in ("r", "c/libvirt", "k"):
            paths.ensure_dir(base / sub, 0o700)
        (base / "c" / "libvirt" / "libvirtd.conf").write_text(
            f'host_uuid = "{host_uuid}"\nlog_outputs = "3:file:{log / "libvirtd.log"}"\n')
        if not _proc.unix_socket_answers(str(base / "r" / "libvirt" / "virtlogd-sock")):
            _proc.run(["virtlogd", "-d", "-p", str(base / "r" / "virtlogd.pid")], timeout=30,
                      env=env, what=f"starting virtlogd of {name}")
        if not _proc.unix_socket_answers(str(_socket(base))):
            _proc.run(["libvirtd", "-d", "-p", str(base / "r" / "libvirtd.pid")],
                      timeout=30, env=env, what=f"starting libvirtd of {name}")
    if not wait_until(lambda: _proc.unix_socket_answers(str(_socket(base))), START_TIMEOUT,
                      interval=0.05):
        raise SandboxError(f"libvirtd of {name} did not start serving {_socket(base)}; "
                           f"see {log}")
    return {"name": name, "uri": host_uri(base), "uuid": host_uuid, "base": str(base),
            "daemons": [r.to_json() for r in host_daemons(base)]}


def host_daemons(base: Path) -> list[_proc.ProcessRef]:
    """The host's libvirtd and virtlogd as they run now."""
    base = Path(base)
    if paths.privileged():
        return [r for r in _in_namespace(base) if r.name in ("libvirtd", "virtlogd")]
    refs = []
    for name in ("libvirtd", "virtlogd"):
        pid = _proc.read_pidfile(str(base / "r" / f"{name}.pid"))
        ref = _proc.ProcessRef.of(name, pid) if pid else None
        if ref is not None and _comm(pid) == name:
            refs.append(ref)
    return refs


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def host_alive(record: dict) -> bool:
    """Whether the host's libvirtd runs and accepts connections (asks it nothing)."""
    base = Path(record["base"])
    return any(r.name == "libvirtd" for r in host_daemons(base)) and \
        _proc.unix_socket_answers(str(_socket(base)))


def stop_host(record: dict, *, remove: bool = True) -> list[str]:
    """Stop everything the host runs -- its VMs, its libvirtd and virtlogd, anything else
    in its namespace -- and remove its state (unless ``remove`` is false); what was stopped."""
    base = Path(record["base"])
    name = record["name"]
    stopped = []
    if paths.privileged():
        # Its VMs first: libvirt gives each QEMU a mount namespace of its own, so they are
        # found by the pid files in the host's namespace. Then everything in the host's
        # namespace, daemons last.
        for ref in _vms_of_namespace(base):
            if ref.stop(timeout=2):
                stopped.append(f"a VM of {name}")
        for _ in range(3):
            live = _in_namespace(base)
            if not live:
                break
            qemus = [r for r in live if r.name not in ("libvirtd", "virtlogd")]
            for ref in qemus + [r for r in live if r not in qemus]:
                if ref.stop(timeout=5 if ref.name == "libvirtd" else 2):
                    stopped.append(f"{ref.name} of {name}")
        _drop_namespace(base)
    else:
        for ref in host_daemons(base):
            if ref.name == "libvirtd" and ref.stop(timeout=5):
                stopped.append(f"libvirtd of {name}")
        # Its VMs: QEMU processes whose command line names the host's directories.
        for ref in _vms_of(base):
            if ref.stop(timeout=2):
                stopped.append(f"a VM of {name}")
        for ref in host_daemons(base):
            if ref.stop(timeout=5):
                stopped.append(f"{ref.name} of {name}")
    if remove:
        _remove(base)
    return stopped


def _vms_of_namespace(base: Path) -> list[_proc.ProcessRef]:
    """The QEMU processes a root host's libvirtd started (their pid files, read in its
    namespace)."""
    if not _namespace_made(base):
        return []
    try:
        out = subprocess.run([*_enter(base), "sh", "-c",
                              "for f in /run/libvirt/qemu/*.pid; do cat $f; echo; done "
                              "2>/dev/null; true"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for word in out.split():
        if word.isdigit() and (_comm(int(word)) or "").startswith("qemu"):
            ref = _proc.ProcessRef.of("qemu", int(word))
            if ref is not None:
                found.append(ref)
    return found


def _vms_of(base: Path) -> list[_proc.ProcessRef]:
    """This user's QEMU processes whose command line names the host's directories."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.geteuid():
                continue
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith("qemu-system") and \
                any(str(base) in a for a in argv):
            ref = _proc.ProcessRef.of("qemu", int(entry.name))
            if ref is not None:
                found.append(ref)
    return found


def _remove(base: Path) -> None:
    if paths.privileged() and _namespace_made(base):
        return  # never delete through a mount that is still there
    shutil.rmtree(base, ignore_errors=True)
    if paths.privileged():
        with contextlib.suppress(OSError):
            base.parent.rmdir()  # the sandbox's hosts/, once empty


def signal_host(record: dict, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the host's libvirtd (for fault tests: a host that died or froze)."""
    for ref in host_daemons(Path(record["base"])):
        if ref.name == "libvirtd":
            os.kill(ref.pid, sig)


def wait_gone(record: dict, timeout: float = 10) -> bool:
    """Whether the host's libvirtd is gone within ``timeout`` s."""
    return bool(wait_until(lambda: not any(r.name == "libvirtd" for r in
                                           host_daemons(Path(record["base"]))),
                           timeout, interval=0.1))
