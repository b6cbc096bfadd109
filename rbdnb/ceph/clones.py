"""Copy-on-write clones of a golden snapshot: one, or many at once; flatten; children.

Mirrors ``rbd clone``, ``rbd flatten`` and ``rbd children``. ``clone_many``
creates N clones concurrently on the caller's one open connection (librbd is
thread-safe and the bindings release the GIL), which is the "golden image,
many VMs fast" case.

A clone is made in several steps; a process killed between them leaves an image with
no parent, or a name without a header. Before cloning, rbdnb writes its intent to the
pool's journal (:mod:`rbdnb.ceph.journal`); a re-run with ``exist_ok=True`` that finds such
a half-made image with an intent for it removes and remakes it, so it completes the
job. An image with no intent that is not a clone of the parent is someone else's: it
is a :class:`~rbdnb.errors.Conflict` and is never touched.
"""

from __future__ import annotations

import concurrent.futures as futures
import re
import time
from typing import Callable

from . import journal
from .translate import translated
from .cluster import Cluster, allowed_clone_format
from ..errors import (CephError, ClusterFull, Conflict, ImageBusy, ImageExists, ImageNotFound,
                     InvalidArgument, PoolNotFound, RbdnbError, SnapshotNotFound, Timeout)
from .images import children_of, feature_mask, feature_names, image_names, open_image
from ..base.plan import Plan, Result
from ..base.specs import ImageSpec, parse_spec
from ..base.units import check_int

Progress = Callable[[int, int], None]
MAX_COUNT = 100000


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


def _intent_key(child: ImageSpec) -> str:
    return f"clone:{child.image}"


def _parent_of(cluster: Cluster, child: ImageSpec) -> str | None:
    """The child's parent ``pool/image@snap``, or None; ImageNotFound if it cannot be opened
    (a name whose header a killed clone never wrote)."""
    import rbd
    with cluster.ioctx(child.pool, child.namespace) as ioctx:
        with translated(f"image {child}", not_found=ImageNotFound):
            with rbd.Image(ioctx, child.image, read_only=True) as image:
                try:
                    p = image.get_parent_image_spec()
                except rbd.ImageNotFound:
                    return None
    ns = f"{p['pool_namespace']}/" if p.get("pool_namespace") else ""
    return f"{p['pool_name']}/{ns}{p['image_name']}@{p['snap_name']}"


def _has_data(cluster: Cluster, spec: ImageSpec) -> bool:
    """Whether any data object of the image exists (a half-made clone never wrote one)."""
    import rbd
    with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
        try:
            with rbd.Image(ioctx, spec.image, read_only=True) as image:
                prefix = image.stat()["block_name_prefix"] + "."
        except rbd.ImageNotFound:
            return False
        with translated(f"pool {spec.pool}"):
            for obj in ioctx.list_objects():
                if obj.key.startswith(prefix):
                    return True
    return False


def _sort_existing(cluster: Cluster, parent: ImageSpec, existing: list[ImageSpec]):
    """Split images that exist already into (clones of ``parent``, half-made clones that a
    recorded intent says rbdnb was making from ``parent``). Anything else is a Conflict.

    Half-made means: an intent for it from ``parent``, and either no header, or a parent
    link to ``parent`` without being among its children, or no parent and no data at all.
    A flattened clone (no parent, but data) or an image of other parentage is never taken
    for one, whatever intent an interrupted run left.
    """
    if not existing:
        return [], []
    with open_image(cluster, parent.at(None), read_only=True) as image:
        with translated(f"snapshot {parent}", not_found=SnapshotNotFound):
            kids = set(children_of(image, parent.snap))
    good, unsure = [], []
    for child in existing:
        (good if str(child) in kids else unsure).append(child)
    half_made = []
    intents = {}
    for key in {(c.pool, c.namespace) for c in unsure}:
        intents[key] = journal.read(cluster, key[0], key[1],
                                    [_intent_key(c) for c in unsure if (c.pool, c.namespace) == key])
    for child in unsure:
        intent = intents[(child.pool, child.namespace)].get(_intent_key(child))
        try:
            have = _parent_of(cluster, child)
        except ImageNotFound:
            have = "(no header)"
        ours = intent is not None and intent.get("parent") == str(parent)
        if ours and (have in ("(no header)", str(parent)) or
                     (have is None and not _has_data(cluster, child))):
            half_made.append((child, intent))
            continue
        if have == str(parent):
            raise Conflict(f"image {child} names {parent} as its parent but is not among its "
                           f"children: a clone interrupted half-way by another client; remove "
                           f"it (rbd rm {child}) and run again")
        raise Conflict(f"image {child} exists but is not a clone of {parent} (its parent: "
                       f"{have or 'none'}), and rbdnb was not making it: remove it or choose "
                       f"other names")
    return good, half_made


def _remove_half_made(cluster: Cluster, child: ImageSpec, deadline: float,
                      intent: dict) -> None:
    """Remove a clone a killed process left half-made. Its client's watch on the image can
    outlive it by up to the OSDs' watch timeout (30 s): when the writer is known dead (a
    process of this host that is gone), it is cut off first, as librbd does when it breaks
    a dead client's lock; otherwise librbd's "busy" is waited out. A writer that still runs
    (another user's process on this host) is left alone: Locked."""
    from .staging import remove_left_behind, writer_gone
    dead_writer = writer_gone(intent)
    if dead_writer is False:
        from ..errors import Locked
        raise Locked(f"clone {child} is being made by another process of this host (pid "
                     f"{intent.get('pid')}): wait for it to end")
    if not remove_left_behind(cluster, child, dead_writer=dead_writer, what="half-made clone",
                              wait=max(0.0, deadline - time.monotonic()),
                              client=intent.get("client")):
        raise ImageBusy(f"half-made clone {child} is still open by a client that died; try "
                        f"again in a minute, when its watch has expired")


def _journal_by_pool(children: list[ImageSpec]) -> dict[tuple[str, str], list[ImageSpec]]:
    out: dict[tuple[str, str], list[ImageSpec]] = {}
    for c in children:
        out.setdefault((c.pool, c.namespace), []).append(c)
    return out


def _record_intents(cluster: Cluster, parent: ImageSpec, children: list[ImageSpec]) -> None:
    who = journal.owner(cluster)
    for (pool, ns), kids in _journal_by_pool(children).items():
        journal.record(cluster, pool, ns, {_intent_key(c): {"parent": str(parent), **who}
                                           for c in kids})


def _forget_intents(cluster: Cluster, children: list[ImageSpec]) -> None:
    for (pool, ns), kids in _journal_by_pool(children).items():
        journal.forget(cluster, pool, ns, [_intent_key(c) for c in kids])


def clone(cluster: Cluster, parent: str | ImageSpec, child: str | ImageSpec, *,
          features: list[str] | str | None = None, exist_ok: bool = False,
          dry_run: bool = False) -> Result | Plan:
    """``rbd clone parent@snap child``: a copy-on-write child of a snapshot."""
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
    result = clone_many(cluster, parent, [child], features=features, exist_ok=exist_ok,
                        concurrency=1)
    if not result.changed:
        return Result(plan.action, False, f"unchanged: {child} is already a clone of {parent}",
                      plan)
    message = "cloned"
    if "remade" in result.message:
        message += " (a half-made clone an earlier run left was removed first)"
    if "protected" in result.message:
        message += f" (protected {parent} first)"
    return Result(plan.action, True, message, plan)


def check_pattern(names: str) -> None:
    """A clone name pattern may use only ``{i}`` with an integer format (``{i:03d}``)."""
    import string
    try:
        fields = list(string.Formatter().parse(names))
    except ValueError as exc:
        raise InvalidArgument(f"pattern {names!r} is not valid: {exc}") from None
    used = [(f, spec, conv) for _, f, spec, conv in fields if f is not None]
    if not used:
        raise InvalidArgument(f"pattern {names!r} has no {{i}} field: e.g. 'pool/vm-{{i:03d}}'")
    for field, spec, conv in used:
        if field != "i" or conv is not None or "{" in (spec or ""):
            raise InvalidArgument(f"pattern {names!r} is not valid: only {{i}} with an integer "
                                  f"format such as {{i:03d}} may appear, not {{{field}"
                                  f"{'!' + conv if conv else ''}{':' + spec if spec else ''}}}")
        width = re.search(r"\d+", spec or "")
        if width and int(width.group()) > 32:
            raise InvalidArgument(f"pattern {names!r} is not valid: {{i:{spec}}} is wider "
                                  f"than 32 characters")
        try:
            format(1, spec or "")
        except ValueError:
            raise InvalidArgument(f"pattern {names!r} is not valid: {{i:{spec}}} is not an "
                                  f"integer format") from None


def expand_names(parent: ImageSpec, names, count: int | None, start: int) -> list[ImageSpec]:
    """Children from a list of names/specs, or a pattern like ``pool/vm-{i:03d}`` and a count."""
    check_int(start, "start", 0, 10**9)
    if isinstance(names, str):
        if count is None:
            raise InvalidArgument(f"pattern {names!r} needs count=N")
        check_int(count, "count", 1, MAX_COUNT)
        check_pattern(names)
        texts = [names.format(i=i) for i in range(start, start + count)]
    else:
        if isinstance(names, ImageSpec):
            names = [names]
        try:
            texts = list(names)
        except TypeError:
            raise InvalidArgument(f"clone names {names!r} are not valid: a list of names or "
                                  f"a pattern such as 'pool/vm-{{i:03d}}'") from None
        if count is not None and count != len(texts):
            raise InvalidArgument(f"count {count} does not match the {len(texts)} names given")
        if not texts:
            raise InvalidArgument("no clone names given")
        if len(texts) > MAX_COUNT:
            raise InvalidArgument(f"{len(texts)} clone names given: at most {MAX_COUNT}")
    specs = [parse_spec(t, default_pool=parent.pool) for t in texts]
    seen = set()
    for spec in specs:
        if str(spec) in seen:
            raise InvalidArgument(f"clone name {spec} is given twice")
        if spec.image_path == parent.image_path:
            raise InvalidArgument(f"clone name {spec} is the parent image itself")
        seen.add(str(spec))
    return specs


def clone_many(cluster: Cluster, parent: str | ImageSpec, names, count: int | None = None, *,
               start: int = 1, concurrency: int = 16, features: list[str] | str | None = None,
               exist_ok: bool = False, progress: Progress | None = None,
               timeout: float | None = None, dry_run: bool = False) -> Result | Plan:
    """Create many copy-on-write clones of ``parent@snap`` concurrently.

    ``names`` is a list of names/specs, or a pattern such as ``"pool/vm-{i:03d}"``
    with ``count`` (numbered from ``start``, 1 by default). Every name is checked
    before anything is created. ``progress(done, total)`` is called as clones
    finish. The result's ``value`` is a DataFrame with one row per clone (name,
    status, seconds).

    The whole call is bounded: once the cluster stops answering (no clone finishes for
    ``timeout`` seconds, the connection's timeout by default, or one times out), no
    further clone is started and :class:`Timeout` says how many were made and which
    were not. If some clones fail otherwise, :class:`CephError` is raised after the
    others finished, carrying the result as ``.result``. Either way a re-run with
    ``exist_ok=True`` completes the job, remaking any clone left half-made.
    """
    parent = parse_spec(parent, snap="required")
    children = expand_names(parent, names, count, start)
    check_int(concurrency, "concurrency", 1, 64)
    from .cluster import check_timeout
    stall = check_timeout(timeout if timeout is not None else cluster.timeout)
    mask = feature_mask(features) if features is not None else None
    plan = Plan(f"clone {parent} to {len(children)} images")
    _plan_protect(cluster, parent, plan)
    for child in children:
        plan.add("rbd", *cluster.cli_args(), "clone", str(parent), str(child))
    plan.note(f"run {concurrency} at a time on one connection")
    if dry_run:
        return plan

    # One clone_many of a parent at a time on this host: a half-made clone found under
    # this lock with an intent of this host belongs to a run that is gone.
    from . import locks
    from .staging import lock_key
    with locks.held(f"clones:{lock_key(cluster, parent.at(None))}@{parent.snap}",
                    what=f"clones of {parent}"):
        return _clone_many_locked(cluster, parent, children, exist_ok, concurrency, stall,
                                  mask, progress, plan)


OBJECTS_PER_CLONE = 2  # rbd_id.NAME and rbd_header.ID; with object-map, rbd_object_map.ID too


def _check_room(cluster: Cluster, todo: list[ImageSpec], mask: int | None) -> None:
    """Refuse, before the first clone, a count that a pool's object quota cannot hold."""
    if not todo:
        return
    quotas = {p["pool_name"]: p.get("quota_max_objects", 0) for p in cluster.osd_dump()["pools"]}
    wanted: dict[str, int] = {}
    for child in todo:
        wanted[child.pool] = wanted.get(child.pool, 0) + 1
    if not any(quotas.get(pool) for pool in wanted):
        return
    df = cluster.mon_command({"prefix": "df"}, "cluster usage")
    used = {p["name"]: p["stats"]["objects"] for p in df["pools"]}
    per = OBJECTS_PER_CLONE + (1 if mask is None or mask & 8 else 0)  # 8: object-map
    for pool, count in sorted(wanted.items()):
        quota = quotas.get(pool) or 0
        if quota and used.get(pool, 0) + count * per > quota:
            room = max(0, quota - used.get(pool, 0)) // per
            raise ClusterFull(f"pool {pool} can hold about {room} more clones, not {count}: its "
                              f"quota is {quota} objects, {used.get(pool, 0)} used, each clone "
                              f"needs {per}; raise it (ceph osd pool set-quota {pool} "
                              f"max_objects N) or make fewer")


def _clone_many_locked(cluster, parent, children, exist_ok, concurrency, stall, mask, progress,
                       plan):
    import pandas as pd
    import rbd
    existing = {pool_ns: set(image_names(cluster, *pool_ns))
                for pool_ns in {(c.pool, c.namespace) for c in children}}
    already = [c for c in children if c.image in existing[(c.pool, c.namespace)]]
    if already and not exist_ok:
        raise ImageExists(f"{len(already)} of the clones exist already "
                          f"({', '.join(map(str, already[:5]))}): {{fix}} to skip them",
                          fix=("exist_ok", True))
    good, half_made = _sort_existing(cluster, parent, already)
    done_names = {str(c) for c in good}
    todo = [c for c in children if str(c) not in done_names]

    rows = [{"name": str(c), "status": "unchanged", "seconds": 0.0, "error": ""} for c in good]
    total, done = len(children), len(good)
    if progress:
        progress(done, total)
    if good:
        # A clone that is complete needs no intent: an interrupted run may have left one.
        try:
            _forget_intents(cluster, good)
        except RbdnbError:
            pass
    if not todo:
        frame = pd.DataFrame(rows, columns=["name", "status", "seconds", "error"])
        return Result(plan.action, False, f"0 created, {len(good)} unchanged", plan, value=frame)

    for pool in sorted({c.pool for c in todo}):
        cluster.check_writable(pool)
    remade = {child for child, _ in half_made}  # their objects are there already
    _check_room(cluster, [c for c in todo if c not in remade], mask)
    protected = _ensure_protected(cluster, parent)
    _record_intents(cluster, parent, todo)
    repair_deadline = time.monotonic() + stall + 10
    for child, intent in half_made:
        _remove_half_made(cluster, child, repair_deadline, intent)

    created: list[ImageSpec] = []
    failed: list[dict] = []
    submitted: set[str] = set()
    abandoned = False
    ioctxs = {}
    try:
        # Opened by hand, not in a with-block: if the cluster stops answering, threads stay
        # inside librbd with them, and closing them then would crash the process.
        for pool_ns in [(parent.pool, parent.namespace)] + [(c.pool, c.namespace)
                                                            for c in todo]:
            if pool_ns not in ioctxs:
                with translated(f"pool {pool_ns[0]}", not_found=PoolNotFound):
                    ioctx = cluster.rados.open_ioctx(pool_ns[0])
                ioctxs[pool_ns] = ioctx
                ioctx.set_osdmap_full_try()
                if pool_ns[1]:
                    ioctx.set_namespace(pool_ns[1])
        p_ioctx = ioctxs[(parent.pool, parent.namespace)]

        def one(c: ImageSpec) -> dict:
            t0 = time.perf_counter()
            try:
                with translated(f"clone {c}", not_found=ImageNotFound, exists=ImageExists):
                    rbd.RBD().clone(p_ioctx, parent.image, parent.snap,
                                    ioctxs[(c.pool, c.namespace)], c.image, features=mask)
                return {"name": str(c), "status": "created",
                        "seconds": time.perf_counter() - t0, "error": "", "spec": c}
            except RbdnbError as exc:
                return {"name": str(c), "status": "failed", "seconds": time.perf_counter() - t0,
                        "error": str(exc), "template": exc.template, "spec": c, "exc": exc}

        pool = futures.ThreadPoolExecutor(max_workers=min(concurrency, len(todo)))
        queue = list(todo)
        running: set[futures.Future] = set()
        stopped: RbdnbError | None = None
        try:
            while queue or running:
                while queue and stopped is None and len(running) < concurrency:
                    child = queue.pop(0)
                    submitted.add(str(child))
                    running.add(pool.submit(one, child))
                finished, running = futures.wait(running, timeout=stall,
                                                 return_when=futures.FIRST_COMPLETED)
                if not finished:
                    # Nothing finished for a whole timeout: the cluster stopped answering.
                    stopped = stopped or Timeout(f"no clone finished within {stall:g} s")
                    abandoned = True
                    break
                for fut in finished:
                    row = fut.result()
                    exc = row.pop("exc", None)
                    spec = row.pop("spec")
                    rows.append({k: v for k, v in row.items() if k != "template"})
                    done += 1
                    if row["status"] == "created":
                        created.append(spec)
                    else:
                        failed.append(row)  # with its template, for the message
                        if stopped is None and isinstance(exc, (Timeout, ClusterFull)):
                            stopped = exc
                        elif stopped is None and row["seconds"] >= 0.8 * stall:
                            # librbd sometimes reports a clone that waited out the OSDs as
                            # EINVAL: a failure that took a timeout is the cluster not answering.
                            stopped = Timeout(f"a clone failed after {row['seconds']:.0f} s "
                                              f"({row['error']})")
                    if progress:
                        progress(done, total)
                if stopped is not None:
                    queue.clear()  # the cluster stopped answering: start no more
        finally:
            pool.shutdown(wait=not abandoned, cancel_futures=True)
    finally:
        if not abandoned:
            for ioctx in ioctxs.values():
                ioctx.close()
        # else: threads still wait inside librbd on these; closing them would crash.

    # Intents of clones that are complete, or never started, are done with; those of
    # clones that failed, or were still being made when the cluster stopped answering,
    # stay, so that a re-run remakes them.
    unstarted = [c for c in todo if str(c) not in submitted]
    try:
        _forget_intents(cluster, created + unstarted)
    except RbdnbError:
        pass  # the cluster stopped answering: the intents stay, which is safe

    frame = pd.DataFrame(rows, columns=["name", "status", "seconds", "error"])
    message = f"{len(created)} created, {len(good)} unchanged"
    if half_made:
        message += f", {len(half_made)} half-made by an earlier run remade"
    if protected:
        message += f" (protected {parent} first)"
    result = Result(plan.action, bool(created), message, plan, value=frame)
    if stopped is not None:
        missing = [str(c) for c in todo if c not in created]
        shown = ", ".join(missing[:3]) + (f" … {missing[-1]}" if len(missing) > 3 else "")
        kind = ClusterFull if isinstance(stopped, ClusterFull) else Timeout
        exc = kind(f"clones of {parent}: stopped after {len(created) + len(good)} of {total} "
                   f"were made, because {stopped.template}; not made: {len(missing)} "
                   f"({shown}); once the cluster answers, re-run and {{fix:exist_ok=True}} to "
                   f"complete")
        exc.result = result
        raise exc
    if failed:
        exc = CephError(f"{len(failed)} of {total} clones of {parent} failed; first: "
                        f"{failed[0]['template']}; re-run and {{fix:exist_ok=True}} to "
                        f"complete")
        exc.result = result
        raise exc
    return result


def flatten(cluster: Cluster, spec: str | ImageSpec, *, progress: Progress | None = None,
            dry_run: bool = False) -> Result | Plan:
    """``rbd flatten``: copy the parent's data into a clone so it stands alone.

    Killed half-way, the clone keeps its parent and a re-run completes it, correctly.
    That needs care: on this Ceph (16.2), a flatten resumed after one whose client was
    killed loses the objects that were being copied when it died (they read as zeros
    once the parent is detached; seen with ``rbd flatten`` too, with or without an
    object-map rebuild). rbdnb records each flatten in the pool's journal; a re-run that
    finds the record of a run that died first copies every object the clone lacks itself
    (read through the clone, written back whole: the ordinary write path), then lets
    librbd finish, which then only detaches the parent.
    """
    from . import journal, locks
    from .staging import lock_key
    spec = parse_spec(spec)
    plan = Plan(f"flatten image {spec}").add("rbd", *cluster.cli_args(), "flatten", str(spec))
    plan.note("after an interrupted flatten: rbd object-map rebuild first")
    if dry_run:
        return plan
    try:
        parent = _parent_of(cluster, spec)
    except ImageNotFound:
        raise ImageNotFound(f"image {spec} not found") from None
    if parent is None:
        return Result(plan.action, False, "unchanged: has no parent", plan)

    def on_progress(offset, total):
        if progress:
            progress(offset, total)
        return 0

    key = f"flatten:{spec.image}"
    rebuilt = 0
    with locks.held(lock_key(cluster, spec), what=f"flatten of {spec}"):
        with cluster.writing(spec.pool, f"flatten of {spec}"):
            interrupted = journal.read(cluster, spec.pool, spec.namespace, [key]).get(key)
            journal.record(cluster, spec.pool, spec.namespace, {key: journal.owner(cluster)})
            with open_image(cluster, spec) as image:
                with translated(f"image {spec}", not_found=ImageNotFound):
                    if interrupted:
                        rebuilt = _copy_missing_objects(cluster, spec, image, on_progress)
                    image.flatten(on_progress=on_progress)
            journal.forget(cluster, spec.pool, spec.namespace, [key])
    message = f"flattened (was a clone of {parent})"
    if interrupted:
        message += (f"; an earlier flatten had been interrupted: {rebuilt} object(s) it had not "
                    f"copied were copied first")
    return Result(plan.action, True, message, plan)


def _copy_missing_objects(cluster: Cluster, spec: ImageSpec, image, on_progress) -> int:
    """Write every object of the clone that does not exist yet, with the data the clone
    reads there (its parent's): librbd's ordinary write path, not its copy-up."""
    import rados
    stat = image.stat()
    prefix, size, count = stat["block_name_prefix"], stat["obj_size"], stat["num_objs"]
    copied = 0
    with cluster.ioctx(spec.pool, spec.namespace) as ioctx:
        for index in range(count):
            try:
                ioctx.stat(f"{prefix}.{index:016x}")
                continue
            except rados.ObjectNotFound:
                pass
            offset = index * size
            data = image.read(offset, min(size, image.size() - offset))
            if data.count(0) != len(data):  # zeros need no object
                image.write(data, offset)
                copied += 1
            on_progress(offset, image.size())
    return copied


def children(cluster: Cluster, parent: str | ImageSpec):
    """``rbd children pool/image@snap``: the clones of a snapshot, as a DataFrame.

    Read as librbd keeps them, without a lookup per clone: clone v1's ``rbd_children``
    object of each pool (one call each), clone v2's list in the parent's header, and the
    clones' names from each pool's directory (one read). A clone in the trash is not
    listed, as ``rbd children`` without ``--all``. If any of it is in an encoding rbdnb
    does not read, librbd lists them.
    """
    import pandas as pd
    from . import headers
    parent = parse_spec(parent, snap="required")
    with open_image(cluster, parent.at(None), read_only=True) as image:
        with translated(f"snapshot {parent}"):
            parent_id = image.id()
            snap_id = next((s["id"] for s in image.list_snaps() if s["name"] == parent.snap),
                           None)
            if snap_id is None:
                raise SnapshotNotFound(f"snapshot {parent} not found")
            try:
                kids = _children_read(cluster, parent, parent_id, snap_id)
            except headers.Undecodable:
                kids = [parse_spec(k) for k in children_of(image, parent.snap)]
    rows = [{"pool": k.pool, "namespace": k.namespace, "image": k.image} for k in kids]
    return pd.DataFrame(rows, columns=["pool", "namespace", "image"])


def _children_read(cluster: Cluster, parent: ImageSpec, parent_id: str,
                   snap_id: int) -> list[ImageSpec]:
    import rbd
    from . import headers
    rados = cluster.rados
    parent_pool = rados.pool_lookup(parent.pool)
    found: list[tuple[str, str, str]] = []  # pool, namespace, image id
    with cluster.ioctx(parent.pool, parent.namespace) as ioctx:
        for pool_id, namespace, image_id in headers.v2_child_specs(ioctx, parent_id, snap_id):
            found.append((rados.pool_reverse_lookup(pool_id), namespace, image_id))
    if not parent.namespace:  # clone v1 has no namespaces
        for pool in rados.list_pools():
            with cluster.ioctx(pool) as ioctx:
                found += [(pool, "", i) for i in
                          headers.v1_child_ids(ioctx, parent_pool, parent_id, snap_id)]
    names: dict[tuple[str, str], dict[str, str]] = {}
    kids = []
    for pool, namespace, image_id in found:
        if (pool, namespace) not in names:
            with cluster.ioctx(pool, namespace) as ioctx:
                names[(pool, namespace)] = {e["id"]: e["name"]
                                            for e in rbd.RBD().list2(ioctx)}
        name = names[(pool, namespace)].get(image_id)
        if name is not None:  # not in the directory: in the trash, or being removed
            kids.append(ImageSpec(pool, name, namespace))
    return sorted(kids, key=lambda k: (k.pool, k.namespace, k.image))
