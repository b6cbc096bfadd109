"""The sandbox's files: its ``ceph.conf`` (loopback, cephx, client timeouts), keyrings
with fresh cephx keys, the monitor's port, and the directory lock."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import socket
import struct
import time
from pathlib import Path

from ..base import paths


CEPH_TOOLS = ("ceph-mon", "ceph-osd", "ceph-mgr", "ceph", "monmaptool")


DAEMONS = ("mon.a", "mgr.x", "osd.0")  # started in this order


LIBVIRT_TOOLS = ("libvirtd", "virtlogd")


STORES = ("memstore", "bluestore")


DEFAULT_OSD_SIZE = "8G"


MIN_OSD_SIZE = 256 * 1024**2


LEGACY_MON_PORT = 6789


# Timeouts the sandbox's conf gives every client (seconds). A full memstore OSD
# blocks writes instead of failing them; these turn a hang into an error. The
# OSD op timeout stays above osd_heartbeat_grace + osd_heartbeat_interval (26 s).
CLIENT_TIMEOUT = 30


OWNED_STATE_ENTRIES = ("ceph.conf", "ceph.client.admin.keyring", "sandbox.json",
                        "mon", "osd", "mgr", "run", "log", "tmp", "hosts", "sites", ".lock")


def default_dir() -> Path:
    """Where the sandbox lives when no directory is given.

    ``$RBDNB_SANDBOX_DIR`` if set, else ``$XDG_STATE_HOME/rbdnb/sandbox``
    (``~/.local/state/rbdnb/sandbox``).
    """
    if os.environ.get("RBDNB_SANDBOX_DIR"):
        return Path(os.environ["RBDNB_SANDBOX_DIR"]).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                              ".local", "state")
    return Path(state) / "rbdnb" / "sandbox"


def new_cephx_key() -> str:
    """A fresh cephx secret in Ceph's keyring encoding (as ``ceph-authtool --gen-key``).

    The encoding is CryptoKey's: u16 type (1 = AES), utime created (u32 s, u32 ns),
    u16 length, then 16 random bytes; base64 of that.
    """
    secret = os.urandom(16)
    header = struct.pack("<HIIH", 1, int(time.time()), 0, len(secret))
    return base64.b64encode(header + secret).decode("ascii")


def render_keyring(entries: dict[str, tuple[str, dict[str, str]]]) -> str:
    """Keyring file text for ``{entity: (key, {service: caps})}``."""
    out = []
    for entity, (key, caps) in entries.items():
        out.append(f"[{entity}]\n\tkey = {key}\n")
        for service, cap in caps.items():
            out.append(f'\tcaps {service} = "{cap}"\n')
    return "".join(out)


def mon_address(port: int) -> str:
    """The monitor's address as written in ``mon_host``.

    A bare ``host:port`` (which is all libvirt's rbd pool and QEMU pass on) is read
    by Ceph as msgr v1 when the port is 6789 and as msgr v2 otherwise, so the
    monitor speaks exactly what a bare address on that port means.
    """
    proto = "v1" if port == LEGACY_MON_PORT else "v2"
    return f"{proto}:127.0.0.1:{port}"


def render_conf(directory: Path, *, fsid: str, port: int, store: str, osd_size: int) -> str:
    """The sandbox's ``ceph.conf``: loopback only, cephx on, one-OSD defaults, client timeouts."""
    d = str(directory)
    lines = [
        "# Written by rbdnb sandbox: a single-node cluster on loopback. Do not edit by hand.",
        "[global]",
        f"fsid = {fsid}",
        f"mon_host = {mon_address(port)}",
        "auth_cluster_required = cephx",
        "auth_service_required = cephx",
        "auth_client_required = cephx",
        "auth_allow_insecure_global_id_reclaim = false",
        f"run_dir = {d}/run",
        f"keyring = {d}/$cluster.$name.keyring",
        # One OSD: pools of size 1, placement across OSDs rather than hosts.
        "osd_pool_default_size = 1",
        "osd_pool_default_min_size = 1",
        "osd_pool_default_pg_num = 8",
        "osd_pool_default_pgp_num = 8",
        "osd_pool_default_pg_autoscale_mode = off",
        "osd_crush_chooseleaf_type = 0",
        "mon_allow_pool_size_one = true",
        "mon_allow_pool_delete = true",
        "mon_max_pg_per_osd = 1000",
        "mon_warn_on_pool_no_redundancy = false",
        # The sandbox's monitor store is tiny; do not warn (or stop) on a busy host disk.
        "mon_data_avail_warn = 2",
        "mon_data_avail_crit = 1",
        "",
        "[client]",
        f"client_mount_timeout = {CLIENT_TIMEOUT}",
        f"rados_mon_op_timeout = {CLIENT_TIMEOUT}",
        f"rados_osd_op_timeout = {CLIENT_TIMEOUT}",
        "",
        "[mon]",
        f"mon_data = {d}/mon/$cluster-$id",
        "keyring = $mon_data/keyring",
        f"pid_file = {d}/run/$cluster-$name.pid",
        f"admin_socket = {d}/run/$cluster-$name.asok",
        f"log_file = {d}/log/$cluster-$name.log",
        f"mon_cluster_log_file = {d}/log/$cluster.log",
        # One monitor has nothing to batch: propose map changes at once rather than once a
        # second. Creating a pool and initialising it for RBD drops from ~4 s to ~0.2 s.
        "paxos_propose_interval = 0.05",
        "paxos_min_wait = 0.01",
        "",
        "[mgr]",
        f"mgr_data = {d}/mgr/$cluster-$id",
        "keyring = $mgr_data/keyring",
        f"pid_file = {d}/run/$cluster-$name.pid",
        f"admin_socket = {d}/run/$cluster-$name.asok",
        f"log_file = {d}/log/$cluster-$name.log",
        "public_addr = 127.0.0.1",
        "mgr_initial_modules = iostat",
        "",
        "[osd]",
        f"osd_data = {d}/osd/$cluster-$id",
        "keyring = $osd_data/keyring",
        f"pid_file = {d}/run/$cluster-$name.pid",
        f"admin_socket = {d}/run/$cluster-$name.asok",
        f"log_file = {d}/log/$cluster-$name.log",
        "public_addr = 127.0.0.1",
        "cluster_addr = 127.0.0.1",
        f"osd_objectstore = {store}",
        "osd_memory_target = 1073741824",
        # A fast shutdown skips unmounting the store, and memstore saves its data only
        # on unmount: without this, `down --keep` would lose every object.
        "osd_fast_shutdown = false",
    ]
    if store == "memstore":
        lines.append(f"memstore_device_bytes = {osd_size}")
    else:
        lines += [
            f"bluestore_block_path = {d}/osd/$cluster-$id.block",  # mkfs links $osd_data/block here
            f"bluestore_block_size = {osd_size}",
            "bluestore_block_create = true",
            "bluestore_block_db_create = false",
            "bluestore_block_wal_create = false",
        ]
    return "\n".join(lines) + "\n"


def port_is_free(port: int) -> bool:
    """Whether a daemon could listen on 127.0.0.1:port now.

    Ceph binds with SO_REUSEADDR, so connections of a stopped sandbox still in
    TIME_WAIT do not count; a listener does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, chosen by the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600 from creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive flock on ``path`` for the body (made 0600 if missing)."""
    paths.ensure_dir(path.parent, paths.PRIVATE_DIR_MODE, own=False)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
