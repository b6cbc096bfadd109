"""Freeing space on a full cluster: removing named images when nothing can be written.

A full pool refuses writes, and removing an RBD image starts with writes (librbd moves
it to the trash first): ``rbd rm`` fails with ENOSPC and rbdnb's :func:`remove_image`
refuses with :class:`ClusterFull`. :func:`free_space` is the explicit way out, by
Ceph's own means:

1. the named images' data objects are deleted with librados' *full try* flag, which
   lets deletes through a full pool (``rados rm --force-full``): that frees the bulk
   at once, even past the full ratio (a memstore OSD can hold more than its size);
2. once the OSDs report the space free and the monitor lifts the pool's ``full`` flag,
   the images are removed as usual (snapshots, headers, directory entries);
3. if the flag stays (snapshots still hold data), the full ratio is raised a little,
   as Ceph's documentation advises, and restored afterwards whatever happens.
"""

from __future__ import annotations

import time

from .translate import translated
from .cluster import Cluster, check_timeout
from ..errors import (ClusterFull, ImageBusy, ImageNotFound, InvalidArgument, RbdnbError,
                     require_confirmation)
from .images import busy_message, check_removable, image_exists, open_image, remove_image
from ..base.plan import Plan, Result
from ..base.specs import ImageSpec, parse_spec
from ..base.waiting import wait_until

FULL_TRY = 64          # LIBRADOS_OPERATION_FULL_TRY: deletes pass a full pool
RATIO_STEP = 0.03
MAX_FULL_RATIO = 0.99


def _data_objects(cluster: Cluster, spec: ImageSpec) -> list[str]:
    with open_image(cluster, spec, read_only=True) as image:
        prefix = image.stat()["block_name_prefix"]
    with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
        with translated(f"pool {spec.pool}"):
            return [o.key for o in ioctx.list_objects() if o.key.startswith(prefix + ".")]


def _delete_forced(cluster: Cluster, spec: ImageSpec, names: list[str]) -> int:
    import rados
    removed = 0
    with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
        for name in names:
            with rados.WriteOpCtx() as op:
                op.remove()
                with translated(f"data of image {spec}"):
                    try:
                        ioctx.operate_write_op(op, name, flags=FULL_TRY)
                    except rados.ObjectNotFound:
                        continue  # gone already
                removed += 1
    return removed


def _watched(cluster: Cluster, spec: ImageSpec) -> bool:
    import rbd
    with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
        with translated(f"image {spec}", not_found=ImageNotFound):
            with rbd.Image(ioctx, spec.image, read_only=True) as image:
                return bool(list(image.watchers_list()))


def _wait_not_full(cluster: Cluster, pools: set[str], deadline: float) -> bool:
    def not_full() -> bool:
        full = cluster.full_pools()
        return "*" not in full and not pools & set(full)
    return bool(wait_until(not_full, max(0.0, deadline - time.monotonic()), interval=1))


def free_space(cluster: Cluster, images, *, confirm: bool = False, timeout: float = 60,
               dry_run: bool = False) -> Result | Plan:
    """Remove ``images`` (``["pool/img", ...]``) and their snapshots on a full cluster.

    Refused unless ``confirm=True``, and refused before anything changes if an image
    does not exist, clones depend on it, or a client (a VM) still has it open. ``timeout`` bounds the wait for the
    monitor to see the space freed. Works on a cluster that is not full too (then it
    is plain removal).
    """
    if isinstance(images, (str, ImageSpec)):
        images = [images]
    specs = [parse_spec(i) for i in images]
    if not specs:
        raise InvalidArgument("name at least one image to remove")
    if len({str(s) for s in specs}) != len(specs):
        raise InvalidArgument("an image is named twice")
    timeout = check_timeout(timeout)
    plan = Plan(f"free space: remove {', '.join(map(str, specs))}")
    for spec in specs:
        ns = ["--namespace", spec.namespace] if spec.namespace else []
        plan.add("rados", *cluster.cli_args(), "-p", spec.pool, *ns, "rm", "--force-full",
                 f"rbd_data.<id of {spec.image}>.*")
    plan.add("ceph", *cluster.cli_args(), "osd", "set-full-ratio", "<ratio + 0.03>")
    for spec in specs:
        plan.add("rbd", *cluster.cli_args(), "snap", "purge", str(spec))
        plan.add("rbd", *cluster.cli_args(), "rm", str(spec))
    plan.add("ceph", *cluster.cli_args(), "osd", "set-full-ratio", "<ratio>")
    plan.note("the data objects go first, with librados' full-try flag, which lets deletes "
              "through a full pool; the full ratio is raised only if the pool stays full, "
              "and is always restored")
    if dry_run:
        return plan
    require_confirmation(confirm, f"freeing space removes {', '.join(map(str, specs))} with "
                                  f"their snapshots and data")
    for spec in specs:  # refuse before anything changes
        if not image_exists(cluster, spec):
            raise ImageNotFound(f"image {spec} not found")
        check_removable(cluster, spec, purge_snapshots=True)
        # Its data goes first, before librbd could see a client still using it: an image
        # a VM has open must be let go of first, or the VM would read zeros.
        if _watched(cluster, spec):
            raise ImageBusy(busy_message(cluster, spec, "freed"))

    pools = {s.pool for s in specs}
    deadline = time.monotonic() + timeout
    was_full = bool(pools & set(cluster.full_pools())) or "*" in cluster.full_pools()
    objects = 0
    if was_full:
        for spec in specs:
            try:
                objects += _delete_forced(cluster, spec, _data_objects(cluster, spec))
            except ImageNotFound:
                continue  # listed without a header: the removal below clears it
    dump = cluster.osd_dump()
    ratio = float(dump.get("full_ratio") or 0.95)
    raised = False
    try:
        if was_full and not _wait_not_full(cluster, pools, min(deadline, time.monotonic() +
                                                                timeout / 2)):
            new = min(MAX_FULL_RATIO, round(ratio + RATIO_STEP, 3))
            if new > ratio:
                cluster.mon_command({"prefix": "osd set-full-ratio", "ratio": new},
                                    "the full ratio")
                raised = True
            if not _wait_not_full(cluster, pools, deadline):
                raise ClusterFull(f"deleted {objects} data objects of "
                                  f"{', '.join(map(str, specs))}, but the cluster is still full "
                                  f"after {timeout:g} s: name more images to remove")
        removed = []
        for spec in specs:
            remove_image(cluster, spec, confirm=True, purge_snapshots=True, missing_ok=True)
            removed.append(str(spec))
    finally:
        if raised:
            try:
                cluster.mon_command({"prefix": "osd set-full-ratio", "ratio": ratio},
                                    "the full ratio")
            except RbdnbError:
                pass
    how = (f"deleted {objects} data objects through the full pool, then removed"
           if was_full else "removed (the cluster was not full)")
    if raised:
        how += f"; the full ratio was raised to {ratio + RATIO_STEP:.2f} meanwhile and is " \
               f"back at {ratio:.2f}"
    return Result(plan.action, True, f"{how} {', '.join(removed)}", plan, value=removed)
