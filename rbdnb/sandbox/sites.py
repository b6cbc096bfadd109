"""A second site for a sandbox: another single-node cluster, and an ``rbd-mirror`` daemon on
each, for disaster recovery with RBD mirroring on one machine.

``Sandbox(sites=2)`` is site ``a``; site ``b`` is a sandbox of its own in ``DIR/sites/b``
(its own conf, keys, monitor port and memstore OSD). Each site runs one ``rbd-mirror``
daemon as ``client.rbd-mirror.SITE`` (caps ``profile rbd-mirror`` / ``profile rbd``), which
pulls images from its peer. Ceph's 30 s defaults for noticing new peers and images are
made 2 s here, so a sandbox fails over and back in seconds. Peers are bootstrapped per pool
by :func:`rbdnb.ceph.mirror.bootstrap_peers`, not here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..base import proc as _proc
from ..base.waiting import wait_until
from ..errors import SandboxError
from .conf import render_keyring, write_private

SITE_NAMES = ("a", "b", "c")
MAX_SITES = 2
# What makes a sandbox's mirroring quick (Ceph's defaults are for real sites: 30 s).
MIRROR_CONFIG = {
    "rbd_mirror_pool_replayers_refresh_interval": "2",
    "rbd_mirror_image_state_check_interval": "2",
    "rbd_mirror_delete_retry_interval": "2",
    "rbd_mirror_leader_heartbeat_interval": "2",
}


def site_dir(sandbox_dir: Path, name: str) -> Path:
    """Where site ``name`` (b, c) of a sandbox keeps its cluster."""
    return Path(sandbox_dir) / "sites" / name


def mirror_entity(site: str) -> str:
    """The cephx entity of a site's rbd-mirror daemon."""
    return f"client.rbd-mirror.{site}"


def start_mirror(directory: Path, conf: Path, site: str, cluster) -> dict:
    """Start (or find running) the rbd-mirror daemon of the site whose sandbox is in
    ``directory``, with ``cluster`` an admin connection to it; its process record."""
    entity = mirror_entity(site)
    pidfile = directory / "run" / f"ceph-{entity}.pid"
    running = _find(conf, site)
    if running is not None:
        return running.to_json()
    key = cluster.mon_command({"prefix": "auth get-or-create", "entity": entity,
                               "caps": ["mon", "profile rbd-mirror", "osd", "profile rbd"]},
                              f"user {entity}")[0]["key"]
    write_private(directory / f"ceph.{entity}.keyring",
                  render_keyring({entity: (key, {})}))
    for name, value in MIRROR_CONFIG.items():
        cluster.mon_command({"prefix": "config set", "who": entity, "name": name,
                             "value": value}, f"{name} of {entity}")
    pidfile.unlink(missing_ok=True)
    # rbd-mirror reads CEPH_CONF as well as -c (it connects to its peers with it).
    env = {**os.environ, "CEPH_CONF": str(conf)}
    _proc.run(["rbd-mirror", "-c", str(conf), "--id", entity.removeprefix("client."),
               "--pid-file", str(pidfile), "--log-file",
               str(directory / "log" / f"ceph-{entity}.log"),
               "--admin-socket", str(directory / "run" / f"ceph-{entity}.asok")],
              timeout=60, env=env, what=f"starting rbd-mirror of site {site}")
    ref = wait_until(lambda: _find(conf, site), 20, interval=0.1)
    if ref is None:
        raise SandboxError(f"rbd-mirror of site {site} did not stay up; see "
                           f"{directory / 'log'}")
    return ref.to_json()


def _find(conf: Path, site: str) -> _proc.ProcessRef | None:
    """The site's rbd-mirror as it runs now (a process reading its conf, with its id)."""
    for pid, argv in _proc.processes_named(("rbd-mirror",), str(conf)):
        if f"rbd-mirror.{site}" in argv:
            ref = _proc.ProcessRef.of(f"rbd-mirror.{site}", pid)
            if ref is not None:
                return ref
    return None


def mirror_alive(conf: Path, site: str) -> bool:
    """Whether the site's rbd-mirror daemon runs."""
    return _find(conf, site) is not None


def stop_mirror(conf: Path, site: str) -> list[str]:
    """Stop the site's rbd-mirror daemon; what was stopped."""
    ref = _find(conf, site)
    return [f"rbd-mirror.{site}"] if ref is not None and ref.stop(timeout=10) else []
