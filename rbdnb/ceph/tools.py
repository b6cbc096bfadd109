"""The real ``rbd`` and ``ceph`` programs on a cluster's connection: the long tail.

What rbdnb does not model itself -- the trash, locks, features, image metadata, diffs,
namespaces, groups, migration, pool settings and quotas, caps -- runs as the real program
(:mod:`rbdnb.base.passthrough`): the cluster's conf path, client id and keyring path are
added unless the line names its own (never a key), and its client timeouts, so a stalled
cluster gives an error instead of a hang. A command that has ``--format json`` is asked for
it unless the line chose a format, and its value comes back parsed.

    run_rbd(cluster, ["trash", "mv", "pool/img"])            # a Result
    run_rbd(cluster, ["lock", "ls", "pool/img"]).value       # rbd's JSON, parsed
    run_ceph(cluster, ["osd", "pool", "set", "p", "size", "2"], dry_run=True)   # a Plan
"""

from __future__ import annotations

import json
import os
from typing import Callable

from ..base import passthrough
from ..base.passthrough import READ, REFUSED, Output, Redirect, Sub, Tool, has_option
from ..base.plan import Plan, Result
from .cluster import Cluster

__all__ = ["CEPH_TOOL", "RBD_TOOL", "connection_args", "run_ceph", "run_rbd", "tool_help"]

_MAP = ("maps an image on this host's kernel, which rbdnb does not do: give the image to a VM "
        "with %virsh attach-rbd VM POOL/IMAGE, or run rbd device map in a terminal")


def _subs(spec: str) -> dict[tuple[str, ...], Sub]:
    """``"words: kind [json] [progress] [long]"`` lines -> {words: Sub}."""
    out = {}
    for line in spec.strip().splitlines():
        words, _, flags = line.partition(":")
        flags = flags.split()
        out[tuple(words.split())] = Sub(flags[0], json="json" in flags,
                                        progress="progress" in flags, long="long" in flags)
    return out


# From `rbd help` of rbd 16.2: each sub-command, what it does to the cluster (read, change,
# destroy: data or a definition is lost, or something that cannot be undone), whether it has
# --format / --no-progress, and whether it runs as long as the data. (object-map check may
# mark the map invalid: a change; import-diff overwrites the image's data; a pool snapshot,
# ceph osd pool mksnap, ends RBD snapshots in that pool for good.)
_RBD = _subs("""
bench: change long
children: read json
clone: change
config global get: read
config global list: read json
config global remove: change
config global set: change
config image get: read
config image list: read json
config image remove: change
config image set: change
config pool get: read
config pool list: read json
config pool remove: change
config pool set: change
copy: change progress long
create: change progress
deep copy: change progress long
device list: read json
diff: read json long
disk-usage: read json long
encryption format: destroy
export: change progress long
export-diff: change progress long
feature disable: change
feature enable: change
flatten: change progress long
group create: change
group image add: change
group image list: read json
group image remove: change
group list: read json
group remove: destroy
group rename: change
group snap create: change
group snap list: read json
group snap remove: change
group snap rename: change
group snap rollback: destroy progress long
image-meta get: read
image-meta list: read json
image-meta remove: change
image-meta set: change
import: change progress long
import-diff: destroy progress long
info: read json
journal client disconnect: change
journal export: change long
journal import: change long
journal info: read json
journal inspect: read long
journal reset: destroy
journal status: read json
list: read json
lock add: change
lock list: read json
lock remove: destroy
merge-diff: change progress long
migration abort: change progress long
migration commit: destroy progress long
migration execute: change progress long
migration prepare: change
mirror image demote: change
mirror image disable: destroy
mirror image enable: change
mirror image promote: change
mirror image resync: destroy
mirror image snapshot: change
mirror image status: read json
mirror pool demote: change
mirror pool disable: destroy
mirror pool enable: change
mirror pool info: read json
mirror pool peer add: change
mirror pool peer bootstrap import: change
mirror pool peer remove: destroy
mirror pool peer set: change
mirror pool promote: change
mirror pool status: read json
mirror snapshot schedule add: change
mirror snapshot schedule list: read json
mirror snapshot schedule remove: change
mirror snapshot schedule status: read json
namespace create: change
namespace list: read json
namespace remove: destroy
object-map check: change progress long
object-map rebuild: change progress long
perf image iostat: read json
persistent-cache flush: change
persistent-cache invalidate: destroy
pool init: change
pool stats: read json
remove: destroy progress long
rename: change
resize: change progress
snap create: change progress
snap limit clear: change
snap limit set: change
snap list: read json
snap protect: change
snap purge: destroy progress
snap remove: change progress
snap rename: change
snap rollback: destroy progress long
snap unprotect: change
sparsify: change long
status: read json
trash list: read json
trash move: change
trash purge: destroy progress long
trash purge schedule add: change
trash purge schedule list: read json
trash purge schedule remove: change
trash purge schedule status: read json
trash remove: destroy progress
trash restore: change
""")
_RBD.update({
    ("device", "map"): Sub(REFUSED, why=_MAP), ("device", "unmap"): Sub(REFUSED, why=_MAP),
    ("device", "attach"): Sub(REFUSED, why=_MAP), ("device", "detach"): Sub(REFUSED, why=_MAP),
    ("watch",): Sub(REFUSED, why="runs until interrupted, which a notebook cell cannot do: "
                    "%rbd status POOL/IMAGE shows who watches it"),
    ("perf", "image", "iotop"): Sub(REFUSED, why="is an interactive screen: use %rbd perf image "
                                    "iostat POOL --iterations 1"),
    ("mirror", "pool", "peer", "bootstrap", "create"): Sub(
        REFUSED, why="prints a token that holds a cephx key, which would show in the "
                     "notebook: rbdnb.ceph.mirror.bootstrap_peers(site_a, site_b, POOL) peers "
                     "the sites without showing it (runbook 06), or run it in a terminal "
                     "with its output to a file (> FILE)"),
})

_RBD_ALIASES = {
    ("cp",): ("copy",), ("deep", "cp"): ("deep", "copy"), ("showmapped",): ("device", "list"),
    ("map",): ("device", "map"), ("unmap",): ("device", "unmap"), ("du",): ("disk-usage",),
    ("group", "image", "ls"): ("group", "image", "list"),
    ("group", "image", "rm"): ("group", "image", "remove"), ("group", "ls"): ("group", "list"),
    ("group", "rm"): ("group", "remove"), ("group", "snap", "ls"): ("group", "snap", "list"),
    ("group", "snap", "rm"): ("group", "snap", "remove"),
    ("image-meta", "ls"): ("image-meta", "list"), ("image-meta", "rm"): ("image-meta", "remove"),
    ("ls",): ("list",), ("lock", "ls"): ("lock", "list"), ("lock", "rm"): ("lock", "remove"),
    ("namespace", "ls"): ("namespace", "list"), ("namespace", "rm"): ("namespace", "remove"),
    ("rm",): ("remove",), ("mv",): ("rename",), ("snap", "add"): ("snap", "create"),
    ("snap", "ls"): ("snap", "list"), ("snap", "rm"): ("snap", "remove"),
    ("snap", "revert"): ("snap", "rollback"), ("trash", "ls"): ("trash", "list"),
    ("trash", "mv"): ("trash", "move"), ("trash", "rm"): ("trash", "remove"),
    ("mirror", "snapshot", "schedule", "ls"): ("mirror", "snapshot", "schedule", "list"),
    ("mirror", "snapshot", "schedule", "rm"): ("mirror", "snapshot", "schedule", "remove"),
    ("trash", "purge", "schedule", "ls"): ("trash", "purge", "schedule", "list"),
    ("trash", "purge", "schedule", "rm"): ("trash", "purge", "schedule", "remove"),
    **{(("config", level, short)): ("config", level, full) for level in ("global", "image", "pool")
       for short, full in (("ls", "list"), ("rm", "remove"))},
}

# Options of rbd that take a value (from its help), so that the words of a sub-command are
# found after options placed before it (`rbd -p POOL --image IMG import FILE`).
_RBD_VALUED = frozenset("""
-p --pool --image --snap --dest --dest-pool --dest-namespace --dest-snap --namespace --format
-s --size --image-feature --image-format --image-id --object-size --order --stripe-unit
--stripe-count --data-pool --from-snap --export-format --io-type --io-size --io-threads
--io-total --io-pattern --rw-mix-read --expires-at --expired-before --group --group-pool
--group-namespace --image-pool --image-namespace --journal-pool --journal-object-size
--journal-splay-width --mirror-image-mode --snap-id --source-spec --source-spec-path
--sparse-size --shared --limit --threshold --site-name --direction --remote-client-name
--remote-cluster --remote-mon-host --remote-key-file --token-path --iterations --sort-by
--cipher-alg --path --options --device-type --client-id --cookie --quiesce-hook
-c --conf --cluster --id -n --name --user -m --mon_host --mon-host -k --keyring -K --keyfile
""".split())

_RBD_FLAGS = frozenset("""
--all --allow-shrink --descendants --exact --exclusive --flatten --force --ignore-quiesce-error
--image-shared --import-only --long -l --merge-snapshots --new-format --no-error --no-progress
--pretty-format --quiesce --read-only --recursive --show-cookie --skip-quiesce --thick-provision
--verbose --whole-object
""".split())

RBD_TOOL = Tool("rbd", _RBD, _RBD_ALIASES, _RBD_VALUED, _RBD_FLAGS)


# `ceph`: the families an RBD operator uses. Monitor commands take the words of their prefix
# then their arguments; anything else is refused with the families listed.
_CEPH = _subs("""
status: read json
health: read json
health detail: read json
df: read json
df detail: read json
fsid: read json
version: read json
versions: read json
features: read json
quorum_status: read json
time-sync-status: read json
mon stat: read json
mon dump: read json
mgr stat: read json
mgr services: read json
mgr module ls: read json
mgr module enable: change
mgr module disable: change
pg stat: read json
pg dump: read json
osd tree: read json
osd df: read json
osd stat: read json
osd dump: read json
osd ls: read json
osd lspools: read json
osd find: read json
osd metadata: read json
osd versions: read json
osd utilization: read json
osd crush tree: read json
osd crush rule ls: read json
osd crush rule dump: read json
osd crush rule create-replicated: change
osd crush rule rm: destroy
osd erasure-code-profile ls: read json
osd erasure-code-profile get: read json
osd erasure-code-profile set: change
osd erasure-code-profile rm: destroy
osd blocklist ls: read json
osd blocklist add: change
osd blocklist rm: change
osd blacklist ls: read json
osd set: change
osd unset: change
osd set-full-ratio: change
osd set-nearfull-ratio: change
osd set-backfillfull-ratio: change
osd pool ls: read json
osd pool ls detail: read json
osd pool get: read json
osd pool get-quota: read json
osd pool stats: read json
osd pool autoscale-status: read json
osd pool application get: read json
osd pool create: change
osd pool set: change
osd pool set-quota: change
osd pool rename: change
osd pool mksnap: destroy
osd pool rmsnap: destroy
osd pool application enable: change
osd pool application set: change
osd pool application disable: change
osd pool application rm: change
osd pool delete: destroy
osd pool rm: destroy
osd pool stretch show: read json
osd pool stretch set: change
osd pool stretch unset: change
config get: read json
config dump: read json
config show: read json
config ls: read json
config help: read json
config set: change
config rm: change
config-key ls: read json
config-key exists: read
config-key get: read
config-key set: change
config-key rm: destroy
auth ls: read json
auth list: read json
auth get: read
auth export: read
auth get-key: read
auth print-key: read
auth print_key: read
auth get-or-create: change
auth get-or-create-key: change
auth add: change
auth caps: change
auth import: change
auth del: destroy
auth rm: destroy
""")
_CEPH.update({
    ("tell",): Sub(REFUSED, why="sends commands into daemons; rbdnb runs the cluster-wide ones "
                   "(ceph config set, ceph osd ...): use those, or a terminal"),
    ("daemon",): Sub(REFUSED, why="talks to a daemon's admin socket on its own host: run it in "
                     "a terminal there"),
})
_CEPH_VALUED = frozenset("-c --conf --cluster --id -n --name --user -m --mon_host --mon-host "
                         "-k --keyring -K --keyfile -f --format -o --out-file -i --in-file "
                         "--connect-timeout".split())
CEPH_TOOL = Tool("ceph", _CEPH, {}, _CEPH_VALUED,
                 frozenset("-s --status --yes-i-really-really-mean-it --yes-i-really-mean-it "
                           "--force --bulk -h --help".split()),
                 {"-s": ("status",), "--status": ("status",)})

_CONNECTION = {"conf": ("-c", "--conf"), "id": ("--id", "-n", "--name", "--user"),
               "keyring": ("-k", "--keyring", "-K", "--keyfile"),
               "mon": ("-m", "--mon_host", "--mon-host", "--cluster")}


def connection_args(cluster: Cluster, argv: list[str]) -> list[str]:
    """The cluster's connection for a ``rbd``/``ceph`` line, leaving out what the line names
    itself: conf path, client id, keyring path -- never a key -- and the client timeouts."""
    out = []
    given = {what for what, names in _CONNECTION.items() if has_option(argv, *names)}
    if "conf" not in given and "mon" not in given:
        out += ["--conf", cluster.conffile]
    if "id" not in given:
        out += ["--id", cluster.client]
        if "keyring" not in given and cluster.keyring:
            out += ["--keyring", cluster.keyring]
    t = str(int(max(1, cluster.timeout)))
    out += ["--client-mount-timeout", t, "--rados-osd-op-timeout", t,
            "--rados-mon-op-timeout", t]
    return out


def _shown(program: list[str]) -> list[str]:
    """The command line as a plan shows it: without the timeouts rbdnb adds."""
    out, skip = [], False
    for token in program:
        if skip:
            skip = False
        elif token in ("--client-mount-timeout", "--rados-osd-op-timeout",
                       "--rados-mon-op-timeout", "--connect-timeout"):
            skip = True
        else:
            out.append(token)
    return out


def _run(tool: Tool, cluster: Cluster, argv: list[str], *, confirm: bool, dry_run: bool,
         progress, extra: list[str] | None = None, redirect: Redirect | None = None,
         program_argv: list[str] | None = None,
         writes: tuple[str, str] | None = None) -> Result | Plan | Output:
    found = tool.find(argv)
    sub = found[1] if found else None
    head = [tool.name, *connection_args(cluster, argv), *(extra or [])]
    tail = []
    wants_json = bool(sub and sub.json and sub.kind_for(argv) == READ and
                      not has_option(argv, "--format", "-f", "--pretty-format"))
    if wants_json:
        tail += ["--format", "json"]
    if sub and sub.progress and progress is None and not has_option(argv, "--no-progress"):
        tail.append("--no-progress")
    program = [*head, *(program_argv or argv), *tail]
    shown = _shown([*head, *argv, *tail])  # the line's own -o FILE, not the temporary one
    result = passthrough.run(tool, argv, program, shown=shown, confirm=confirm,
                             dry_run=dry_run, timeout=3 * cluster.timeout + 10,
                             progress=progress, redirect=redirect, writes=writes)
    out = result if isinstance(result, Output) else getattr(result, "value", None)
    if isinstance(out, Output) and (wants_json or has_option(argv, "--format", "-f")):
        try:
            out.value = json.loads(out.text) if out.text.strip() else None
        except ValueError:
            pass  # --format plain / xml: the text is the answer
    return result


def run_rbd(cluster: Cluster, argv: list[str], *, confirm: bool = False, dry_run: bool = False,
            progress: Callable[[int, int], None] | None = None,
            redirect: Redirect | None = None) -> Result | Plan | Output:
    """Run ``rbd ARGV`` on the cluster's connection (see :mod:`rbdnb.ceph.tools`).

    Mirrors the rbd sub-commands rbdnb has no function for. ``argv`` is an argument list (no
    shell); ``redirect`` sends the output to a file or takes the input from one (what a
    line's ``> FILE`` and ``< FILE`` say). A READ gives an Output (with ``.value``, rbd's
    parsed JSON); a CHANGE a Result, or a Plan on a dry run; a DESTROY needs
    ``confirm=True``. Refuses, in one line: a key on the line, exporting to stdout or
    importing from stdin without a file, and the sub-commands listed as refused.
    Raises InvalidArgument, ConfirmationRequired, Timeout, CommandFailed.
    """
    from ..errors import InvalidArgument
    redirect = redirect or Redirect()
    found = RBD_TOOL.find(argv)
    if found is not None:
        words, _, start, end = found
        rest = [t for t in argv[end:] if not t.startswith("-")]
        if words in {("export",), ("export-diff",), ("merge-diff",), ("journal", "export")} \
                and "-" in rest and not redirect.output:
            raise InvalidArgument(f"rbd {' '.join(words)}: writing to stdout (-) would put the "
                                  f"image's bytes into the notebook: give a file name "
                                  f"(or > FILE)")
        if words in {("import",), ("import-diff",), ("journal", "import")} and "-" in rest \
                and not redirect.input:
            raise InvalidArgument(f"rbd {' '.join(words)}: a notebook has no stdin to read "
                                  f"from (-): give a file name (or < FILE)")
        if words == ("perf", "image", "iostat") and not has_option(argv, "--iterations"):
            raise InvalidArgument("rbd perf image iostat: runs until interrupted without "
                                  "--iterations N: add --iterations 1")
    return _run(RBD_TOOL, cluster, argv, confirm=confirm, dry_run=dry_run, progress=progress,
                redirect=redirect)


def run_ceph(cluster: Cluster, argv: list[str], *, confirm: bool = False,
             dry_run: bool = False, redirect: Redirect | None = None) -> Result | Plan | Output:
    """Run ``ceph ARGV`` on the cluster's connection (see :mod:`rbdnb.ceph.tools`).

    ``-o FILE`` and a redirected output (a keyring, a key) are written with mode 0600, only
    once ceph succeeded, and not shown; keys in what is shown are redacted.
    ``osd pool delete|rm P P --yes-i-really-really-mean-it`` is ceph's own confirmation of a
    pool's deletion and counts as ``confirm`` there. Raises as :func:`run_rbd`.
    """
    found = CEPH_TOOL.find(argv)
    if found is not None and argv[found[2]] in CEPH_TOOL.option_commands:  # `ceph -s`
        argv = argv[:found[2]] + list(found[0]) + argv[found[3]:]
        found = CEPH_TOOL.find(argv)
    if found is not None and found[0] in (("osd", "pool", "delete"), ("osd", "pool", "rm")) \
            and "--yes-i-really-really-mean-it" in argv:
        confirm = True
    # ceph writes -o FILE itself: into a 0600 file beside it, renamed once ceph succeeded.
    writes, program_argv = None, None
    rest, written = passthrough.take_option(argv, "-o", "--out-file")
    if written:
        tmp = passthrough.temporary(written)
        writes, program_argv = (tmp, written), [*rest, "-o", tmp]
    return _run(CEPH_TOOL, cluster, argv, confirm=confirm, dry_run=dry_run, progress=None,
                extra=["--connect-timeout", str(int(max(1, cluster.timeout)))],
                redirect=redirect, program_argv=program_argv, writes=writes)


def tool_help(tool: str, words: list[str], cluster: Cluster | None = None,
              timeout: float = 30) -> str:
    """The tool's own usage of a sub-command (``rbd help trash mv``, ``virsh help
    pool-start``); ceph asks its monitors, so it needs ``cluster``."""
    from ..base import proc
    argv = {"rbd": ["rbd", "help", *words], "virsh": ["virsh", "help", *words[:1]],
            "qemu-img": ["qemu-img", "--help"]}.get(tool)
    if argv is None:  # ceph
        conn = connection_args(cluster, []) if cluster is not None else []
        argv = ["ceph", *conn, *words, "--help"]
    done = proc.run(argv, timeout=timeout, check=False,
                    env={**os.environ, "CEPH_CONF": os.environ.get("CEPH_CONF", "/dev/null")})
    text = done.stdout.decode(errors="replace")
    return text.strip() or done.stderr.decode(errors="replace").strip()
