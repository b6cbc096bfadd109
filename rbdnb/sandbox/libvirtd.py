"""The libvirt daemon a sandbox uses, shared machine-wide.

As root the sandbox uses the machine's libvirtd (qemu:///system); as anyone else, the user's
session daemon (qemu:///session). Either way, a daemon already serving is used and left alone;
one the sandbox starts is recorded in paths.runtime_dir()/libvirtd.json and stopped by the
last sandbox of that user (or of the machine) to go down. rbdnb starts the session daemon
itself, without libvirt's idle timeout, so that nothing is left running after `down`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..base import paths
from ..base import proc as _proc
from ..base.waiting import wait_until
from ..errors import (SandboxError)
from .conf import locked


LIBVIRT_RECORD = "libvirtd.json"


def libvirt_reachable(uri: str, timeout: float = 5.0) -> bool:
    """Whether a daemon serving ``uri`` answers within ``timeout`` s (a frozen one, whose
    socket still accepts connections, does not). Asking never makes libvirt autostart a
    session daemon (see :func:`rbdnb.virt.reachable`)."""
    from ..virt import reachable
    return reachable(uri, timeout=timeout)


def read_record() -> dict:
    """The machine-wide record of the libvirt daemons rbdnb started and the sandboxes using them."""
    try:
        record = json.loads((paths.runtime_dir() / LIBVIRT_RECORD).read_text())
    except (FileNotFoundError, ValueError):
        record = {}
    record.setdefault("processes", [])
    record.setdefault("users", [])
    record.setdefault("started", [])   # the daemons rbdnb started for the sandboxes
    return record


def write_record(record: dict) -> None:
    """Write the libvirt daemon record atomically (0600)."""
    runtime = paths.ensure_runtime_dir()
    tmp = runtime / (LIBVIRT_RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, runtime / LIBVIRT_RECORD)


def use_libvirt(sandbox_dir: Path, uri: str) -> str:
    """Make sure libvirtd serves ``uri``; return who owns it.

    'rbdnb' if a sandbox started it, else 'machine' (qemu:///system) or 'session'
    (a session daemon of this user that something else started).
    """
    daemons = paths.libvirt_daemons(uri)
    with locked(paths.runtime_dir() / "libvirtd.lock"):
        record = read_record()
        ours = [_proc.ProcessRef.from_json(p) for p in record["processes"]]
        ours = [r for r in ours if r.alive()]
        if _proc.unix_socket_answers(daemons.libvirtd_socket):
            owner = "rbdnb" if any(r.name == "libvirtd" for r in ours) else (
                "machine" if uri == "qemu:///system" else "session")
        else:
            owner = "rbdnb"
            started = set(record["started"])
            if not _proc.unix_socket_answers(daemons.virtlogd_socket):
                ours.append(start_libvirt_daemon("virtlogd", daemons.virtlogd_socket,
                                                  daemons.virtlogd_pidfile, daemons.logs))
                started.add("virtlogd")
            ours.append(start_libvirt_daemon("libvirtd", daemons.libvirtd_socket,
                                              daemons.libvirtd_pidfile, daemons.logs))
            started.add("libvirtd")
            record["started"] = sorted(started)
        users = {u for u in record["users"] if u != str(sandbox_dir)}
        users.add(str(sandbox_dir))
        write_record({"processes": [r.to_json() for r in ours], "users": sorted(users),
                       "started": record["started"], "uri": uri})
        return owner


def start_libvirt_daemon(name: str, sock: str, pidfile: str, logs: str) -> _proc.ProcessRef:
    # Started without --timeout: a session daemon would otherwise exit when idle, and the
    # client library would start another one on the next connection.
    """Start libvirtd or virtlogd in the background and wait until it serves its socket."""
    # Its warnings and errors go to a log file (a daemon without systemd has no journal):
    # the "see LOGS" of an error below, and what tells a crash from a closed connection.
    os.makedirs(logs, exist_ok=True)
    env = {**os.environ, "LIBVIRT_LOG_OUTPUTS": f"3:file:{os.path.join(logs, name + '.log')}"}
    _proc.run([name, "-d"], timeout=30, env=env, what=f"starting {name}")
    # libvirtd autostarts its storage pools before it serves: one whose cluster is gone
    # can hold it up for a while.
    def serving():
        pid = _proc.unix_socket_answers(sock) and _proc.read_pidfile(pidfile)
        return _proc.ProcessRef.of(name, pid) if pid else None
    ref = wait_until(serving, 60, interval=0.05)
    if ref is not None:
        return ref
    raise SandboxError(f"{name} did not start serving {sock}; see {logs}")


def sandbox_alive(directory: str) -> bool:
    """Whether the sandbox in ``directory`` still runs (its recorded daemons are alive)."""
    try:
        state = json.loads((Path(directory) / "sandbox.json").read_text())
    except (OSError, ValueError):
        return False
    refs = [_proc.ProcessRef.from_json(d) for d in state.get("daemons", [])]
    return any(r.alive() for r in refs)


def release_libvirt(sandbox_dir: Path) -> list[str]:
    """Drop this sandbox from the libvirt daemons' users; stop them if rbdnb started them
    and no running sandbox is left -- also when one died and something restarted it since
    (libvirt's client autostarts a session daemon): whoever restarted it, it is the
    sandbox's, and nothing of the sandbox is left running."""
    with locked(paths.runtime_dir() / "libvirtd.lock"):
        record = read_record()
        users = [u for u in record["users"] if u != str(sandbox_dir) and sandbox_alive(u)]
        stopped = []
        refs = [_proc.ProcessRef.from_json(p) for p in record["processes"]]
        if not users:
            uri = record.get("uri") or paths.default_libvirt_uri()
            daemons = paths.libvirt_daemons(uri)
            pidfiles = {"libvirtd": daemons.libvirtd_pidfile, "virtlogd": daemons.virtlogd_pidfile}
            for name in record["started"]:
                if any(r.name == name and r.alive() for r in refs):
                    continue
                pid = _proc.read_pidfile(pidfiles[name])
                if pid and program_of(pid) == name and \
                        (ref := _proc.ProcessRef.of(name, pid)) is not None:
                    refs.append(ref)  # restarted by someone else since
            # libvirtd before virtlogd: libvirtd hands its logs to virtlogd.
            for ref in sorted(refs, key=lambda r: r.name != "libvirtd"):
                if ref.stop(timeout=15):
                    stopped.append(ref.name)
            refs = []
            record["started"] = []
        write_record({"processes": [r.to_json() for r in refs if r.alive()], "users": users,
                       "started": record["started"], "uri": record.get("uri")})
        return stopped


def program_of(pid: int) -> str | None:
    """The program a process of this user runs (basename of argv[0]), or None."""
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.geteuid():
            return None
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv0 = fh.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return None
    return os.path.basename(argv0)
