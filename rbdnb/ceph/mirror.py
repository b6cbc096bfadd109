"""RBD mirroring between two clusters (sites), snapshot-based: disaster recovery for VM disks.

Mirrors ``rbd mirror pool enable|peer bootstrap create|import``, ``rbd mirror image
enable|snapshot|status|demote|promote|resync``. One image is primary (writable) at one site;
the ``rbd-mirror`` daemon of the other site copies each mirror snapshot of it. What tells
that a site holds the data is not ``rbd mirror image status`` (it lags by 15-20 s) but the
site's newest non-primary mirror snapshot: ``complete`` and naming the primary's newest
mirror snapshot (:func:`wait_synced`).

The peer bootstrap token holds a cephx key of the peer's mirror user: :func:`bootstrap_peers`
creates it at one site and imports it at the other in memory; it is never returned, shown,
logged or written.
"""

from __future__ import annotations

import time

from ..base.plan import Plan, Result
from ..base.specs import ImageSpec, check_name, parse_spec
from ..base.waiting import wait_until
from ..errors import ImageNotFound, InvalidArgument, RbdnbError, Timeout
from .cluster import Cluster
from .images import open_image
from .translate import translated

MODES = ("image",)
PROMOTE_WAIT = 30.0  # s a promotion waits for the local rbd-mirror to let go of the image
# librbd's mirror snapshot states (rbd_snap_mirror_state_t)
_PRIMARY, _PRIMARY_DEMOTED, _NON_PRIMARY, _NON_PRIMARY_DEMOTED = range(4)
_MIRROR_NAMESPACE = 3  # RBD_SNAP_NAMESPACE_TYPE_MIRROR


_SITE_FINDERS: list = []


def add_default_sites_finder(finder) -> None:
    """Register ``finder() -> dict[str, str] | None``: site name -> ceph.conf, for when no
    peer is named (the running sandbox registers its sites)."""
    _SITE_FINDERS.append(finder)


def site_confs() -> dict[str, str]:
    """The sites known when none is named: ``$RBDNB_SITES`` (``a=CONF b=CONF``, what
    ``rbdnb sandbox env`` exports), else the running sandbox's sites, else {}."""
    import os
    text = os.environ.get("RBDNB_SITES", "").strip()
    if text:
        return dict(item.split("=", 1) for item in text.split() if "=" in item)
    for finder in _SITE_FINDERS:
        found = finder()
        if found:
            return dict(found)
    return {}


def peer_conf(conf: str | None = None) -> str:
    """Site b's ceph.conf: ``conf`` if given, else the known sites' b. Raises
    InvalidArgument when there is no second site."""
    if conf:
        return conf
    found = site_confs().get("b")
    if not found:
        raise InvalidArgument("there is no second site to mirror to: start one (rbdnb sandbox "
                              "up --sites 2) or name its conf (peer_conf)")
    return found


def _site_name(cluster: Cluster) -> str:
    import rbd
    with translated("mirror site name"):
        return rbd.RBD().mirror_site_name_get(cluster.rados)


def site_name(cluster: Cluster, default: str) -> str:
    """The cluster's mirror site name if one was set (Ceph's default is its fsid), else
    ``default``: a drill names a fresh site, and keeps a real cluster's name (renaming a
    site touches every pool's peers)."""
    name = _site_name(cluster)
    return default if not name or name == cluster.fsid else name


def enable_pool(cluster: Cluster, pool: str, site_name: str, *,
                dry_run: bool = False) -> Result | Plan:
    """``rbd mirror pool enable --site-name SITE POOL image``: images of ``pool`` are
    mirrored one by one (each enabled with :func:`enable_image`)."""
    import rbd
    check_name(pool, "pool")
    check_name(site_name, "site name")
    plan = Plan(f"enable mirroring of pool {pool} at site {site_name}").add(
        "rbd", *cluster.cli_args(), "mirror", "pool", "enable", "--site-name", site_name,
        pool, "image")
    if dry_run:
        return plan
    changed = []
    with cluster.ioctx(pool) as ioctx:
        with translated(f"mirroring of pool {pool}"):
            if _site_name(cluster) != site_name:
                rbd.RBD().mirror_site_name_set(cluster.rados, site_name)
                changed.append(f"site name {site_name}")
            if rbd.RBD().mirror_mode_get(ioctx) != rbd.RBD_MIRROR_MODE_IMAGE:
                rbd.RBD().mirror_mode_set(ioctx, rbd.RBD_MIRROR_MODE_IMAGE)
                changed.append("mirror mode image")
    return Result(plan.action, bool(changed), "set " + ", ".join(changed) if changed else
                  "unchanged: mirroring images, site name set", plan)


def peers(cluster: Cluster, pool: str) -> list[dict]:
    """``rbd mirror pool peer list``: the pool's peers (site name, direction, client)."""
    import rbd
    with cluster.ioctx(pool) as ioctx:
        with translated(f"peers of pool {pool}"):
            return [{"site": p["site_name"], "uuid": p["uuid"], "client": p["client_name"],
                     "direction": {0: "rx-only", 1: "tx-only", 2: "rx-tx"}.get(p["direction"])}
                    for p in rbd.RBD().mirror_peer_list(ioctx)]


def bootstrap_peers(cluster: Cluster, peer: Cluster, pool: str, *,
                    dry_run: bool = False) -> Result | Plan:
    """``rbd mirror pool peer bootstrap create`` at this site and ``... import --direction
    rx-tx`` at ``peer``: each site's rbd-mirror then pulls the other's primary images of
    ``pool``. The token (a key of the peer's mirror user) goes from one cluster to the
    other in memory, never shown or written. Both sites must mirror ``pool`` already
    (:func:`enable_pool`), under different site names; peers already there are
    "unchanged"."""
    import rbd
    check_name(pool, "pool")
    plan = Plan(f"peer the sites of pool {pool}")
    plan.add("rbd", *cluster.cli_args(), "mirror", "pool", "peer", "bootstrap", "create",
             pool).note("the token is kept in memory: never shown, never in a file")
    plan.add("rbd", *peer.cli_args(), "mirror", "pool", "peer", "bootstrap", "import",
             "--direction", "rx-tx", pool, "(the token)")
    if dry_run:
        return plan
    for c in (cluster, peer):
        with c.ioctx(pool) as ioctx:  # the pool exists at both sites (PoolNotFound names it)
            with translated(f"mirroring of pool {pool}"):
                if rbd.RBD().mirror_mode_get(ioctx) == rbd.RBD_MIRROR_MODE_DISABLED:
                    raise InvalidArgument(f"pool {pool} of cluster {c.fsid} does not mirror: "
                                          f"enable it first (rbd mirror pool enable)")
    here, there = _site_name(cluster), _site_name(peer)
    if here == there:
        raise InvalidArgument(f"both sites are named {here!r}: give each its own site name "
                              f"(rbd mirror pool enable --site-name)")
    have = {p["site"] for p in peers(cluster, pool)}, {p["site"] for p in peers(peer, pool)}
    if there in have[0] and here in have[1]:
        return Result(plan.action, False, f"unchanged: sites {here} and {there} are peers",
                      plan)
    with cluster.ioctx(pool) as a, peer.ioctx(pool) as b:
        with translated(f"peer bootstrap of pool {pool}"):
            token = rbd.RBD().mirror_peer_bootstrap_create(a)
            try:
                rbd.RBD().mirror_peer_bootstrap_import(b, rbd.RBD_MIRROR_PEER_DIRECTION_RX_TX,
                                                       token)
            finally:
                del token
    return Result(plan.action, True, f"sites {here} and {there} are peers (rx-tx)", plan)


def enable_image(cluster: Cluster, spec: str | ImageSpec, *,
                 dry_run: bool = False) -> Result | Plan:
    """``rbd mirror image enable POOL/IMAGE snapshot``."""
    import rbd
    spec = parse_spec(spec)
    plan = Plan(f"mirror image {spec}").add("rbd", *cluster.cli_args(), "mirror", "image",
                                            "enable", str(spec), "snapshot")
    if dry_run:
        return plan
    with open_image(cluster, spec) as image:
        if image.mirror_image_get_info()["state"] == rbd.RBD_MIRROR_IMAGE_ENABLED:
            return Result(plan.action, False, "unchanged: mirrored", plan)
        with cluster.writing(spec.pool, f"mirroring of {spec}"):
            image.mirror_image_enable(rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT)
    return Result(plan.action, True, "mirrored (snapshot mode)", plan)


def _mirror_snaps(image) -> list[dict]:
    return [{"id": s["id"], **s["mirror"]} for s in image.list_snaps()
            if s.get("namespace") == _MIRROR_NAMESPACE and "mirror" in s]


def status(cluster: Cluster, spec: str | ImageSpec) -> dict:
    """An image's mirroring as this site sees it: enabled, primary, its newest mirror
    snapshot (id, state, complete, the primary's snapshot it copies), the daemon's word."""
    import rbd
    spec = parse_spec(spec)
    with open_image(cluster, spec, read_only=True) as image:
        info = image.mirror_image_get_info()
        snaps = _mirror_snaps(image)
        try:
            daemon = image.mirror_image_get_status().get("description")
        except rbd.Error:
            daemon = None
    newest = snaps[-1] if snaps else None
    states = {_PRIMARY: "primary", _PRIMARY_DEMOTED: "primary (demoted)",
              _NON_PRIMARY: "non-primary", _NON_PRIMARY_DEMOTED: "non-primary (demoted)"}
    return {"image": str(spec), "enabled": info["state"] == rbd.RBD_MIRROR_IMAGE_ENABLED,
            "primary": bool(info["primary"]), "global_id": info["global_id"],
            "snapshots": len(snaps),
            "newest": None if newest is None else {
                "id": newest["id"], "state": states.get(newest["state"], str(newest["state"])),
                "complete": bool(newest["complete"]),
                "primary_snap_id": newest["primary_snap_id"]},
            "daemon": daemon}


def create_snapshot(cluster: Cluster, spec: str | ImageSpec, *,
                    dry_run: bool = False) -> Result | Plan:
    """``rbd mirror image snapshot POOL/IMAGE``: what the peer copies next; the value is its
    snapshot id."""
    spec = parse_spec(spec)
    plan = Plan(f"mirror snapshot of {spec}").add("rbd", *cluster.cli_args(), "mirror",
                                                  "image", "snapshot", str(spec))
    if dry_run:
        return plan
    with open_image(cluster, spec) as image:
        if not image.mirror_image_get_info()["primary"]:
            raise InvalidArgument(f"image {spec} is not primary at this site: take mirror "
                                  f"snapshots where it is (or promote it here first)")
        with cluster.writing(spec.pool, f"mirror snapshot of {spec}"):
            snap = image.mirror_image_create_snapshot()
    return Result(plan.action, True, f"created mirror snapshot {snap}", plan, value=snap)


def _newest_primary(cluster: Cluster, spec: ImageSpec) -> int | None:
    with open_image(cluster, spec, read_only=True) as image:
        own = [s for s in _mirror_snaps(image) if s["state"] in (_PRIMARY, _PRIMARY_DEMOTED)]
    return own[-1]["id"] if own else None


def _copied(cluster: Cluster, spec: ImageSpec) -> dict:
    """The newest complete copy at this (non-primary) site: {primary_snap_id, ...} or {}."""
    try:
        with open_image(cluster, spec, read_only=True) as image:
            copies = [s for s in _mirror_snaps(image)
                      if s["state"] in (_NON_PRIMARY, _NON_PRIMARY_DEMOTED) and s["complete"]]
    except ImageNotFound:  # not copied yet, or being copied again (a resync)
        return {}
    return copies[-1] if copies else {}


def wait_synced(primary: Cluster, secondary: Cluster, spec: str | ImageSpec, *,
                timeout: float = 120) -> Result:
    """Wait until ``secondary`` holds a complete copy of the primary's newest mirror
    snapshot of ``spec``; the value is the seconds it took. Raises :class:`Timeout` saying
    how far the copy got."""
    spec = parse_spec(spec)
    want = _newest_primary(primary, spec)
    plan = Plan(f"wait for {spec} at the peer").add(
        "rbd", *secondary.cli_args(), "mirror", "image", "status", str(spec))
    if want is None:
        raise InvalidArgument(f"image {spec} has no mirror snapshot at the primary: take one "
                              f"(rbd mirror image snapshot {spec})")
    t0 = time.monotonic()
    seen = {}

    def synced():
        seen.update(_copied(secondary, spec))
        return seen.get("primary_snap_id") == want

    if not wait_until(synced, timeout, interval=0.25):
        raise Timeout(f"image {spec} is not in sync after {timeout:g} s: the peer's newest "
                      f"complete copy is of snapshot {seen.get('primary_snap_id', 'none')}, "
                      f"the primary's newest is {want} (is its rbd-mirror daemon running?)")
    took = time.monotonic() - t0
    return Result(plan.action, False, f"in sync: the peer holds mirror snapshot {want} "
                  f"(waited {took:.1f} s)", plan, value=round(took, 3))


def demote(cluster: Cluster, spec: str | ImageSpec, *, dry_run: bool = False) -> Result | Plan:
    """``rbd mirror image demote``: this site's image stops being writable (a planned
    failover starts here)."""
    spec = parse_spec(spec)
    plan = Plan(f"demote {spec}").add("rbd", *cluster.cli_args(), "mirror", "image",
                                      "demote", str(spec))
    if dry_run:
        return plan
    with open_image(cluster, spec) as image:
        if not image.mirror_image_get_info()["primary"]:
            return Result(plan.action, False, "unchanged: not primary here", plan)
        image.mirror_image_demote()
    return Result(plan.action, True, "demoted", plan)


def promote(cluster: Cluster, spec: str | ImageSpec, *, force: bool = False,
            dry_run: bool = False) -> Result | Plan:
    """``rbd mirror image promote [--force]``: this site's copy becomes the writable image.
    Without ``force`` the other site must have demoted it; ``force`` is for a site that is
    lost (its data since the last mirror snapshot is lost too). An image already primary
    here is refused."""
    spec = parse_spec(spec)
    plan = Plan(f"promote {spec}" + (" (forced)" if force else "")).add(
        "rbd", *cluster.cli_args(), "mirror", "image", "promote", *(["--force"] if force else []),
        str(spec))
    if dry_run:
        return plan
    import rbd
    with open_image(cluster, spec) as image:
        if image.mirror_image_get_info()["primary"]:
            raise InvalidArgument(f"image {spec} is already primary at this site: nothing "
                                  f"to promote")
    # Just after the other site demoted it, this site's rbd-mirror still holds the image
    # while it stops replaying (EROFS/EBUSY): try again for a while, then say so.
    deadline = time.monotonic() + PROMOTE_WAIT
    while True:
        try:
            with open_image(cluster, spec) as image:
                image.mirror_image_promote(force)
            break
        except RbdnbError as exc:  # librbd's error, translated by open_image
            if not isinstance(exc.__cause__, (rbd.ReadOnlyImage, rbd.ImageBusy)) or \
                    time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return Result(plan.action, True, "promoted" + (" (forced)" if force else ""), plan)


def resync(cluster: Cluster, spec: str | ImageSpec, *, dry_run: bool = False) -> Result | Plan:
    """``rbd mirror image resync``: this site's (non-primary) copy is thrown away and copied
    again from the primary: after a forced promotion elsewhere, the old primary's way back."""
    spec = parse_spec(spec)
    plan = Plan(f"resync {spec}").add("rbd", *cluster.cli_args(), "mirror", "image", "resync",
                                      str(spec))
    if dry_run:
        return plan
    with open_image(cluster, spec) as image:
        if image.mirror_image_get_info()["primary"]:
            raise InvalidArgument(f"image {spec} is primary at this site: demote it first "
                                  f"(a resync replaces it with the other site's)")
        image.mirror_image_resync()
    return Result(plan.action, True, "resync requested: the peer's copy replaces this one",
                  plan)


def failover(primary: Cluster, secondary: Cluster, spec: str | ImageSpec, *,
             planned: bool = True, timeout: float = 120,
             dry_run: bool = False) -> Result | Plan:
    """Make ``secondary`` the site of ``spec``. Planned: demote at the primary, wait until
    the secondary holds the demotion snapshot, promote there -- nothing is lost. Unplanned
    (the primary is lost): a forced promotion at the secondary -- what was written after the
    last mirror snapshot is lost. The value: seconds, and what was done."""
    spec = parse_spec(spec)
    plan = Plan(f"{'planned' if planned else 'unplanned'} failover of {spec}")
    steps = ([demote(primary, spec, dry_run=True), promote(secondary, spec, dry_run=True)]
             if planned else [promote(secondary, spec, force=True, dry_run=True)])
    for step in steps:
        plan.commands += step.commands
    if dry_run:
        return plan
    t0 = time.monotonic()
    if planned:
        demote(primary, spec)
        wait_synced(primary, secondary, spec, timeout=timeout)
        promote(secondary, spec)
    else:
        promote(secondary, spec, force=True)
    took = time.monotonic() - t0
    return Result(plan.action, True, f"{spec} is primary at the other site ({took:.1f} s)",
                  plan, value=round(took, 3))
