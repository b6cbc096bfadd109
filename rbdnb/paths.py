"""Where rbdnb keeps its files, for root and for an unprivileged user.

As root rbdnb serves the machine (``/var/lib/rbdnb``, ``/run/rbdnb``, libvirt's
``qemu:///system``); as anyone else it keeps to the user's own directories, as
libvirt's session daemon does (``qemu:///session``). ``$RBDNB_DATA_DIR`` and
``$RBDNB_RUNTIME_DIR`` override the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def privileged() -> bool:
    return os.geteuid() == 0


def _home(*parts: str) -> Path:
    return Path(os.path.expanduser("~"), *parts)


def data_dir() -> Path:
    """Kept files: built guests, keyrings written for libvirt clients."""
    if os.environ.get("RBDNB_DATA_DIR"):
        return Path(os.environ["RBDNB_DATA_DIR"]).expanduser()
    if privileged():
        return Path("/var/lib/rbdnb")
    base = os.environ.get("XDG_DATA_HOME") or _home(".local", "share")
    return Path(base) / "rbdnb"


def guest_dir() -> Path:
    """Where the offline guest is built by default."""
    return data_dir() / "guest"


def runtime_dir() -> Path:
    """Records of running daemons rbdnb started (the libvirt daemons it shares)."""
    if os.environ.get("RBDNB_RUNTIME_DIR"):
        return Path(os.environ["RBDNB_RUNTIME_DIR"]).expanduser()
    if privileged():
        return Path("/run/rbdnb")
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "rbdnb"
    return _home(".cache", "rbdnb")


def default_libvirt_uri() -> str:
    """libvirt's system daemon as root, the user's session daemon otherwise."""
    return "qemu:///system" if privileged() else "qemu:///session"


@dataclass(frozen=True)
class LibvirtDaemons:
    """Where the libvirt daemons serving ``uri`` listen and write their pid files."""

    uri: str
    libvirtd_socket: str
    virtlogd_socket: str
    libvirtd_pidfile: str
    virtlogd_pidfile: str
    logs: str


def libvirt_daemons(uri: str | None = None) -> LibvirtDaemons:
    """The system daemons' paths, or this user's session daemons' (as libvirt lays them out:
    ``$XDG_RUNTIME_DIR/libvirt`` if set, else ``~/.cache/libvirt``)."""
    uri = uri or default_libvirt_uri()
    if uri == "qemu:///system":
        return LibvirtDaemons(uri, "/run/libvirt/libvirt-sock", "/run/libvirt/virtlogd-sock",
                              "/run/libvirtd.pid", "/run/virtlogd.pid", "/var/log/libvirt")
    run = (Path(os.environ["XDG_RUNTIME_DIR"]) / "libvirt" if os.environ.get("XDG_RUNTIME_DIR")
           else _home(".cache", "libvirt"))
    return LibvirtDaemons(uri, str(run / "libvirt-sock"), str(run / "virtlogd-sock"),
                          str(run / "libvirtd.pid"), str(run / "virtlogd.pid"),
                          str(_home(".cache", "libvirt")))
