"""Pools: create (and initialise for RBD), list with usage, delete.

Mirrors ``ceph osd pool create``, ``rbd pool init``, ``ceph df`` and
``ceph osd pool delete``.
"""

from __future__ import annotations

from .translate import translated
from .cluster import Cluster
from ..errors import Conflict, InvalidArgument, PoolExists, PoolNotFound, require_confirmation
from ..base.plan import Plan, Result
from ..base.specs import check_name
from ..base.units import check_int


def _check_pg_num(value, what: str) -> int | None:
    if value is None:
        return None
    return check_int(value, what, 1, 32768)


def _pool_details(cluster: Cluster, name: str) -> dict | None:
    for pool in cluster.osd_dump().get("pools", []):
        if pool["pool_name"] == name:
            return pool
    return None


def create_pool(cluster: Cluster, name: str, pg_num: int | None = None,
                pgp_num: int | None = None, *, application: str = "rbd",
                exist_ok: bool = False, dry_run: bool = False) -> Result | Plan:
    """Create pool ``name`` and initialise it for RBD (``application='rbd'``).

    ``exist_ok=True`` reports "unchanged" for a pool that exists already (and is
    initialised for RBD, which it completes if needed); a different ``pg_num``
    than asked for is a :class:`Conflict`.
    """
    check_name(name, "pool")
    pg_num = _check_pg_num(pg_num, "pg_num")
    pgp_num = _check_pg_num(pgp_num, "pgp_num")
    if pgp_num is not None and (pg_num is None or pgp_num > pg_num):
        raise InvalidArgument(f"pgp_num {pgp_num} is not valid: it needs pg_num and may not "
                              f"exceed it")
    if application not in ("rbd", None):
        raise InvalidArgument(f"application {application!r} is not valid: rbdnb makes 'rbd' pools")
    plan = Plan(f"create pool {name}")
    argv = ["ceph", *cluster.cli_args(), "osd", "pool", "create", name]
    if pg_num is not None:
        argv += [str(pg_num), str(pgp_num or pg_num)]
    plan.add(*argv)
    if application == "rbd":
        plan.add("rbd", *cluster.cli_args(), "pool", "init", name)
    if dry_run:
        return plan

    existing = _pool_details(cluster, name)
    changed = []
    if existing is not None:
        if not exist_ok:
            raise PoolExists(f"pool {name} already exists")
        if pg_num is not None and existing.get("pg_num") != pg_num:
            raise Conflict(f"pool {name} exists with pg_num {existing.get('pg_num')}, "
                           f"not {pg_num}")
    else:
        cmd = {"prefix": "osd pool create", "pool": name}
        if pg_num is not None:
            cmd.update(pg_num=pg_num, pgp_num=pgp_num or pg_num)
        cluster.mon_command(cmd, f"pool {name}", exists=PoolExists)
        changed.append("created")
    if application == "rbd":
        import rbd
        with cluster.ioctx(name) as ioctx:
            with translated(f"pool {name}", not_found=PoolNotFound):
                if "rbd" not in ioctx.application_list():
                    rbd.RBD().pool_init(ioctx, False)
                    changed.append("initialised for rbd")
    message = " and ".join(changed) if changed else "unchanged: exists and is initialised for rbd"
    return Result(f"create pool {name}", bool(changed), message, plan, value=name)


def list_pools(cluster: Cluster):
    """Pools with their usage, as ``ceph df detail`` reports them: a DataFrame."""
    import pandas as pd
    dump = {p["pool_name"]: p for p in cluster.osd_dump().get("pools", [])}
    df = cluster.mon_command({"prefix": "df", "detail": "detail"}, "cluster usage")
    stats = {p["name"]: p["stats"] for p in df.get("pools", [])}
    rows = []
    for name, pool in dump.items():
        s = stats.get(name, {})
        rows.append({"pool": name, "id": pool["pool"], "pg_num": pool.get("pg_num"),
                     "size": pool.get("size"),
                     "application": ",".join(sorted(pool.get("application_metadata", {}))),
                     "stored": s.get("stored", 0), "objects": s.get("objects", 0),
                     "used": s.get("bytes_used", 0), "max_avail": s.get("max_avail", 0),
                     "quota_bytes": s.get("quota_bytes", 0)})
    columns = ["pool", "id", "pg_num", "size", "application", "stored", "objects", "used",
               "max_avail", "quota_bytes"]
    return pd.DataFrame(rows, columns=columns)


def delete_pool(cluster: Cluster, name: str, *, confirm: bool = False,
                missing_ok: bool = False, dry_run: bool = False) -> Result | Plan:
    """Delete pool ``name`` and everything in it. Refused unless ``confirm=True``."""
    check_name(name, "pool")
    plan = Plan(f"delete pool {name}").add(
        "ceph", *cluster.cli_args(), "osd", "pool", "delete", name, name,
        "--yes-i-really-really-mean-it")
    plan.note("destroys every image and snapshot in the pool")
    if dry_run:
        return plan
    require_confirmation(confirm, f"deleting pool {name} destroys all its data")
    if _pool_details(cluster, name) is None:
        if missing_ok:
            return Result(f"delete pool {name}", False, "unchanged: no such pool", plan)
        raise PoolNotFound(f"pool {name} not found")
    cluster.mon_command({"prefix": "osd pool delete", "pool": name, "pool2": name,
                         "yes_i_really_really_mean_it": True}, f"pool {name}",
                        not_found=PoolNotFound)
    return Result(f"delete pool {name}", True, "deleted", plan)
