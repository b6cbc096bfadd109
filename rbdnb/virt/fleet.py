"""A fleet of hypervisors on one Ceph cluster: the same ceph secret (one UUID) and the
same rbd storage pool on every libvirt host, applied concurrently.

Every host needs the secret with the *same* UUID: a VM's disk XML names the secret by
UUID, so a VM can only move to a host that has it. :func:`apply_fleet` takes the UUID a
host already has (or the one given, or a new one), then defines and sets the secret and
defines, starts and autostarts the pool on each host at once, each idempotent. A host
that does not answer, or holds the secret under another UUID, is reported in its row
while the others proceed.
"""

from __future__ import annotations

import os
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor

from ..base.plan import Plan, Result
from ..base.specs import check_name, parse_client
from ..ceph.cluster import Cluster
from ..errors import InvalidArgument, RbdnbError
from .connection import CONNECT_TIMEOUT, check_uri, close_quietly, connect_libvirt, default_uri
from .pools import ensure_rbd_pool
from .secrets import define_secret, find_secret
from .xml import check_uuid

COLUMNS = ["host", "uri", "secret", "pool", "changed", "ok", "outcome"]
_HOST_FINDERS: list = []


def add_default_hosts_finder(finder) -> None:
    """Register ``finder() -> list[str] | None``: the libvirt URIs of the hosts to use
    when none are given (the running sandbox registers its hosts)."""
    _HOST_FINDERS.append(finder)


def default_uris() -> list[str]:
    """The fleet when none is named: ``$RBDNB_LIBVIRT_URIS`` (space-separated, what
    ``rbdnb sandbox env`` exports), else the running sandbox's hosts, else the one default
    libvirt URI."""
    if os.environ.get("RBDNB_LIBVIRT_URIS", "").strip():
        return os.environ["RBDNB_LIBVIRT_URIS"].split()
    for finder in _HOST_FINDERS:
        found = finder()
        if found:
            return list(found)
    return [default_uri()]


def fleet_of(uri: str | None, uris=None) -> list[str]:
    """The hosts a notebook on ``uri`` works with: ``uris`` if given (with ``uri`` first),
    else :func:`default_uris` when it names ``uri``, else ``uri`` alone."""
    uri = check_uri(uri or default_uri())
    if uris:
        uris = check_uris(uris)
        return [uri] + [u for u in uris if u != uri] if uri in uris else uris
    found = default_uris()
    return [uri] + [u for u in found if u != uri] if uri in found else [uri]


def other_host(uri: str | None, dest: str | None = None) -> tuple[str, str]:
    """(source, destination) for a migration from ``uri``: ``dest`` if given, else the
    fleet's next host. Raises InvalidArgument when the fleet has no other host."""
    source = check_uri(uri or default_uri())
    if dest is not None:
        return source, check_uri(dest)
    others = [u for u in fleet_of(source) if u != source]
    if not others:
        raise InvalidArgument(f"there is no libvirt host besides {source} to migrate to: "
                              f"start two (rbdnb sandbox up --hosts 2) or name one (dest_uri)")
    return source, others[0]


def check_uris(uris) -> list[str]:
    """A non-empty list of distinct libvirt URIs (a single string is one host)."""
    if isinstance(uris, str):
        uris = [uris]
    if not isinstance(uris, (list, tuple)) or not uris:
        raise InvalidArgument(f"libvirt URIs {uris!r} are not valid: expected a list of one "
                              f"or more, e.g. ['qemu:///system', 'qemu+ssh://host2/system']")
    checked = [check_uri(u) for u in uris]
    if len(set(checked)) != len(checked):
        twice = sorted({u for u in checked if checked.count(u) > 1})
        raise InvalidArgument(f"libvirt URI {twice[0]} is named twice")
    return checked


def _frame(rows):
    import pandas as pd
    return pd.DataFrame(rows, columns=COLUMNS)


def apply_fleet(cluster: Cluster, uris, ceph_pool: str, *, libvirt_pool: str | None = None,
                client: str = "libvirt", uuid: str | None = None,
                timeout: float = CONNECT_TIMEOUT, dry_run: bool = False) -> Result | Plan:
    """Give every libvirt host in ``uris`` the ceph secret of ``client.NAME`` (one UUID for
    the fleet) and the rbd storage pool ``libvirt_pool`` (default: the Ceph pool's name)
    for ``ceph_pool``, concurrently; each host idempotent.

    The fleet's UUID is ``uuid`` if given, else the one the hosts' secret already has, else
    a new one. The result's value is a DataFrame, a row per host (host, uri, secret, pool,
    changed, outcome): a host that does not answer within ``timeout`` s, holds the secret
    under another UUID, or fails, says so in its row and the others proceed. A dry run
    connects and reads only. Raises InvalidArgument for bad input, before any host is
    touched.
    """
    uris = check_uris(uris)
    name = parse_client(client)
    check_name(ceph_pool, "pool")
    libvirt_pool = check_name(libvirt_pool or ceph_pool, "libvirt pool")
    if uuid is not None:
        check_uuid(uuid)
    plan = Plan(f"ceph secret of client.{name} and libvirt rbd pool {libvirt_pool} on "
                f"{len(uris)} host(s)")
    for uri in uris:
        plan.add("virsh", "-c", uri, "secret-define", "secret.xml")
        plan.add("virsh", "-c", uri, "pool-define", "pool.xml")
    plan.note("one secret UUID on every host (a VM's disks name it); its value set through "
              "libvirt's API from Ceph, never typed")

    def open_(uri):
        try:
            return connect_libvirt(uri, timeout=timeout), None
        except RbdnbError as exc:
            return None, str(exc)

    with ThreadPoolExecutor(max_workers=min(16, len(uris))) as pool:
        conns = list(pool.map(open_, uris))
    try:
        have = {}
        for uri, (conn, _) in zip(uris, conns):
            if conn is not None:
                try:
                    have[uri] = find_secret(conn, name)
                except RbdnbError as exc:
                    close_quietly(conn)
                    conns[uris.index(uri)] = (None, str(exc))
        fleet_uuid = uuid or next((u for u in (have.get(x) for x in uris) if u), None)
        fleet_uuid = fleet_uuid or str(uuidlib.uuid4())

        def apply(index: int) -> dict:
            uri = uris[index]
            conn, error = conns[index]
            row = {"host": f"host{index + 1}", "uri": uri, "secret": fleet_uuid,
                   "pool": libvirt_pool, "changed": False, "ok": False}
            if conn is None:
                return {**row, "secret": None, "pool": None,
                        "outcome": f"not reachable: {error}"}
            if have.get(uri) and have[uri] != fleet_uuid:
                return {**row, "secret": have[uri], "pool": None,
                        "outcome": f"refused: holds the secret of client.{name} as "
                                   f"{have[uri]}, not the fleet's {fleet_uuid} (undefine it "
                                   f"there: virsh secret-undefine {have[uri]})"}
            if dry_run:
                return {**row, "ok": True, "outcome": "dry run: " + (
                    "has the secret" if have.get(uri) else "would define the secret") +
                    f" and would ensure pool {libvirt_pool}"}
            try:
                secret = define_secret(conn, cluster, name, fleet_uuid)
                pool_ = ensure_rbd_pool(conn, libvirt_pool, ceph_pool, cluster, name,
                                        fleet_uuid)
            except RbdnbError as exc:
                return {**row, "outcome": f"failed: {exc}"}
            return {**row, "changed": secret.changed or pool_.changed, "ok": True,
                    "outcome": f"secret: {secret.message}; pool: {pool_.message}"}

        with ThreadPoolExecutor(max_workers=min(16, len(uris))) as pool:
            rows = list(pool.map(apply, range(len(uris))))
    finally:
        for conn, _ in conns:
            if conn is not None:
                close_quietly(conn)
    frame = _frame(rows)
    if dry_run:
        plan.note(f"the fleet's secret UUID: {fleet_uuid}")
        plan.notes += [f"{r['host']} ({r['uri']}): {r['outcome']}" for r in rows]
        return plan
    good = [r for r in rows if r["ok"]]
    changed = any(r["changed"] for r in rows)
    if len(good) == len(rows):
        message = (f"{'applied to' if changed else 'unchanged on'} all {len(rows)} host(s); "
                   f"secret {fleet_uuid}")
    else:
        message = (f"applied to {len(good)} of {len(rows)} host(s); see the rows of "
                   + ", ".join(r["host"] for r in rows if r not in good))
    return Result(plan.action, changed, message, plan, value=frame, show_value=True)
