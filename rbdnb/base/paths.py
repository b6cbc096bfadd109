"""Where rbdnb keeps its files, for root and for an unprivileged user.

As root rbdnb serves the machine (``/var/lib/rbdnb``, ``/run/rbdnb``, libvirt's
``qemu:///system``); as anyone else it keeps to the user's own directories, as
libvirt's session daemon does (``qemu:///session``). ``$RBDNB_DATA_DIR`` and
``$RBDNB_RUNTIME_DIR`` override the defaults.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path


def privileged() -> bool:
    """Whether rbdnb runs as root (then machine-wide paths and qemu:///system)."""
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
    """Where the offline guest is built by default (mode 0755: libvirt's QEMU reads it)."""
    return data_dir() / "guest"


def keyring_dir() -> Path:
    """Where keyrings written for libvirt clients go by default (mode 0700, files 0600)."""
    return data_dir() / "keyrings"


# The mode of each directory rbdnb makes, by what it holds. The data dir only leads to
# the others, so anyone may pass through it; keyrings stay the owner's alone.
DATA_DIR_MODE = 0o755
GUEST_DIR_MODE = 0o755
PRIVATE_DIR_MODE = 0o700


def ensure_dir(path: str | os.PathLike, mode: int, *, own: bool = True) -> Path:
    """Make ``path`` (and missing parents, 0755) with exactly ``mode``, whatever the umask.

    With ``own`` (rbdnb's own directories) an existing directory of this user is set to
    ``mode`` too, so a directory an earlier version made 0700 becomes fit for its job;
    a directory the user named is left as it is (callers check it instead).
    """
    path = Path(path).expanduser().absolute()
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        os.chmod(directory, mode if directory == path else 0o755)
    if own and not missing:
        st = path.stat()
        if st.st_uid == os.geteuid() and (st.st_mode & 0o7777) != mode:
            os.chmod(path, mode)
    return path


def ensure_data_dirs() -> None:
    """The data dir and its guest dir, with their modes (keyrings: :func:`ensure_keyring_dir`).
    A data dir the user named (``$RBDNB_DATA_DIR``) keeps its own mode if it exists."""
    ensure_dir(data_dir(), DATA_DIR_MODE, own=not os.environ.get("RBDNB_DATA_DIR"))
    ensure_dir(guest_dir(), GUEST_DIR_MODE)


def ensure_keyring_dir(path: str | os.PathLike | None = None) -> Path:
    """The directory for keyrings, private to its owner: rbdnb's own, or one the user named."""
    if path is None:
        ensure_dir(data_dir(), DATA_DIR_MODE, own=not os.environ.get("RBDNB_DATA_DIR"))
        return ensure_dir(keyring_dir(), PRIVATE_DIR_MODE)
    return ensure_dir(path, PRIVATE_DIR_MODE, own=False)


def closed_to_others(path: str | os.PathLike) -> Path | None:
    """The first directory from ``path`` up to ``/`` that others may not pass through
    (no ``x`` for others), or None when all of them may be."""
    path = Path(path).expanduser().absolute()
    for directory in [path, *path.parents]:
        try:
            if not os.stat(directory).st_mode & stat.S_IXOTH:
                return directory
        except FileNotFoundError:
            continue
    return None


def ensure_runtime_dir() -> Path:
    """The runtime dir, 0700 (a directory the user named keeps its mode if it exists)."""
    return ensure_dir(runtime_dir(), PRIVATE_DIR_MODE,
                      own=not os.environ.get("RBDNB_RUNTIME_DIR"))


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
