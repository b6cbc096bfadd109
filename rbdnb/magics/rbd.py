"""``%rbd``: images, snapshots, clones, import/export and bench, in rbd's own words."""

from __future__ import annotations

from IPython.core.error import UsageError

from ..base.specs import parse_spec
from ..base.units import parse_size
from ..ceph import clones, images, snapshots, space, tools, transfer
from .table import Table, progress_for, size_in

RBD = Table("rbd")


def _rbd_create(m, a):
    size = a.size_opt or a.size
    if size is None:
        raise UsageError("%rbd create: give a size, e.g. 10G or --size 10G")
    features = ",".join(a.image_feature) if a.image_feature else None
    return images.create_image(m.cluster, a.spec, parse_size(size, what="size", default_unit="M",
                                                              minimum=0),
                               features=features, object_size=a.object_size,
                               exist_ok=a.exist_ok, dry_run=m.dry(a))


p = RBD.add("create", "create an image (rbd create); a bare size is in MiB, as rbd reads it",
            _rbd_create, mutating=True, example="create {pool}/new-image 1G")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("size", nargs="?", metavar="SIZE")
p.add_argument("--size", "-s", dest="size_opt")
p.add_argument("--image-feature", action="append",
               help="comma-separated or repeated, e.g. layering,exclusive-lock")
p.add_argument("--object-size")
p.add_argument("--exist-ok", action="store_true", help="report 'unchanged' if it exists")

LONG_LISTING = 1000  # images from which `ls -l` shows a progress bar


def _rbd_ls(m, a):
    import pandas as pd
    if a.long:
        pool, bar = a.pool or DEFAULT_POOL, []

        def progress(done, total):
            if total >= LONG_LISTING:
                if not bar:
                    bar.append(m.progress(f"listing {pool}", total) or (lambda d, t: None))
                bar[0](done, total)
        df = images.list_images(m.cluster, pool, progress=progress)
        if df.attrs.get("skipped"):
            gone = df.attrs["skipped"]
            print(f"%rbd ls -l: {len(gone)} image(s) removed while the pool was read, not "
                  f"listed: {', '.join(gone[:10])}{' ...' if len(gone) > 10 else ''}")
        return df
    return pd.DataFrame({"name": images.image_names(m.cluster, a.pool or DEFAULT_POOL)})


p = RBD.add("ls", "list images (rbd ls); -l: size, parent, snapshots, features (rbd ls -l)",
            _rbd_ls, example="ls -l {pool}")
p.add_argument("pool", nargs="?")
p.add_argument("-l", "--long", action="store_true", help="the long listing, as rbd ls -l")

p = RBD.add("info", "size, features, parent, snapshots (rbd info)",
            lambda m, a: images.image_info(m.cluster, a.spec), example="info {pool}/{image}")
p.add_argument("spec", metavar="POOL/IMAGE[@SNAP]")

p = RBD.add("resize", "grow (or with --allow-shrink shrink) an image (rbd resize)",
            lambda m, a: images.resize_image(m.cluster, a.spec, size_in("M")(a.size),
                                             allow_shrink=a.allow_shrink, dry_run=m.dry(a)),
            mutating=True, example="resize {pool}/{image} --size 8M --allow-shrink")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("--size", "-s", required=True)
p.add_argument("--allow-shrink", action="store_true")

p = RBD.add("rm", "remove an image (rbd rm); needs --yes",
            lambda m, a: images.remove_image(m.cluster, a.spec, confirm=a.yes,
                                             purge_snapshots=a.purge_snapshots,
                                             missing_ok=a.missing_ok, dry_run=m.dry(a)),
            mutating=True, example="rm {pool}/{image} --yes --purge-snapshots")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("--yes", action="store_true", help="confirm: the image's data is destroyed")
p.add_argument("--purge-snapshots", action="store_true")
p.add_argument("--missing-ok", action="store_true")

p = RBD.add("free-space", "remove images on a full cluster, by Ceph's own means (deletes "
            "through the full pool, the full ratio raised only if needed); needs --yes",
            lambda m, a: space.free_space(m.cluster, a.specs, confirm=a.yes,
                                          dry_run=m.dry(a)),
            mutating=True, example="free-space {pool}/{image} --yes")
p.add_argument("specs", nargs="+", metavar="POOL/IMAGE")
p.add_argument("--yes", action="store_true", help="confirm: the images' data is destroyed")


def _rbd_mv(m, a):
    src = parse_spec(a.src)
    dest = parse_spec(a.dest, default_pool=src.pool)
    if (dest.pool, dest.namespace) != (src.pool, src.namespace):
        raise UsageError(f"%rbd mv: {src} and {dest} are in different pools (or namespaces): "
                         f"rbd renames within a pool only; copy it with %rbd cp {src} {dest}")
    return images.rename_image(m.cluster, src, dest.image, dry_run=m.dry(a))


p = RBD.add("mv", "rename an image within its pool (rbd mv)", _rbd_mv, mutating=True,
            example="mv {pool}/{image} {pool}/renamed")
p.add_argument("src")
p.add_argument("dest")

p = RBD.add("cp", "full copy of an image (rbd cp)",
            lambda m, a: transfer.copy_image(m.cluster, a.src, a.dest, exist_ok=a.exist_ok,
                                           dry_run=m.dry(a)),
            mutating=True, example="cp {pool}/{image} {pool}/copied")
p.add_argument("src")
p.add_argument("dest")
p.add_argument("--exist-ok", action="store_true")

p = RBD.add("du", "provisioned and used bytes (rbd du)",
            lambda m, a: images.disk_usage(m.cluster, a.spec), example="du {pool}/{image}")
p.add_argument("spec", metavar="POOL/IMAGE")

p = RBD.add("snap create", "create a snapshot (rbd snap create)",
            lambda m, a: snapshots.create_snapshot(m.cluster, a.spec, exist_ok=a.exist_ok,
                                                   dry_run=m.dry(a)),
            mutating=True, example="snap create {pool}/{image}@new-snap")
p.add_argument("spec", metavar="POOL/IMAGE@SNAP")
p.add_argument("--exist-ok", action="store_true",
               help="a snapshot of that name already there is left as it is (rbdnb's option)")

for verb, fn, help_ in [
        ("protect", snapshots.protect_snapshot, "protect a snapshot (v1 clones need it)"),
        ("unprotect", snapshots.unprotect_snapshot, "unprotect a snapshot"),
        ("rm", snapshots.remove_snapshot, "remove a snapshot")]:
    example = {"protect": "snap protect {pool}/{image}@{snap}",
               "unprotect": "snap unprotect {pool}/{image}@{protected}",
               "rm": "snap rm {pool}/{image}@{snap}"}[verb]
    p = RBD.add(f"snap {verb}", f"{help_} (rbd snap {verb})",
                lambda m, a, fn=fn: fn(m.cluster, a.spec, dry_run=m.dry(a)), mutating=True,
                example=example)
    p.add_argument("spec", metavar="POOL/IMAGE@SNAP")

p = RBD.add("snap ls", "snapshots of an image (rbd snap ls)",
            lambda m, a: snapshots.list_snapshots(m.cluster, a.spec),
            example="snap ls {pool}/{image}")
p.add_argument("spec", metavar="POOL/IMAGE")

p = RBD.add("snap rollback", "roll an image back to a snapshot; needs --yes",
            lambda m, a: snapshots.rollback_snapshot(m.cluster, a.spec, confirm=a.yes,
                                                     dry_run=m.dry(a)), mutating=True,
            example="snap rollback {pool}/{image}@{snap} --yes")
p.add_argument("spec", metavar="POOL/IMAGE@SNAP")
p.add_argument("--yes", action="store_true")

p = RBD.add("snap purge", "remove every snapshot of an image; needs --yes",
            lambda m, a: snapshots.purge_snapshots(m.cluster, a.spec, confirm=a.yes,
                                                   dry_run=m.dry(a)), mutating=True,
            example="snap purge {pool}/{lone} --yes")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("--yes", action="store_true")


def _rbd_clone(m, a):
    if a.count is None:
        return clones.clone(m.cluster, a.parent, a.child, exist_ok=a.exist_ok, dry_run=m.dry(a))
    return clones.clone_many(m.cluster, a.parent, a.child, count=a.count, start=a.start,
                             concurrency=a.concurrency, exist_ok=a.exist_ok,
                             progress=progress_for(m, a, f"cloning {a.parent}", a.count),
                             dry_run=m.dry(a))


p = RBD.add("clone", "clone a snapshot (rbd clone); with --count, many at once from a pattern "
            "such as vm-{i:02d}", _rbd_clone, mutating=True,
            example="clone {pool}/{image}@{protected} {pool}/vm-{{i:02d}} --count 3")
p.add_argument("parent", metavar="POOL/IMAGE@SNAP")
p.add_argument("child", metavar="POOL/CHILD or PATTERN")
p.add_argument("--count", type=int)
p.add_argument("--start", type=int, default=1)
p.add_argument("--concurrency", type=int, default=16)
p.add_argument("--exist-ok", action="store_true")

p = RBD.add("flatten", "copy the parent's data into a clone (rbd flatten)",
            lambda m, a: clones.flatten(m.cluster, a.spec, dry_run=m.dry(a),
                                        progress=progress_for(m, a, f"flattening {a.spec}",
                                                               100)),
            mutating=True, example="flatten {pool}/{clone}")
p.add_argument("spec", metavar="POOL/IMAGE")

p = RBD.add("children", "clones of a snapshot (rbd children)",
            lambda m, a: clones.children(m.cluster, a.spec),
            example="children {pool}/{image}@{protected}")
p.add_argument("spec", metavar="POOL/IMAGE@SNAP")

p = RBD.add("import", "import a qcow2 or raw file into a new image",
            lambda m, a: transfer.import_image(
                m.cluster, a.source, a.spec, method=a.method, exist_ok=a.exist_ok,
                dry_run=m.dry(a), progress=progress_for(m, a, f"importing {a.source}", 100)),
            mutating=True, example="import {file} {pool}/imported")
p.add_argument("source", metavar="FILE")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("--method", default="auto", choices=transfer.METHODS)
p.add_argument("--exist-ok", action="store_true")

p = RBD.add("export", "export an image to a raw or qcow2 file",
            lambda m, a: transfer.export_image(
                m.cluster, a.spec, a.dest, dest_format=a.format, overwrite=a.overwrite,
                dry_run=m.dry(a), progress=progress_for(m, a, f"exporting {a.spec}", 100)),
            mutating=True, example="export {pool}/{image} {outfile}")
p.add_argument("spec", metavar="POOL/IMAGE[@SNAP]")
p.add_argument("dest", metavar="FILE")
p.add_argument("--format", "-O", default="raw", choices=("raw", "qcow2"))
p.add_argument("--overwrite", action="store_true")

_RBD_IO_TYPES = {("read", False): "read", ("write", False): "write",
                 ("read", True): "randread", ("write", True): "randwrite"}


def _rbd_bench(m, a):
    from .. import bench
    io_type = a.io_type
    if io_type in ("readwrite", "rw"):
        io_type = "mixed"
    elif io_type in ("read", "write"):
        io_type = _RBD_IO_TYPES[(io_type, a.io_pattern == "rand")]
    engines = a.engine or ["native"]
    total = None if a.seconds is not None else \
        parse_size(a.io_total, what="io total", default_unit="B")
    kwargs = dict(total=total, seconds=a.seconds, rw_mix_read=a.rw_mix_read)
    size = parse_size(a.io_size, what="io size", default_unit="B")
    if m.dry(a):
        return bench.matrix(m.cluster, a.spec, engines, [io_type], [size], [a.io_threads],
                            dry_run=True, **kwargs)
    if len(engines) == 1:
        bar = m.progress(f"{engines[0]} {io_type} {a.io_size} QD{a.io_threads}", 100)
        return bench.run(m.cluster, a.spec, engines[0], io_type, size, a.io_threads,
                         progress=bar, **kwargs)
    bar = m.progress(f"{len(engines)} engines, {io_type} {a.io_size}", len(engines))
    df = bench.matrix(m.cluster, a.spec, engines, [io_type], [size], [a.io_threads],
                      progress=bar, **kwargs)
    return df[["engine", "io_type", "io_size", "queue_depth", "iops", "mib_s",
               "lat_mean_us", "lat_p99_us"]]


p = RBD.add("bench", "benchmark an image (rbd bench options); --engine native, rbd or fio "
            "(several: a table, same run); writes to the image", _rbd_bench, mutating=True,
            example="bench {pool}/{image} --io-type write --io-total 4M --engine native rbd")
p.add_argument("spec", metavar="POOL/IMAGE")
p.add_argument("--io-type", required=True,
               help="read, write, readwrite/rw (rbd's), or randread, randwrite, mixed")
p.add_argument("--io-size", default="4K")
p.add_argument("--io-threads", type=int, default=16, help="I/Os in flight (queue depth)")
p.add_argument("--io-total", default="256M")
p.add_argument("--io-pattern", default="seq", choices=("seq", "full-seq", "rand"))
p.add_argument("--rw-mix-read", type=int, default=50)
p.add_argument("--seconds", type=float, help="run for this long instead of --io-total")
p.add_argument("--engine", nargs="+", choices=("native", "rbd", "fio"))


# -- rbd's own option forms ----------------------------------------------------------------------
# `rbd -p POOL info IMAGE`, `rbd info --pool POOL --image IMAGE --snap SNAP`, `--snap=SNAP`,
# `--namespace NS`: rbd reads an image name without a pool as one in --pool, or in pool "rbd".
_SPEC_OPTIONS = {"-p": "pool", "--pool": "pool", "--image": "image", "--snap": "snap",
                 "--namespace": "namespace"}
DEFAULT_POOL = "rbd"


def _extract(argv: list[str]) -> tuple[list[str], dict]:
    rest, given = [], {}
    tokens = iter(argv)
    for token in tokens:
        name, eq, value = token.partition("=")
        if name in _SPEC_OPTIONS and token not in ("--", "-"):
            if not eq:
                value = next(tokens, None)
                if value is None:
                    raise UsageError(f"%rbd: {name} needs a value")
            given[_SPEC_OPTIONS[name]] = value
        else:
            rest.append(token)
    return rest, given


def _is_spec(action) -> bool:
    if action.metavar:
        return "POOL/" in action.metavar
    return action.dest in ("src", "dest")  # mv, cp


def _normalise(words, parser, rest: list[str], given: dict) -> list[str]:
    """Fold -p/--pool, --image, --snap and --namespace into the command's image spec(s), and
    give a bare image name rbd's default pool, as rbd does."""
    positionals = [a for a in parser._actions if not a.option_strings]
    takes_value = {opt for a in parser._actions if a.option_strings and a.nargs != 0
                   for opt in a.option_strings}
    pool, ns = given.get("pool"), given.get("namespace")
    if positionals and positionals[0].dest == "pool":  # `rbd ls -p POOL`
        if pool and not [t for t in rest if not t.startswith("-")]:
            rest = [pool, *rest]
        return rest

    def spec(text: str) -> str:
        if "/" in text or text.startswith(("rbd:", "/")):
            return text
        return f"{pool or DEFAULT_POOL}/{ns + '/' if ns else ''}{text}"

    out, index, skip, seen_spec = [], 0, False, False
    for token in rest:
        if skip:
            out.append(token)
            skip = False
            continue
        if token.startswith("-") and token != "-":
            out.append(token)
            skip = token in takes_value and "=" not in token
            continue
        action = positionals[index] if index < len(positionals) else None
        index += 1
        if action is not None and _is_spec(action):
            # rbd mv keeps a bare new name in the image's pool (rbd cp puts it in pool rbd)
            if not (words == ("mv",) and action.dest == "dest" and "/" not in token):
                token = spec(token)
            if given.get("snap") and not seen_spec and "@" not in token:
                token = f"{token}@{given['snap']}"
            seen_spec = True
        out.append(token)
    if not seen_spec and given.get("image") and positionals and _is_spec(positionals[0]):
        image = spec(given["image"]) + (f"@{given['snap']}" if given.get("snap") else "")
        out = [image, *out]
    return out


RBD.extract = _extract
RBD.normalise = _normalise
# rbd's other names for the same commands.
RBD.aliases.update({("list",): ("ls",), ("remove",): ("rm",), ("rename",): ("mv",),
                    ("copy",): ("cp",), ("snap", "list"): ("snap", "ls"),
                    ("disk-usage",): ("du",)})


def _bootstrap(m, a):
    from ..ceph import mirror
    from ..ceph.cluster import Cluster
    dry = m.dry(a)
    peer = Cluster(a.peer_conf, client=a.peer_id, keyring=a.peer_keyring).connect()
    try:
        steps = []
        if a.site_name:
            steps.append(mirror.enable_pool(m.cluster, a.pool, a.site_name, dry_run=dry))
        steps.append(mirror.bootstrap_peers(m.cluster, peer, a.pool, dry_run=dry))
        from ..base.plan import merged
        return merged(f"peer the sites of pool {a.pool}", *steps)
    finally:
        peer.close()


p = RBD.add("mirror pool peer bootstrap", "peer this site with another for pool mirroring "
            "(rbd mirror pool peer bootstrap create, then import at the peer): the token, which "
            "holds a key, goes from one cluster to the other in memory, never shown",
            _bootstrap, mutating=True,
            example="mirror pool peer bootstrap create {pool} --peer-conf {peer_conf}")
p.add_argument("action", choices=["create"], help="create here, import at --peer-conf")
p.add_argument("pool")
p.add_argument("--peer-conf", required=True, metavar="CONF",
               help="the other site's ceph.conf (its admin keyring as the conf names it)")
p.add_argument("--peer-id", default="admin", help="the cephx client at the other site")
p.add_argument("--peer-keyring", help="its keyring (default: the one its conf names)")
p.add_argument("--site-name", help="this site's name (rbd mirror pool enable --site-name), "
                                   "set first if given")
p.add_argument("--direction", choices=["rx-tx"], default="rx-tx",
               help="both ways (what rbdnb's drills need)")


# -- the rest of rbd: the real program, on this notebook's connection ---------------------------
def _run_rbd(m, argv, *, confirm, dry_run, redirect=None):
    found = tools.RBD_TOOL.find(argv)
    bar = None
    if found is not None and found[1].progress and not dry_run:
        bar = m.progress(f"rbd {' '.join(found[0])}", 100)
    return tools.run_rbd(m.cluster, argv, confirm=confirm, dry_run=dry_run, progress=bar,
                         redirect=redirect)


def _defer(words, argv) -> bool:
    """A native listing asked for rbd's own output format (--format json) is rbd's."""
    return words not in RBD.mutating and any(
        t.partition("=")[0] in ("--format", "--pretty-format") for t in argv)


RBD.real = tools.RBD_TOOL
RBD.run_tool = _run_rbd
RBD.defer = _defer
RBD.differences = [
    "rm, snap rollback, snap purge, trash rm, trash purge, lock rm, namespace rm, group rm "
    "and the other destructive commands need --yes",
    "clone from an unprotected snapshot protects it first where the cluster makes v1 clones",
    "create/import/cp/clone take --exist-ok (report 'unchanged'); import and cp appear "
    "under their name only once complete",
    "a listing without --format is a DataFrame; with --format json, rbd's JSON",
    "bench takes --engine native|rbd|fio (several: one table) and --seconds",
    "mirror pool peer bootstrap create POOL --peer-conf CONF peers the two sites in memory "
    "(the token holds a key: without --peer-conf the line is refused)",
]
