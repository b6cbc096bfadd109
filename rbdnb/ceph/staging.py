"""Images that appear under their name only once complete.

An import or a full copy writes into a staging image ``NAME.rbdnb-import`` (or
``-copy``) next to where the result belongs. When every byte is there, rbdnb writes a
completion record into the staging image's metadata (``rbdnb.completed``: what it was
made from, its checksum, its size) and renames it to ``NAME`` -- a rename is atomic in
RBD. So an image of that name is complete by construction, and a re-run can tell a
finished job from an interrupted one by the record instead of guessing from the size.

A process killed half-way leaves its staging image behind. The next run knows from the
pool's journal (:mod:`rbdnb.ceph.journal`) whose it was: if that process is gone, the image is
removed -- after blocklisting the dead writer's client, whose watch on the image would
otherwise outlive it by the OSDs' watch timeout (30 s). If it still runs (another user's
process on this host), or it was another host's and a client still has the image open,
the run refuses in one line.
"""

from __future__ import annotations

import hashlib
import json
import time

from . import journal, locks
from .translate import translated
from .cluster import Cluster
from ..errors import ClusterFull, ImageBusy, ImageNotFound, Locked, RbdnbError, Timeout
from ..base.specs import NAME_MAX, ImageSpec
from ..base.waiting import wait_until

RECORD_KEY = "rbdnb.completed"


def staging_spec(dest: ImageSpec, kind: str) -> ImageSpec:
    """``pool/NAME.rbdnb-KIND`` (shortened with a hash if NAME is long)."""
    suffix = f".rbdnb-{kind}"
    name = dest.image + suffix
    if len(name) > NAME_MAX:
        digest = hashlib.sha256(dest.image.encode()).hexdigest()[:8]
        name = f"{dest.image[:NAME_MAX - len(suffix) - 9]}.{digest}{suffix}"
    return dest.with_image(name)


def read_record(cluster: Cluster, spec: ImageSpec) -> dict | None:
    """The completion record of an image rbdnb made by staging, or None."""
    import rbd
    with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
        with translated(f"image {spec}", not_found=ImageNotFound):
            with rbd.Image(ioctx, spec.image, read_only=True) as image:
                try:
                    text = image.metadata_get(RECORD_KEY)
                except (KeyError, rbd.ObjectNotFound):
                    return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _exists(cluster: Cluster, spec: ImageSpec) -> bool:
    import rbd
    with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
        with translated(f"pool {spec.pool}"):
            return spec.image in rbd.RBD().list(ioctx)


def _watchers(cluster: Cluster, spec: ImageSpec) -> list[str]:
    import rbd
    with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
        try:
            with translated(f"image {spec}", not_found=ImageNotFound):
                with rbd.Image(ioctx, spec.image, read_only=True) as image:
                    return [w["addr"] for w in image.watchers_list()]
        except ImageNotFound:
            return []


def _own_address(cluster: Cluster) -> str:
    try:
        return cluster.rados.get_addrs()
    except Exception:
        return ""


def blocklist(cluster: Cluster, addresses: list[str], seconds: int = 120) -> None:
    """Cut off clients that are known to be dead, as librbd does when it breaks a lock."""
    for addr in addresses:
        cluster.mon_command({"prefix": "osd blocklist", "blocklistop": "add", "addr": addr,
                             "expire": float(seconds)}, f"blocklisting client {addr}")


def remove_left_behind(cluster: Cluster, spec: ImageSpec, *, dead_writer: bool | None,
                       wait: float, what: str, client: str | None = None) -> bool:
    """Remove image ``spec`` that a killed process left; True once it is gone (also when it
    was not there). When its writer is known dead its client (``client``, the address its
    intent recorded) and every watcher of the image are cut off -- blocklisted, as librbd
    does when it breaks a dead client's lock -- and watchers that appear later (a watch the
    OSDs register only after a freeze) are cut on each retry; a client that still has it open
    is waited out for ``wait`` seconds, then False."""
    import rbd
    cut: set[str] = set()

    def cut_off() -> None:
        if not dead_writer:
            return
        if not cut:
            cut.add(_own_address(cluster))  # never this process's own client
        fresh = [a for a in ([client] if client else []) + _watchers(cluster, spec)
                 if a not in cut]
        if fresh:
            blocklist(cluster, fresh)
            cut.update(fresh)

    def removed() -> bool:
        try:
            with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
                with translated(f"{what} {spec}", not_found=ImageNotFound):
                    rbd.RBD().remove(ioctx, spec.image)
        except ImageNotFound:
            pass
        except ImageBusy:
            cut_off()
            return False  # a cut watch takes a moment to go
        return True

    cut_off()
    return bool(wait_until(removed, wait, interval=1))


def remove_leftover(cluster: Cluster, spec: ImageSpec, *, dead_writer: bool,
                    wait: float = 40, client: str | None = None) -> None:
    """Remove a staging image a dead run left. Its writer's watch is cut first when it is
    known to be dead; otherwise a watched image is someone's work in progress."""
    if not remove_left_behind(cluster, spec, dead_writer=dead_writer, wait=wait,
                              what="staging image", client=client):
        raise ImageBusy(f"staging image {spec} left by an interrupted run is still open by a "
                        f"client: if no import or copy is running, remove it (rbd rm {spec}) "
                        f"and run again")


class Staged:
    """``with Staged(cluster, dest, "import", what=...) as st:`` make ``st.spec``, then
    ``st.finish(record)``: the staging image gets the record and becomes ``dest``.

    Entering takes the local lock for ``dest`` (waiting for another process of this
    host), clears a leftover staging image of an interrupted run, and writes the intent
    to the journal. Leaving without ``finish`` removes the staging image (best effort).
    """

    def __init__(self, cluster: Cluster, dest: ImageSpec, kind: str, *, what: str,
                 wait: float | None = None, lock=True):
        self.cluster, self.dest, self.kind, self.what = cluster, dest, kind, what
        self.spec = staging_spec(dest, kind)
        self.key = f"stage:{self.spec.image}"
        self.finished = False
        self._lock = locks.held(lock_key(cluster, dest), what=what, wait=wait) if lock else None

    def __enter__(self) -> "Staged":
        if self._lock is not None:
            self._lock.__enter__()
        try:
            self._clear_leftover()
            journal.record(self.cluster, self.dest.pool, self.dest.namespace,
                           {self.key: {"dest": str(self.dest), "kind": self.kind,
                                       **journal.owner(self.cluster)}})
        except BaseException:
            if self._lock is not None:
                self._lock.__exit__(None, None, None)
            raise
        return self

    def _clear_leftover(self) -> None:
        if not _exists(self.cluster, self.spec):
            return
        intent = journal.read(self.cluster, self.dest.pool, self.dest.namespace,
                              [self.key]).get(self.key, {})
        dead = writer_gone(intent)
        if dead is False or (dead is None and _watchers(self.cluster, self.spec)):
            raise Locked(f"{self.what}: {self.spec} is being written by another client "
                         f"({intent.get('host', 'unknown host')}, pid {intent.get('pid', '?')}):"
                         f" wait for it, or if that run died, remove {self.spec} and run again")
        remove_leftover(self.cluster, self.spec, dead_writer=bool(dead),
                        client=intent.get("client"))

    def finish(self, record: dict) -> None:
        """Write the completion record and give the staging image its name."""
        import rbd
        record = {"kind": self.kind, **record, "completed": round(time.time(), 3)}
        with self.cluster.ioctx(self.dest.pool, self.dest.namespace) as ioctx:
            with translated(f"image {self.spec}", not_found=ImageNotFound):
                with rbd.Image(ioctx, self.spec.image) as image:
                    image.metadata_set(RECORD_KEY, json.dumps(record, sort_keys=True))
            with translated(f"image {self.dest}", not_found=ImageNotFound):
                rbd.RBD().rename(ioctx, self.spec.image, self.dest.image)
        self.finished = True
        try:
            journal.forget(self.cluster, self.dest.pool, self.dest.namespace, [self.key])
        except RbdnbError:
            pass  # a stale intent names an image that no longer exists: harmless

    def __exit__(self, kind, exc, tb) -> None:
        try:
            # After a timeout the cluster is not answering: clearing up would only wait
            # again. The next run clears the staging image instead.
            if not self.finished and not isinstance(exc, (Timeout, ClusterFull)):
                try:
                    remove_leftover(self.cluster, self.spec, dead_writer=True, wait=5)
                    journal.forget(self.cluster, self.dest.pool, self.dest.namespace,
                                   [self.key])
                except RbdnbError:
                    pass  # the cluster is not answering: the next run clears it
        finally:
            if self._lock is not None:
                self._lock.__exit__(kind, exc, tb)


def writer_gone(intent: dict) -> bool | None:
    """Whether the run that recorded ``intent`` has ended: True (its process is gone, or it
    is this very process, whose earlier call is over since we hold the lock now), False (it
    still runs), None (unknown: another host, or no record)."""
    import os
    alive = journal.owner_alive(intent) if intent else None
    if alive is None:
        return None
    if alive and intent.get("pid") == os.getpid():
        return True
    return not alive


def lock_key(cluster: Cluster, spec: ImageSpec) -> str:
    """The local lock of one image of one cluster."""
    return f"image:{cluster.fsid}:{spec.image_path}"
