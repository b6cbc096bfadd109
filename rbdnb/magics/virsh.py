"""``%virsh``: the ceph secret, rbd pools, VMs and their RBD disks, in virsh's words."""

from __future__ import annotations

from .. import virt
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

def _pool_list(m, a):
    with virt.translated("storage pools"):
        return frame([{"name": p.name(), "active": bool(p.isActive()),
                        "autostart": bool(p.autostart())}
                       for p in m.libvirt.listAllStoragePools(0)],
                      ["name", "active", "autostart"])


def _domain_list(m, a):
    with virt.translated("domains"):
        return frame([{"name": d.name(), "running": bool(d.isActive())}
                       for d in m.libvirt.listAllDomains()], ["name", "running"])


VIRSH.add("pool-list", "libvirt storage pools", _pool_list, example="pool-list")
p = VIRSH.add("vol-list", "volumes of a libvirt pool",
              lambda m, a: virt.list_volumes(m.libvirt, a.pool), example="vol-list {lvpool}")
p.add_argument("pool")
VIRSH.add("list", "domains and their state", _domain_list, example="list")
VIRSH.add("secret-list", "libvirt secrets (never their values)",
          lambda m, a: virt.list_secrets(m.libvirt), example="secret-list")


def _define(m, a):
    boot = None
    if a.guest:
        from ..virt.guest import GuestBoot
        stem = a.guest[:-len(".qcow2")] if a.guest.endswith(".qcow2") else a.guest
        boot = GuestBoot(a.guest, f"{stem}.vmlinuz", f"{stem}.initrd",
                         "console=ttyS0 panic=-1 quiet loglevel=3")
    return virt.define_vm(m.libvirt, a.name, a.disk, memory_mib=a.memory, vcpus=a.vcpus,
                          boot=boot, console_log=a.console_log, exist_ok=a.exist_ok,
                          cluster=m.cluster, dry_run=m.dry(a))


p = VIRSH.add("define", "define a VM with RBD disks (vda, vdb, ... in order)", _define,
              mutating=True, example="define new-vm --disk {pool}/{image}")
p.add_argument("name")
p.add_argument("--disk", action="append", required=True, metavar="POOL/IMAGE")
p.add_argument("--memory", type=int, default=256, help="MiB")
p.add_argument("--vcpus", type=int, default=1)
p.add_argument("--guest", help="an `rbdnb guest build` image: boot its kernel directly")
p.add_argument("--console-log")
p.add_argument("--exist-ok", action="store_true")

for verb, fn, example in [("start", virt.start_vm, "start {vm}"),
                          ("destroy", virt.destroy_vm, "destroy {vm}"),
                          ("shutdown", virt.shutdown_vm, "shutdown {vm}"),
                          ("undefine", virt.undefine_vm, "undefine {vm}")]:
    p = VIRSH.add(verb, f"virsh {verb}", lambda m, a, fn=fn: fn(m.libvirt, a.name,
                                                                dry_run=m.dry(a)),
                  mutating=True, example=example)
    p.add_argument("name")

p = VIRSH.add("dumpxml", "the domain's XML",
              lambda m, a: XML(virt.dump_xml(m.libvirt, a.name, inactive=a.inactive)),
              example="dumpxml {vm}")
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
