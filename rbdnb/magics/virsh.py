"""``%virsh``: the ceph secret, rbd pools, VMs and their RBD disks, in virsh's words."""

from __future__ import annotations

from IPython.core.error import UsageError

from .. import virt
from ..virt import tools
from .table import XML, Table, frame

VIRSH = Table("virsh")


p = VIRSH.add("secret-define", "the ceph secret of client.NAME, its value set through the API",
              lambda m, a: virt.define_secret(m.libvirt, m.cluster, a.client, a.uuid,
                                              dry_run=m.dry(a)), mutating=True,
              example="secret-define --client {user}")
p.add_argument("--client", default="libvirt")
p.add_argument("--uuid")


def _pool_define(m, a):
    dry = m.dry(a)
    if a.host or a.fleet:
        # A fleet: the same secret (one UUID) and pool on every host named, at once.
        uris = m.fleet() if a.fleet else list(a.host)
        return virt.apply_fleet(m.cluster, uris, a.ceph_pool, libvirt_pool=a.name,
                                client=a.client, uuid=a.secret, dry_run=dry)
    uuid = a.secret
    if uuid is None:
        if dry:
            # A dry run defines nothing: the plan names the secret it would use.
            found = virt.find_secret(m.libvirt, a.client)
            uuid = found or virt.PLACEHOLDER_UUID
        else:
            uuid = virt.ensure_secret(m.libvirt, m.cluster, a.client)
    return virt.ensure_rbd_pool(m.libvirt, a.name, a.ceph_pool, m.cluster, a.client, uuid,
                                dry_run=dry)


p = VIRSH.add("pool-define-rbd", "define, start and autostart a libvirt rbd pool",
              _pool_define, mutating=True, example="pool-define-rbd new-lvpool {pool} "
                                                   "--client {user}")
p.add_argument("name")
p.add_argument("ceph_pool", metavar="CEPH_POOL")
p.add_argument("--client", default="libvirt")
p.add_argument("--secret", help="secret UUID (default: the client's ceph secret)")
p.add_argument("--host", action="append", metavar="URI",
               help="a libvirt host of the fleet (repeat for each); the secret gets one UUID "
                    "on all of them; a host that does not answer is reported in its row")
p.add_argument("--fleet", action="store_true",
               help="every host of the fleet: $RBDNB_LIBVIRT_URIS, or the sandbox's hosts")

def _shown(active: bool, a) -> bool:
    """Which objects a listing shows, as virsh does: the active ones; --all every one;
    --inactive the others."""
    if a.all:
        return True
    return not active if a.inactive else active


def _pool_list(m, a):
    with virt.translated("storage pools"):
        rows = [{"name": p.name(), "active": bool(p.isActive()),
                 "autostart": bool(p.autostart())} for p in m.libvirt.listAllStoragePools(0)]
    return frame([r for r in rows if _shown(r["active"], a)], ["name", "active", "autostart"])


# virDomainState, named as virsh list names them.
_STATES = {0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "in shutdown",
           5: "shut off", 6: "crashed", 7: "pmsuspended"}


def _domain_list(m, a):
    with virt.translated("domains"):
        rows = []
        for d in m.libvirt.listAllDomains():
            active = bool(d.isActive())
            rows.append({"id": d.ID() if active else "-", "name": d.name(),
                         "state": _STATES.get(d.state()[0], "unknown"), "running": active})
    return frame([r for r in rows if _shown(r["running"], a)],
                 ["id", "name", "state", "running"])


p = VIRSH.add("pool-list", "libvirt storage pools (--all: also the inactive ones)", _pool_list,
              example="pool-list --all")
p.add_argument("--all", action="store_true")
p.add_argument("--inactive", action="store_true")
p = VIRSH.add("vol-list", "volumes of a libvirt pool",
              lambda m, a: virt.list_volumes(m.libvirt, a.pool or a.pool_opt),
              example="vol-list --pool {lvpool}")
p.add_argument("pool", nargs="?")
p.add_argument("--pool", dest="pool_opt")
p = VIRSH.add("list", "domains and their state (--all: also those shut off)", _domain_list,
              example="list --all")
p.add_argument("--all", action="store_true")
p.add_argument("--inactive", action="store_true")
VIRSH.add("secret-list", "libvirt secrets (never their values)",
          lambda m, a: virt.list_secrets(m.libvirt), example="secret-list")


def _define(m, a):
    from ..virt.guest import boot_of
    boot = boot_of(a.guest) if a.guest else None
    return virt.define_vm(m.libvirt, a.name, a.disk, memory_mib=a.memory, vcpus=a.vcpus,
                          boot=boot, console_log=a.console_log, exist_ok=a.exist_ok,
                          cluster=m.cluster, dry_run=m.dry(a))


p = VIRSH.add("define", "define a VM with RBD disks (vda, vdb, ... in order)", _define,
              mutating=True, example="define new-vm --disk {pool}/{image}")
p.add_argument("name")
p.add_argument("--disk", action="append", required=True, metavar="POOL/IMAGE")
p.add_argument("--memory", type=int, default=256, help="MiB")
p.add_argument("--vcpus", type=int, default=1)
p.add_argument("--guest", metavar="IMAGE", help="the image the disk was made from: an `rbdnb "
               "guest build` image boots its kernel directly (its console is --console-log)")
p.add_argument("--console-log")
p.add_argument("--exist-ok", action="store_true")

for verb, fn, example in [("start", virt.start_vm, "start {vm}"),
                          ("destroy", virt.destroy_vm, "destroy {vm}"),
                          ("shutdown", virt.shutdown_vm, "shutdown {vm}")]:
    p = VIRSH.add(verb, f"virsh {verb}", lambda m, a, fn=fn: fn(m.libvirt, a.name,
                                                                dry_run=m.dry(a)),
                  mutating=True, example=example)
    p.add_argument("name")


def _undefine(m, a):
    dry = m.dry(a)
    if not dry and not a.yes:
        raise UsageError(f"%virsh undefine {a.name}: forgets the VM's definition (its RBD "
                         f"disks stay): add --yes to do it")
    return virt.undefine_vm(m.libvirt, a.name, dry_run=dry)


p = VIRSH.add("undefine", "forget a VM that is off (virsh undefine); its disks stay; needs --yes",
              _undefine, mutating=True, example="undefine {vm} --yes")
p.add_argument("name")
p.add_argument("--yes", action="store_true")


def _set_value(m, a):
    return virt.set_secret_value(m.libvirt, m.cluster, a.secret, a.client, dry_run=m.dry(a))


p = VIRSH.add("secret-set-value", "set a ceph secret's value from client.NAME's key, through "
              "libvirt's API (the key is never typed)", _set_value, mutating=True,
              example="secret-set-value --secret {secret} --client {user}")
p.add_argument("--secret", required=True, metavar="UUID")
p.add_argument("--client", required=True, metavar="NAME")

p = VIRSH.add("console", "wait until the guest has booted and reports DISK (its console is "
              "logged: --console-log of define); a cell cannot type into a console",
              lambda m, a: virt.wait_guest(m.libvirt, a.name, disk=a.disk, sha256=a.sha256,
                                           timeout=a.timeout, dry_run=m.dry(a)),
              example="console {vm} --disk vda")
p.add_argument("name")
p.add_argument("--disk", default="vda", help="the disk the guest must report (default vda)")
p.add_argument("--sha256", help="what its first MiB must hash to")
p.add_argument("--timeout", type=float, default=120, help="seconds (default 120)")

def _migrate(m, a):
    if a.live == a.offline:
        raise UsageError(f"%virsh migrate {a.domain}: say --live (the VM keeps running, only "
                         f"its memory moves) or --offline (its definition only)")
    m.libvirt  # the notebook's host answers, or rbdnb's one-line error
    return virt.migrate(a.domain, m._uri or virt.default_uri(), a.desturi, live=a.live,
                        migrate_uri=a.migrateuri or a.migrateuri_at, timeout=a.bound,
                        dry_run=m.dry(a))


p = VIRSH.add("migrate", "move a VM with RBD disks to another libvirt host (virsh migrate "
              "--live): checks first that the host can open its disks (same secret, same "
              "monitors); reports the downtime, the memory sent and the time", _migrate,
              mutating=True, example="migrate --offline {vm} {uri2}")
p.add_argument("--live", action="store_true", help="the VM keeps running")
p.add_argument("--offline", action="store_true", help="move its definition only")
p.add_argument("--persistent", action="store_true", help="always: the VM is defined there")
p.add_argument("--undefinesource", action="store_true", help="always: and not here")
p.add_argument("--verbose", action="store_true", help="(the result says what was done)")
p.add_argument("--migrateuri", help="where QEMU sends the memory (default: tcp://HOST of "
                                    "DESTURI, tcp://127.0.0.1 for a local one)")
p.add_argument("--bound", type=float, default=600.0,
               help="seconds the whole migration may take before it is aborted (default 600)")
p.add_argument("domain")
p.add_argument("desturi")
p.add_argument("migrateuri_at", nargs="?", metavar="MIGRATEURI")

p = VIRSH.add("dumpxml", "the domain's XML",
              lambda m, a: XML(virt.dump_xml(m.libvirt, a.name, inactive=a.inactive)),
              example="dumpxml {vm}")
p.add_argument("name")
p.add_argument("--inactive", action="store_true")

p = VIRSH.add("domblklist", "the domain's disks: target, type, source",
              lambda m, a: virt.list_disks(m.libvirt, a.name, inactive=a.inactive),
              example="domblklist {vm}")
p.add_argument("name")
p.add_argument("--inactive", action="store_true")

p = VIRSH.add("attach-rbd", "attach an RBD image as a disk",
              lambda m, a: virt.attach_rbd(m.libvirt, a.domain, a.image, target=a.target,
                                           live=a.live or not a.config,
                                           persistent=a.config or not a.live,
                                           cluster=m.cluster, dry_run=m.dry(a)), mutating=True,
              example="attach-rbd {vm} {pool}/{lone} --target vdb")
p.add_argument("domain")
p.add_argument("image", metavar="POOL/IMAGE")
p.add_argument("--target", default="vdb")
p.add_argument("--live", action="store_true", help="only the running VM (default: both)")
p.add_argument("--config", action="store_true", help="only its definition (default: both)")

p = VIRSH.add("detach-rbd", "detach a disk by image or target",
              lambda m, a: virt.detach_rbd(m.libvirt, a.domain, a.disk,
                                           live=a.live or not a.config,
                                           persistent=a.config or not a.live,
                                           dry_run=m.dry(a)), mutating=True,
              example="detach-rbd {vm} vda")
p.add_argument("domain")
p.add_argument("disk", metavar="POOL/IMAGE|TARGET")
p.add_argument("--live", action="store_true")
p.add_argument("--config", action="store_true")

p = VIRSH.add("replace-disk", "turn a disk of the definition into an RBD disk (virsh edit)",
              lambda m, a: virt.replace_disk(m.libvirt, a.domain, a.target, a.image,
                                             cluster=m.cluster, dry_run=m.dry(a)), mutating=True,
              example="replace-disk {vm} vda {pool}/{lone}")
p.add_argument("domain")
p.add_argument("target")
p.add_argument("image", metavar="POOL/IMAGE")


# -- the rest of virsh: the real program, on this notebook's libvirt URI ------------------------
def _run_virsh(m, argv, *, confirm, dry_run, redirect=None):
    m.libvirt  # connect first: a daemon that is not there gives rbdnb's one-line error
    return tools.run_virsh(m._uri or virt.default_uri(), argv, confirm=confirm, dry_run=dry_run,
                           redirect=redirect)


# What %virsh migrate models; virsh's other forms (--p2p, --tunnelled, --copy-storage-all,
# ...) are the real tool's.
_MIGRATE_OPTIONS = {"--live", "--offline", "--persistent", "--undefinesource", "--verbose",
                    "--migrateuri", "--bound", "--dry-run", "--no-dry-run", "-h", "--help"}


def _defer(words, argv) -> bool:
    """virsh migrate with an option rbdnb does not model is virsh's own."""
    return words == ("migrate",) and any(
        t.startswith("-") and t.partition("=")[0] not in _MIGRATE_OPTIONS for t in argv)


VIRSH.real = tools.VIRSH_TOOL
VIRSH.run_tool = _run_virsh
VIRSH.defer = _defer
VIRSH.differences = [
    "define NAME --disk POOL/IMAGE ... builds the XML (define FILE is virsh's own)",
    "secret-define --client NAME defines the ceph secret and sets its value from Ceph "
    "(secret-define FILE is virsh's own); secret-set-value takes --client NAME, never a key",
    "undefine, secret-undefine, vol-delete, pool-undefine and the other destructive "
    "commands need --yes",
    "pool-define-rbd, attach-rbd, detach-rbd and replace-disk are rbdnb's (virsh edit cannot "
    "run in a cell)",
    "listings (list, pool-list, vol-list, domblklist, ...) are DataFrames",
    "migrate needs --live or --offline, always --persistent --undefinesource, checks the "
    "destination first and reports libvirt's job statistics; other forms are virsh's",
    "pool-define-rbd --host URI ... (or --fleet) applies the secret and pool to every host",
]
