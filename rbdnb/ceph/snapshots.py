"""Snapshots: create, list, protect, unprotect, rollback, remove, purge.

Mirrors ``rbd snap create|ls|protect|unprotect|rollback|rm|purge``.
"""

from __future__ import annotations

from .translate import translated
from .cluster import Cluster
from ..errors import (ImageHasChildren, SnapshotExists, SnapshotNotFound, SnapshotProtected,
                     require_confirmation)
from .images import children_of, open_image, user_snaps
from ..base.plan import Plan, Result
from ..base.specs import ImageSpec, parse_spec


def _snap_names(image) -> list[str]:
    return [s["name"] for s in user_snaps(image)]


def create_snapshot(cluster: Cluster, spec: str | ImageSpec, *, exist_ok: bool = False,
                    dry_run: bool = False) -> Result | Plan:
    """``rbd snap create pool/image@snap``."""
    spec = parse_spec(spec, snap="required")
    plan = Plan(f"create snapshot {spec}").add("rbd", *cluster.cli_args(), "snap", "create",
                                               str(spec))
    if dry_run:
        return plan
    with open_image(cluster, spec.at(None)) as image:
        if spec.snap in _snap_names(image):
            if exist_ok:
                return Result(plan.action, False, "unchanged: exists", plan)
            raise SnapshotExists(f"snapshot {spec} already exists")
        with cluster.writing(spec.pool, f"snapshot {spec}"):
            with translated(f"snapshot {spec}", exists=SnapshotExists):
                image.create_snap(spec.snap)
    return Result(plan.action, True, "created", plan)


def list_snapshots(cluster: Cluster, spec: str | ImageSpec):
    """``rbd snap ls``: id, name, size, protected, timestamp, children, as a DataFrame."""
    import pandas as pd
    spec = parse_spec(spec)
    rows = []
    with open_image(cluster, spec, read_only=True) as image:
        for snap in user_snaps(image):
            rows.append({"id": snap["id"], "name": snap["name"], "size": snap["size"],
                         "protected": image.is_protected_snap(snap["name"]),
                         "timestamp": image.get_snap_timestamp(snap["id"]),
                         "children": len(children_of(image, snap["name"]))})
    return pd.DataFrame(rows, columns=["id", "name", "size", "protected", "timestamp",
                                       "children"])


def protect_snapshot(cluster: Cluster, spec: str | ImageSpec, *,
                     dry_run: bool = False) -> Result | Plan:
    """``rbd snap protect``: needed before cloning when the cluster only allows v1 clones."""
    spec = parse_spec(spec, snap="required")
    plan = Plan(f"protect snapshot {spec}").add("rbd", *cluster.cli_args(), "snap", "protect",
                                                str(spec))
    if dry_run:
        return plan
    with open_image(cluster, spec.at(None)) as image:
        with translated(f"snapshot {spec}", not_found=SnapshotNotFound):
            if image.is_protected_snap(spec.snap):
                return Result(plan.action, False, "unchanged: already protected", plan)
            with cluster.writing(spec.pool, f"protection of {spec}"):
                image.protect_snap(spec.snap)
    return Result(plan.action, True, "protected", plan)


def unprotect_snapshot(cluster: Cluster, spec: str | ImageSpec, *,
                       dry_run: bool = False) -> Result | Plan:
    """``rbd snap unprotect``; refused while (v1) clones depend on the snapshot."""
    spec = parse_spec(spec, snap="required")
    plan = Plan(f"unprotect snapshot {spec}").add("rbd", *cluster.cli_args(), "snap",
                                                  "unprotect", str(spec))
    if dry_run:
        return plan
    with open_image(cluster, spec.at(None)) as image:
        with translated(f"snapshot {spec}", not_found=SnapshotNotFound):
            if not image.is_protected_snap(spec.snap):
                return Result(plan.action, False, "unchanged: not protected", plan)
        # librbd decides: v1 clones need the protection, v2 clones (Mimic and later) do not.
        try:
            with cluster.writing(spec.pool, f"unprotection of {spec}"):
                with translated(f"snapshot {spec}", not_found=SnapshotNotFound,
                                busy=ImageHasChildren):
                    image.unprotect_snap(spec.snap)
        except ImageHasChildren:
            kids = children_of(image, spec.snap)
            raise ImageHasChildren(f"snapshot {spec} cannot be unprotected: clones depend on "
                                   f"it ({', '.join(kids[:5]) or 'v1 clones'}); flatten or "
                                   f"remove them first") from None
    return Result(plan.action, True, "unprotected", plan)


def rollback_snapshot(cluster: Cluster, spec: str | ImageSpec, *, confirm: bool = False,
                      dry_run: bool = False) -> Result | Plan:
    """``rbd snap rollback``: the image's data becomes the snapshot's. Needs ``confirm=True``."""
    spec = parse_spec(spec, snap="required")
    plan = Plan(f"roll back image {spec.image_path} to {spec.snap}").add(
        "rbd", *cluster.cli_args(), "snap", "rollback", str(spec))
    plan.note("everything written to the image since the snapshot is lost")
    if dry_run:
        return plan
    require_confirmation(confirm, f"rolling back {spec.image_path} to {spec.snap} discards "
                                  f"what was written since")
    with open_image(cluster, spec.at(None)) as image:
        if spec.snap not in _snap_names(image):
            raise SnapshotNotFound(f"snapshot {spec} not found")
        with cluster.writing(spec.pool, f"rollback of {spec.image_path}"):
            with translated(f"image {spec.image_path}", not_found=SnapshotNotFound):
                image.rollback_to_snap(spec.snap)
    return Result(plan.action, True, "rolled back", plan)


def remove_snapshot(cluster: Cluster, spec: str | ImageSpec, *, missing_ok: bool = False,
                    dry_run: bool = False) -> Result | Plan:
    """``rbd snap rm``; a protected snapshot is refused (unprotect it first)."""
    spec = parse_spec(spec, snap="required")
    plan = Plan(f"remove snapshot {spec}").add("rbd", *cluster.cli_args(), "snap", "rm",
                                               str(spec))
    if dry_run:
        return plan
    with open_image(cluster, spec.at(None)) as image:
        if spec.snap not in _snap_names(image):
            if missing_ok:
                return Result(plan.action, False, "unchanged: no such snapshot", plan)
            raise SnapshotNotFound(f"snapshot {spec} not found")
        if image.is_protected_snap(spec.snap):
            raise SnapshotProtected(f"snapshot {spec} is protected: unprotect it first")
        with cluster.writing(spec.pool, f"removal of {spec}"):
            with translated(f"snapshot {spec}", not_found=SnapshotNotFound,
                            busy=SnapshotProtected):
                image.remove_snap(spec.snap)
    return Result(plan.action, True, "removed", plan)


def purge_snapshots(cluster: Cluster, spec: str | ImageSpec, *, confirm: bool = False,
                    dry_run: bool = False) -> Result | Plan:
    """``rbd snap purge``: remove every unprotected snapshot. Needs ``confirm=True``."""
    spec = parse_spec(spec)
    plan = Plan(f"purge snapshots of {spec}").add("rbd", *cluster.cli_args(), "snap", "purge",
                                                  str(spec))
    if dry_run:
        return plan
    require_confirmation(confirm, f"purging the snapshots of {spec} cannot be undone")
    with open_image(cluster, spec) as image:
        names = _snap_names(image)
        protected = [n for n in names if image.is_protected_snap(n)]
        if protected:
            raise SnapshotProtected(f"image {spec} has protected snapshots "
                                    f"({', '.join(protected)}): unprotect them first")
        with cluster.writing(spec.pool, f"purge of the snapshots of {spec}"):
            for name in names:
                with translated(f"snapshot {spec}@{name}", not_found=SnapshotNotFound):
                    image.remove_snap(name)
    if not names:
        return Result(plan.action, False, "unchanged: no snapshots", plan)
    return Result(plan.action, True, f"removed {len(names)} snapshot(s)", plan)
