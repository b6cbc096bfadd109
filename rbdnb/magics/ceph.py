"""``%ceph``: pools, health and cephx users, in ceph's own words."""

from __future__ import annotations

from IPython.core.error import UsageError

from ..base.passthrough import take_option
from ..base.plan import merged
from ..errors import InvalidArgument
from ..ceph import pools, tools, users
from ..ceph.cluster import preflight
from .table import Table

CEPH = Table("ceph")


def _pool_create(m, a):
    """As ceph does, a pool that exists already is left as it is (ceph says so and exits 0),
    whatever pg_num the line asks for."""
    from ..base.plan import Result
    from ..errors import Conflict
    try:
        return pools.create_pool(m.cluster, a.pool, a.pg_num, a.pgp_num, exist_ok=True,
                                 dry_run=m.dry(a))
    except Conflict as exc:
        plan = pools.create_pool(m.cluster, a.pool, a.pg_num, a.pgp_num, dry_run=True)
        return Result(plan.action, False, f"unchanged: {exc} (ceph leaves an existing pool "
                      f"as it is)", plan)


p = CEPH.add("osd pool create", "create a pool and initialise it for RBD; a pool that exists "
             "is left as it is, as ceph does", _pool_create, mutating=True,
             example="osd pool create new-pool 8")
p.add_argument("pool")
p.add_argument("pg_num", nargs="?", type=int)
p.add_argument("pgp_num", nargs="?", type=int)
p.add_argument("--exist-ok", action="store_true", help="accepted; an existing pool is kept")

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
    # get-or-create: an existing user with these caps is what was asked for ("unchanged").
    made = users.create_user(m.cluster, a.entity, a.pool or [], caps=caps, exist_ok=True,
                             dry_run=m.dry(a))
    if a.out_file is None:
        return made
    # -o FILE: its keyring as ceph writes it (the key alone), but mode 0600 (ceph's own -o
    # writes it with the umask's mode).
    written = users.write_keyring(m.cluster, a.entity, a.out_file, caps=False,
                                  dry_run=m.dry(a))
    return merged(made.action, made, written)


p = CEPH.add("auth get-or-create", "a cephx user; least privilege (profile rbd) on --pool P",
             _auth_create, mutating=True, example="auth get-or-create client.new-user --pool {pool}")
p.add_argument("entity", metavar="client.NAME")
p.add_argument("caps", nargs="*", metavar="SERVICE CAPS")
p.add_argument("--pool", action="append", help="a pool the user may use (repeat)")
p.add_argument("--exist-ok", action="store_true")
p.add_argument("-o", "--out-file", metavar="FILE", help="write its keyring there (mode 0600)")


# -- the rest of ceph: the real program, on this notebook's connection --------------------------
def _defer(words, argv) -> bool:
    """A native listing asked for ceph's own output format (-f json) is ceph's; so is
    ``auth get-or-create client.NAME`` with no caps (it gets the user as it is)."""
    if words == ("auth", "get-or-create"):
        try:
            rest, _ = take_option(argv[argv.index("get-or-create") + 1:], "-o", "--out-file")
        except InvalidArgument:
            return False  # `-o` with no file: the magic's own parser says so
        return "--pool" not in rest and len([t for t in rest if not t.startswith("-")]) == 1
    return words not in CEPH.mutating and any(
        t.partition("=")[0] in ("--format", "-f") for t in argv)


CEPH.real = tools.CEPH_TOOL
CEPH.run_tool = lambda m, argv, *, confirm, dry_run, redirect=None: tools.run_ceph(
    m.cluster, argv, confirm=confirm, dry_run=dry_run, redirect=redirect)
CEPH.defer = _defer
CEPH.aliases.update({("auth", "list"): ("auth", "ls")})
CEPH.differences = [
    "osd pool create also runs rbd pool init (the pool is for RBD)",
    "auth get-or-create shows the user and its caps, never the key; -o FILE writes the "
    "keyring with mode 0600",
    "every key in what ceph prints is redacted (auth get, get-key, print-key, export)",
    "osd pool delete takes --yes (or ceph's own POOL POOL --yes-i-really-really-mean-it); "
    "auth del and the other destructive commands need --yes",
]
