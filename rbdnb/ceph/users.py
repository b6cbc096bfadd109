"""cephx users: least-privilege clients for RBD pools, their keyrings and keys.

Mirrors ``ceph auth get-or-create``, ``ceph auth get`` and ``ceph auth ls``.
Keys are returned only as :class:`~rbdnb.base.secret.Secret` and written only to
0600 files; they never appear in a plan, result, log or message.
"""

from __future__ import annotations

import os

from .cluster import Cluster
from ..errors import Conflict, InvalidArgument, UserExists, UserNotFound
from ..base.plan import Plan, Result
from ..base.secret import Secret
from ..base.specs import check_name, parse_client


def rbd_caps(pools: list[str]) -> dict[str, str]:
    """Least-privilege caps for RBD on ``pools`` (Ceph's documented profile form)."""
    if isinstance(pools, str):
        pools = [pools]
    if not pools:
        raise InvalidArgument("pools is empty: name at least one pool the user may use")
    for pool in pools:
        check_name(pool, "pool")
    scoped = ", ".join(f"profile rbd pool={p}" for p in pools)
    return {"mon": "profile rbd", "osd": scoped, "mgr": scoped}


def _auth_get(cluster: Cluster, entity: str) -> dict | None:
    try:
        out = cluster.mon_command({"prefix": "auth get", "entity": entity}, f"user {entity}",
                                  not_found=UserNotFound)
    except UserNotFound:
        return None
    return out[0] if out else None


def create_user(cluster: Cluster, client: str, pools: list[str] | str, *,
                caps: dict[str, str] | None = None, exist_ok: bool = False,
                dry_run: bool = False) -> Result | Plan:
    """Create ``client.NAME`` with least-privilege RBD caps on ``pools``.

    ``caps`` overrides the caps (e.g. the guide's older ``class-read`` form).
    With ``exist_ok=True`` an existing user with the same caps is "unchanged";
    one with other caps is a :class:`Conflict` (rbdnb does not widen or narrow caps).
    """
    ident = parse_client(client)
    entity = f"client.{ident}"
    wanted = dict(caps) if caps is not None else rbd_caps(pools)
    for service, cap in wanted.items():
        if service not in ("mon", "osd", "mgr", "mds") or not isinstance(cap, str) or not cap \
                or any(ch in cap for ch in "\n\r\"'"):
            raise InvalidArgument(f"caps {service!r}: {cap!r} is not valid")
    argv = ["ceph", *cluster.cli_args(), "auth", "get-or-create", entity]
    for service, cap in wanted.items():
        argv += [service, cap]
    plan = Plan(f"create user {entity}").add(*argv)
    plan.note("the key is kept by the cluster; rbdnb writes it only to a 0600 keyring file")
    if dry_run:
        return plan
    existing = _auth_get(cluster, entity)
    if existing is not None:
        if not exist_ok:
            raise UserExists(f"user {entity} already exists")
        if existing.get("caps", {}) != wanted:
            have = "; ".join(f"{k} '{v}'" for k, v in sorted(existing.get("caps", {}).items()))
            raise Conflict(f"user {entity} exists with other caps ({have})")
        return Result(f"create user {entity}", False, "unchanged: exists with these caps", plan,
                      value=entity)
    caps_list = [x for service, cap in wanted.items() for x in (service, cap)]
    cluster.mon_command({"prefix": "auth get-or-create", "entity": entity, "caps": caps_list},
                        f"user {entity}", exists=UserExists)
    return Result(f"create user {entity}", True, "created with caps " + "; ".join(
        f"{k} '{v}'" for k, v in wanted.items()), plan, value=entity)


def get_key(cluster: Cluster, client: str) -> Secret:
    """The user's key, as a :class:`Secret` that never prints."""
    entity = f"client.{parse_client(client)}"
    found = _auth_get(cluster, entity)
    if found is None:
        raise UserNotFound(f"user {entity} not found")
    return Secret(found["key"], entity)


def keyring_path(client: str, directory: str | os.PathLike | None = None) -> str:
    """Where ``client.NAME``'s keyring goes: ``DIR/ceph.client.NAME.keyring``, in rbdnb's
    private keyring directory unless ``directory`` is given."""
    from ..base.paths import keyring_dir
    name = f"ceph.client.{parse_client(client)}.keyring"
    return os.path.join(os.fspath(directory) if directory is not None else keyring_dir(), name)


def write_keyring(cluster: Cluster, client: str, path: str | os.PathLike | None = None, *,
                  caps: bool = True, dry_run: bool = False) -> Result | Plan:
    """Write ``client.NAME``'s keyring to ``path`` with mode 0600 (created that way).

    With ``caps`` (the default) the file is what ``ceph auth get -o`` writes, the caps
    included; without, what ``ceph auth get-or-create -o`` writes: the key alone.
    Without ``path`` it goes to rbdnb's keyring directory (0700, under its data dir); a
    missing directory of ``path`` is made 0700.
    """
    from ..base.paths import ensure_keyring_dir, keyring_dir
    entity = f"client.{parse_client(client)}"
    path = os.path.abspath(os.fspath(path)) if path is not None else keyring_path(client)
    if "\n" in path or "\0" in path:
        raise InvalidArgument(f"keyring path {path!r} is not valid")
    plan = Plan(f"write keyring of {entity}").add(
        "ceph", *cluster.cli_args(), "auth", "get" if caps else "get-or-create", entity,
        "-o", path)
    plan.note("the file is created with mode 0600; a directory made for it is 0700")
    if dry_run:
        return plan
    directory = os.path.dirname(path)
    ensure_keyring_dir(None if directory == os.fspath(keyring_dir()) else directory)
    found = _auth_get(cluster, entity)
    if found is None:
        raise UserNotFound(f"user {entity} not found")
    lines = [f"[{entity}]", f"\tkey = {found['key']}"]
    if caps:
        lines += [f'\tcaps {k} = "{v}"' for k, v in sorted(found.get("caps", {}).items())]
    text = "\n".join(lines) + "\n"
    try:
        with open(path) as fh:
            if fh.read() == text and (os.stat(path).st_mode & 0o777) == 0o600:
                return Result(f"write keyring of {entity}", False, f"unchanged: {path}", plan,
                              value=path)
    except OSError:
        pass
    # One temporary name per keyring: a write killed half-way leaves nothing a re-run
    # does not overwrite; the key is never in a file others can read, even for a moment.
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return Result(f"write keyring of {entity}", True, f"written to {path} (mode 0600)", plan,
                  value=path)


def list_users(cluster: Cluster):
    """Users and their caps as a DataFrame. Keys are never included."""
    import pandas as pd
    out = cluster.mon_command({"prefix": "auth ls"}, "users")
    rows = [{"entity": e["entity"], **{f"caps {k}": v for k, v in e.get("caps", {}).items()}}
            for e in out.get("auth_dump", [])]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=["entity", "caps mon", "caps osd", "caps mgr", "caps mds"])


def delete_user(cluster: Cluster, client: str, *, confirm: bool = False,
                missing_ok: bool = False, dry_run: bool = False) -> Result | Plan:
    """Remove ``client.NAME``. Refused unless ``confirm=True``."""
    from ..errors import require_confirmation
    entity = f"client.{parse_client(client)}"
    plan = Plan(f"delete user {entity}").add("ceph", *cluster.cli_args(), "auth", "rm", entity)
    if dry_run:
        return plan
    require_confirmation(confirm, f"deleting user {entity} locks out every client "
                                  f"using its key")
    if _auth_get(cluster, entity) is None:
        if missing_ok:
            return Result(f"delete user {entity}", False, "unchanged: no such user", plan)
        raise UserNotFound(f"user {entity} not found")
    cluster.mon_command({"prefix": "auth rm", "entity": entity}, f"user {entity}")
    return Result(f"delete user {entity}", True, "deleted", plan)
