"""``%ceph``: pools, health and cephx users, in ceph's own words."""

from __future__ import annotations

from IPython.core.error import UsageError

from ..ceph import pools, users
from ..ceph.cluster import preflight
from .table import Table

CEPH = Table("ceph")


p = CEPH.add("osd pool create", "create a pool and initialise it for RBD",
             lambda m, a: pools.create_pool(m.cluster, a.pool, a.pg_num, a.pgp_num,
                                            exist_ok=a.exist_ok, dry_run=m.dry(a)),
             mutating=True, example="osd pool create new-pool 8")
p.add_argument("pool")
p.add_argument("pg_num", nargs="?", type=int)
p.add_argument("pgp_num", nargs="?", type=int)
p.add_argument("--exist-ok", action="store_true")

p = CEPH.add("osd pool delete", "delete a pool and all its data; needs --yes",
             lambda m, a: pools.delete_pool(m.cluster, a.pool, confirm=a.yes,
                                            missing_ok=a.missing_ok, dry_run=m.dry(a)),
             mutating=True, example="osd pool delete {pool} --yes")
p.add_argument("pool")
p.add_argument("--yes", action="store_true")
p.add_argument("--missing-ok", action="store_true")

CEPH.add("osd pool ls", "pools with usage (ceph df)", lambda m, a: pools.list_pools(m.cluster),
         example="osd pool ls")
CEPH.add("df", "pools with usage (ceph df)", lambda m, a: pools.list_pools(m.cluster),
         example="df")
CEPH.add("health", "health, fullness, versions, clone format",
         lambda m, a: preflight(m.cluster), example="health")
CEPH.add("auth ls", "users and caps (never keys)", lambda m, a: users.list_users(m.cluster),
         example="auth ls")


def _auth_create(m, a):
    caps = None
    if a.caps:
        if len(a.caps) % 2:
            raise UsageError("%ceph auth get-or-create: caps come in pairs, e.g. mon 'profile rbd'")
        caps = dict(zip(a.caps[::2], a.caps[1::2]))
    elif not a.pool:
        raise UsageError("%ceph auth get-or-create: name the pools with --pool P "
                         "(least privilege), or give caps")
    return users.create_user(m.cluster, a.entity, a.pool or [], caps=caps, exist_ok=a.exist_ok,
                             dry_run=m.dry(a))


p = CEPH.add("auth get-or-create", "a cephx user; least privilege (profile rbd) on --pool P",
             _auth_create, mutating=True, example="auth get-or-create client.new-user --pool {pool}")
p.add_argument("entity", metavar="client.NAME")
p.add_argument("caps", nargs="*", metavar="SERVICE CAPS")
p.add_argument("--pool", action="append", help="a pool the user may use (repeat)")
p.add_argument("--exist-ok", action="store_true")
