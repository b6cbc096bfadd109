"""What rbdnb is about to make, written down in the pool first, so a re-run can tell.

librbd makes a clone in several steps (an id, a header, the link to the parent); a
process killed between them leaves an image with no parent, or a name whose header is
missing. rbdnb writes its intent -- "``vm-042`` will be a clone of ``golden@base``",
"``golden.rbdnb-import`` is the staging image of an import into ``golden``" -- into the
omap of one object per pool and namespace (``rbdnb_journal``) before it acts, and
clears it after. A re-run that finds a half-made image *and* an intent for it knows the
image is its own leftover and may remove and remake it; an image with no intent is
someone else's and is never touched.

One omap write per batch (not per clone), so the journal costs nothing measurable.
"""

from __future__ import annotations

import json
import os
import socket
import time

from .translate import translated
from .cluster import Cluster

OBJECT = "rbdnb_journal"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def owner(cluster: Cluster | None = None) -> dict:
    """Who writes an intent: host, boot, pid and its start time, and the time -- enough to
    tell later whether that process still runs -- and, given the cluster, the address of
    the writing client, so that a run which finds the writer dead can cut that client off
    (its watches outlive it by the OSDs' watch timeout, and may register late)."""
    from ..base.proc import start_time
    pid = os.getpid()
    who = {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid,
           "started": start_time(pid), "time": round(time.time(), 3)}
    if cluster is not None:
        try:
            who["client"] = cluster.rados.get_addrs()
        except Exception:  # an older binding, or a fake without it: watchers are listed instead
            pass
    return who


def owner_alive(intent: dict) -> bool | None:
    """Whether the process that wrote ``intent`` still runs: True or False for one of this
    host (since its boot), None when that cannot be known (another host, an older record)."""
    from ..base.proc import start_time
    if intent.get("host") != socket.gethostname() or not intent.get("boot") or \
            intent.get("started") is None:
        return None
    if intent["boot"] != _boot_id():
        return False  # this host rebooted since
    return start_time(int(intent["pid"])) == intent["started"]


def record(cluster: Cluster, pool: str, namespace: str, entries: dict[str, dict]) -> None:
    """Write ``{key: intent}`` (intents are JSON objects) in one operation."""
    if not entries:
        return
    import rados
    keys = tuple(entries)
    values = tuple(json.dumps(v, sort_keys=True).encode() for v in entries.values())
    with cluster.ioctx(pool, namespace) as ioctx:
        with translated(f"the rbdnb journal of pool {pool}"):
            with rados.WriteOpCtx() as op:
                ioctx.set_omap(op, keys, values)
                ioctx.operate_write_op(op, OBJECT)


def read(cluster: Cluster, pool: str, namespace: str, keys: list[str]) -> dict[str, dict]:
    """The intents recorded under ``keys`` (missing keys are left out)."""
    if not keys:
        return {}
    import rados
    out = {}
    with cluster.ioctx(pool, namespace) as ioctx:
        for start in range(0, len(keys), 1000):
            chunk = tuple(keys[start:start + 1000])
            with rados.ReadOpCtx() as op:
                found, _ = ioctx.get_omap_vals_by_keys(op, chunk)
                try:
                    ioctx.operate_read_op(op, OBJECT)
                except rados.ObjectNotFound:
                    return {}  # no journal object: nothing was ever recorded here
                for key, value in found:
                    try:
                        out[key] = json.loads(value)
                    except ValueError:
                        continue
    return out


def forget(cluster: Cluster, pool: str, namespace: str, keys: list[str]) -> None:
    """Clear the intents under ``keys`` (done, or undone)."""
    if not keys:
        return
    import rados
    with cluster.ioctx(pool, namespace) as ioctx:
        with translated(f"the rbdnb journal of pool {pool}"):
            for start in range(0, len(keys), 1000):
                with rados.WriteOpCtx() as op:
                    ioctx.remove_omap_keys(op, tuple(keys[start:start + 1000]))
                    try:
                        ioctx.operate_write_op(op, OBJECT)
                    except rados.ObjectNotFound:
                        return
