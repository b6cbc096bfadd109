"""Copy-on-write clones of a golden snapshot: one, or many at once; flatten; children.

Mirrors ``rbd clone``, ``rbd flatten`` and ``rbd children``. ``clone_many``
creates N clones concurrently on the caller's one open connection (librbd is
thread-safe and the bindings release the GIL), which is the "golden image,
many VMs fast" case.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ._ceph import translated
from .cluster import Cluster, allowed_clone_format
from .errors import (CephError, Conflict, ImageExists, ImageNotFound, InvalidArgument,
                     RbdnbError, SnapshotNotFound)
from .images import (_children_of, feature_mask, feature_names, image_exists, image_info, image_names,
                     open_image)
from .plan import Plan, Result
from .specs import ImageSpec, parse_spec

Progress = Callable[[int, int], None]


def clone_format(cluster: Cluster) -> int:
    """2 if the cluster allows clones of unprotected snapshots (v2), else 1."""
    return allowed_clone_format(cluster)


def _ensure_protected(cluster: Cluster, parent: ImageSpec) -> bool:
    """Protect ``parent`` if v1 clones need it. True if this protected it."""
    if clone_format(cluster) == 2:
        return False
    with open_image(cluster, parent.at(None)) as image:
        with translated(f"snapshot {parent}", not_found=SnapshotNotFound):
            if image.is_protected_snap(parent.snap):
                return False
            image.protect_snap(parent.snap)
    return True


def _plan_protect(cluster: Cluster, parent: ImageSpec, plan: Plan) -> None:
    plan.add("rbd", *cluster.cli_args(), "snap", "protect", str(parent))
    plan.note("v1 clones need a protected snapshot; rbdnb protects it if it is not "
              "(skipped when the cluster allows v2 clones)")


def _check_existing_child(cluster: Cluster, parent: ImageSpec, child: ImageSpec) -> None:
    info = image_info(cluster, child)
    if info.parent != str(parent):
        raise Conflict(f"image {child} exists but is not a clone of {parent} "
                       f"(its parent: {info.parent or 'none'})")


def clone(cluster: Cluster, parent: str | ImageSpec, child: str | ImageSpec, *,
          features: list[str] | str | None = None, exist_ok: bool = False,
          dry_run: bool = False) -> Result | Plan:
    """``rbd clone parent@snap child``: a copy-on-write child of a snapshot."""
    import rbd
    parent = parse_spec(parent, snap="required")
    child = parse_spec(child)
    mask = feature_mask(features) if features is not None else None
    plan = Plan(f"clone {parent} to {child}")
    _plan_protect(cluster, parent, plan)
    argv = ["rbd", *cluster.cli_args(), "clone", str(parent), str(child)]
    if mask is not None:
        argv += ["--image-feature", ",".join(feature_names(mask))]
    plan.add(*argv)
    if dry_run:
        return plan
    if image_exists(cluster, child):
        if not exist_ok:
            raise ImageExists(f"image {child} already exists")
        _check_existing_child(cluster, parent, child)
        return Result(plan.action, False, f"unchanged: {child} is already a clone of {parent}",
                      plan)
    protected = _ensure_protected(cluster, parent)
    cluster.check_writable(child.pool)
    with cluster.ioctx(parent.pool, parent.namespace) as p_ioctx, \
            cluster.ioctx(child.pool, child.namespace) as c_ioctx:
        with translated(f"clone {child} of {parent}", not_found=ImageNotFound,
                        exists=ImageExists):
            rbd.RBD().clone(p_ioctx, parent.image, parent.snap, c_ioctx, child.image,
                            features=mask)
    return Result(plan.action, True,
                  "cloned" + (f" (protected {parent} first)" if protected else ""), plan)


def expand_names(parent: ImageSpec, names, count: int | None, start: int) -> list[ImageSpec]:
    """Children from a list of names/specs, or a pattern like ``pool/vm-{i:03d}`` and a count."""
    if isinstance(names, str):
        if count is None:
            raise InvalidArgument(f"pattern {names!r} needs count=N")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100000:
            raise InvalidArgument(f"count {count!r} is not valid: expected 1 to 100000")
        if "{i" not in names:
            raise InvalidArgument(f"pattern {names!r} has no {{i}} field: e.g. 'pool/vm-{{i:03d}}'")
        try:
            texts = [names.format(i=i) for i in range(start, start + count)]
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidArgument(f"pattern {names!r} is not valid: {exc}") from None
    else:
        texts = list(names)
        if count is not None and count != len(texts):
            raise InvalidArgument(f"count {count} does not match the {len(texts)} names given")
        if not texts:
            raise InvalidArgument("no clone names given")
    specs = [parse_spec(t, default_pool=parent.pool) for t in texts]
    seen = set()
    for spec in specs:
        if str(spec) in seen:
            raise InvalidArgument(f"clone name {spec} is given twice")
        seen.add(str(spec))
    return specs


def clone_many(cluster: Cluster, parent: str | ImageSpec, names, count: int | None = None, *,
               start: int = 1, concurrency: int = 16, features: list[str] | str | None = None,
               exist_ok: bool = False, progress: Progress | None = None,
               dry_run: bool = False) -> Result | Plan:
    """Create many copy-on-write clones of ``parent@snap`` concurrently.

    ``names`` is a list of names/specs, or a pattern such as ``"pool/vm-{i:03d}"``
    with ``count`` (numbered from ``start``, 1 by default). Every name is checked
    before anything is created. ``progress(done, total)`` is called as clones
    finish. The result's ``value`` is a DataFrame with one row per clone (name,
    status, seconds). If some clones fail, :class:`CephError` is raised after
    the others finished, carrying that result as ``.result``; re-run with
    ``exist_ok=True`` to complete.
    """
    import pandas as pd
    import rbd
    parent = parse_spec(parent, snap="required")
    children = expand_names(parent, names, count, start)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or \
            not 1 <= concurrency <= 64:
        raise InvalidArgument(f"concurrency {concurrency!r} is not valid: expected 1 to 64")
    mask = feature_mask(features) if features is not None else None
    plan = Plan(f"clone {parent} to {len(children)} images")
    _plan_protect(cluster, parent, plan)
    for child in children:
        plan.add("rbd", *cluster.cli_args(), "clone", str(parent), str(child))
    plan.note(f"run {concurrency} at a time on one connection")
    if dry_run:
        return plan

    existing = {pool_ns: set(image_names(cluster, *pool_ns))
                for pool_ns in {(c.pool, c.namespace) for c in children}}
    already = [c for c in children if c.image in existing[(c.pool, c.namespace)]]
    if already and not exist_ok:
        raise ImageExists(f"{len(already)} of the clones exist already "
                          f"({', '.join(map(str, already[:5]))}): pass exist_ok=True to skip them")
    for child in already:
        _check_existing_child(cluster, parent, child)
    todo = [c for c in children if c not in already]
    protected = _ensure_protected(cluster, parent) if todo else False
    if todo:
        cluster.check_writable()

    rows = [{"name": str(c), "status": "unchanged", "seconds": 0.0, "error": ""}
            for c in already]
    total, done = len(children), len(already)
    if progress:
        progress(done, total)

    with cluster.ioctx(parent.pool, parent.namespace) as p_ioctx:
        ioctxs = {}

        def child_ioctx(c: ImageSpec):
            key = (c.pool, c.namespace)
            if key not in ioctxs:
                ioctxs[key] = cluster.rados.open_ioctx(c.pool)
                if c.namespace:
                    ioctxs[key].set_namespace(c.namespace)
            return ioctxs[key]

        for c in todo:  # open them all before the threads start
            child_ioctx(c)

        def one(c: ImageSpec) -> dict:
            t0 = time.perf_counter()
            try:
                with translated(f"clone {c}", not_found=ImageNotFound, exists=ImageExists):
                    rbd.RBD().clone(p_ioctx, parent.image, parent.snap, child_ioctx(c),
                                    c.image, features=mask)
                return {"name": str(c), "status": "created",
                        "seconds": time.perf_counter() - t0, "error": ""}
            except RbdnbError as exc:
                return {"name": str(c), "status": "failed",
                        "seconds": time.perf_counter() - t0, "error": str(exc)}

        try:
            with ThreadPoolExecutor(max_workers=min(concurrency, max(1, len(todo)))) as pool:
                for row in pool.map(one, todo):
                    rows.append(row)
                    done += 1
                    if progress:
                        progress(done, total)
        finally:
            for ioctx in ioctxs.values():
                ioctx.close()

    frame = pd.DataFrame(rows, columns=["name", "status", "seconds", "error"])
    created = int((frame.status == "created").sum())
    failed = frame[frame.status == "failed"]
    message = f"{created} created, {len(already)} unchanged"
    if protected:
        message += f" (protected {parent} first)"
    result = Result(plan.action, created > 0, message, plan, value=frame)
    if len(failed):
        exc = CephError(f"{len(failed)} of {total} clones of {parent} failed; first: "
                        f"{failed.iloc[0]['error']}")
        exc.result = result
        raise exc
    return result


def flatten(cluster: Cluster, spec: str | ImageSpec, *, progress: Progress | None = None,
            dry_run: bool = False) -> Result | Plan:
    """``rbd flatten``: copy the parent's data into a clone so it stands alone."""
    spec = parse_spec(spec)
    plan = Plan(f"flatten image {spec}").add("rbd", *cluster.cli_args(), "flatten", str(spec))
    if dry_run:
        return plan
    info = image_info(cluster, spec)
    if info.parent is None:
        return Result(plan.action, False, "unchanged: has no parent", plan)
    cluster.check_writable(spec.pool)

    def on_progress(offset, total):
        if progress:
            progress(offset, total)
        return 0

    with open_image(cluster, spec) as image:
        with translated(f"image {spec}", not_found=ImageNotFound):
            image.flatten(on_progress=on_progress)
    return Result(plan.action, True, f"flattened (was a clone of {info.parent})", plan)


def children(cluster: Cluster, parent: str | ImageSpec):
    """``rbd children pool/image@snap``: the clones of a snapshot, as a DataFrame."""
    import pandas as pd
    parent = parse_spec(parent, snap="required")
    with open_image(cluster, parent.at(None), read_only=True) as image:
        with translated(f"snapshot {parent}"):
            kids = _children_of(image, parent.snap)
    rows = []
    for kid in kids:
        spec = parse_spec(kid)
        rows.append({"pool": spec.pool, "namespace": spec.namespace, "image": spec.image})
    return pd.DataFrame(rows, columns=["pool", "namespace", "image"])
