"""The source guide (../shared/WORKFLOW.md, a lab guide to Ceph RBD with QEMU and libvirt),
step by step: what the guide typed, what it got wrong, which runbook cell performs the step
(the cell's tag is ``guide-ID``) and how the real tool checks it afterwards.

``rbdnb docs build`` composes the site's front page from these: the guide regenerated.
Check command lines are templates: ``{NAME}`` is the runbook's parameter (or ``ceph``,
``rbd`` with the run's connection options, ``rbdspec`` for qemu-img's ``rbd:`` suffix,
``uri`` for libvirt's).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuideStep:
    """One step of the guide and where rbdnb performs and checks it."""
    id: str
    section: str
    title: str
    guide: str                  # the command(s) as the guide wrote them
    runbook: str                # the runbook that performs it
    check: tuple[str, ...] = ()  # the real tool's check, run after that runbook
    mistake: str = ""           # what the guide gets wrong
    note: str = ""              # how rbdnb does it, where that differs

    @property
    def tag(self) -> str:
        """The tag of the runbook cells that perform it."""
        return f"guide-{self.id}"


PART1 = "1. QEMU and RBD"
PART2 = "2. libvirt with Ceph RBD"
EXTRA = "What the guide leaves out"

STEPS = (
    GuideStep("1.1", PART1, "The QEMU host reads the cluster's conf and a keyring",
              "yum install qemu-kvm ceph\n# copy /etc/ceph/ceph.conf and "
              "ceph.client.admin.keyring from a cluster node", "01-qemu-rbd",
              ("{ceph} health",),
              note="rbdnb takes a conf path, a client id and a keyring path, never a key; by "
                   "default the sandbox's"),
    GuideStep("1.2", PART1, "Create an image with qemu-img",
              "qemu-img create -f raw rbd:rdb_1/image3 1G", "01-qemu-rbd",
              ("{rbd} ls -p {pool} --format json",)),
    GuideStep("1.3", PART1, "Grow it", "qemu-img resize rbd:rdb_1/image3 10G", "01-qemu-rbd",
              ("{rbd} info {pool}/{image} --format json",)),
    GuideStep("1.4", PART1, "Inspect it", "qemu-img info rbfad:rdb_1/image3", "01-qemu-rbd",
              ("qemu-img info --output=json rbd:{pool}/{image}{rbdspec}",),
              mistake="`rbfad:` is a typo for `rbd:` (qemu-img then looks for a local file "
                      "named rbfad:rdb_1/image3)"),
    GuideStep("1.5", PART1, "Import a VM image",
              "qemu-img convert -f qcow2 -O raw CentOS-7-x86_64-GenericCloud-1503.qcow2 "
              "rbd:rdb_1/cent-7", "01-qemu-rbd",
              note="offline, rbdnb builds a small bootable guest from this host's kernel "
                   "(source_image= imports your own)"),
    GuideStep("1.6", PART1, "Check the imported image",
              "qemu-img info rbd:rdb_1/cent-7", "01-qemu-rbd",
              ("qemu-img info --output=json rbd:{pool}/{imported}{rbdspec}",),
              note="and, beyond the guide, the bytes compared by sha256"),
    GuideStep("2.1", PART2, "A pool for libvirt",
              "ceph osd pool create libvirt-pool 128 128\nrbd pool init libvirt-pool",
              "02-libvirt-rbd", ("{ceph} osd pool application get {pool}",)),
    GuideStep("2.2", PART2, "An image in it",
              "qemu-img create -f rbd rbd:libvirt-pool/os-data 10G\nrbd -p libvirt-pool ls",
              "02-libvirt-rbd", ("{rbd} info {pool}/{os_data} --format json",)),
    GuideStep("2.3", PART2, "A user for libvirt",
              "ceph auth get-or-create client.libvirt mon 'allow r' osd 'allow class-read "
              "object_prefix rbd_children, allow rwx pool=libvirt-pool'", "02-libvirt-rbd",
              ("{ceph} auth get client.{user} --format json",),
              note="today's least-privilege form: mon 'profile rbd', osd and mgr 'profile rbd "
                   "pool=...'; its keyring is written with mode 0600"),
    GuideStep("2.4", PART2, "Its keyring on the libvirt host",
              "scp /etc/ceph/ceph.client.libvirt.keyring "
              "root@ceph_gateway:/etc/ceph/ceph.client.libvirt.keyring", "02-libvirt-rbd",
              note="step 2.3's -o FILE writes the keyring (mode 0600) on this host; copying "
                   "it to another host is yours"),
    GuideStep("2.5", PART2, "libvirtd",
              "yum install -y libvirt libvirt-python libguestfs-tools virt-install "
              "virt-viewer\nsystemctl start libvirtd\nsystemctl enable libvirtd",
              "02-libvirt-rbd", ("virsh -c {uri} version",),
              note="the sandbox starts libvirtd itself (rbdnb sandbox up)"),
    GuideStep("2.6", PART2, "A libvirt secret of usage type ceph",
              "cat > secret.xml <<EOF\n<secret ephemeral='no' private='no'>\n  <uuid>"
              "7a91dc24-b072-43c4-98fb-4b2415322b0f</uuid>\n  <usage type='ceph'><name>"
              "client.libvirt secret</name></usage>\n</secret>\nEOF\n"
              "virsh secret-define secret.xml", "02-libvirt-rbd",
              ("virsh -c {uri} secret-list",),
              mistake="private='no' lets anyone with libvirt access read the key back; rbdnb's "
                      "secret is private"),
    GuideStep("2.7", PART2, "The secret's value: the key of client.libvirt",
              "ceph auth get-key client.libvirt | tee client.libvirt.key\n"
              "virsh secret-set-value 7a91dc24-b072-43c4-98fb-4b2415322b0f --base64 "
              "$(cat client.libvirt.key)", "02-libvirt-rbd",
              mistake="the key lands in a file and on a command line (virsh itself warns); the "
                      "guide then prints it with ceph auth ls and appends it to /etc/ceph/keyring",
              note="rbdnb sets it through libvirt's API; it is never shown"),
    GuideStep("2.8", PART2, "A libvirt storage pool of type rbd",
              "cat > /tmp/ceph-libvirt-pool.xml <<EOF\n<pool type='rbd'>\n  <name>"
              "ceph-libvirt-pool</name>\n  <source>\n    <host name='192.168.30.143' "
              "port='6789'/>\n    <name>libvirt-pool</name>\n    <auth username='libvirt' "
              "type='ceph'>\n      <secret type='ceph' uuid='7a91dc24-...'/>\n    </auth>\n"
              "  </source>\n</pool>\nEOF\nvirsh pool-define /tmp/ceph-libvirt-pool.xml\n"
              "virsh pool-start ceph-libvirt-pool\nvirsh pool-autostart ceph-libvirt-pool",
              "02-libvirt-rbd", ("virsh -c {uri} pool-info {libvirt_pool}",)),
    GuideStep("2.9", PART2, "A VM whose disk is in that pool",
              "virt-install --virt-type=kvm --name centos7 --ram 1024 "
              "--disk size=10,pool=ceph-libvirt-pool --vcpus 1 --os-type linux "
              "--os-variant=centos7.0 --graphics vnc --cdrom=/var/lib/libvirt/images/Centos-7.iso",
              "02-libvirt-rbd", ("virsh -c {uri} domstate {vm}",),
              note="no ISO and no installer offline: the VM boots a copy-on-write clone of "
                   "the imported guest, and its console shows the disk it sees"),
    GuideStep("2.10", PART2, "The VM's XML", "virsh dump centos7", "02-libvirt-rbd",
              ("virsh -c {uri} domblklist {vm} --details",),
              mistake="`virsh dump` writes the VM's memory to a core file; the XML is "
                      "`virsh dumpxml`"),
    GuideStep("2.11", PART2, "Its file disk becomes an RBD network disk",
              "virsh edit centos7\n<disk type='network' device='disk'>\n  <source "
              "protocol='rbd' name='libvirt-pool/os-data'>\n    <host name='192.168.30.145' "
              "port='6789'/>\n  </source>\n  <target dev='vda' bus='virtio'/>\n</disk>",
              "02-libvirt-rbd", ("virsh -c {uri} domblklist {edited_vm} --inactive --details",),
              mistake="the disk has no <auth>: with cephx on, QEMU cannot open it (rbdnb's "
                      "disk carries the user and the secret)"),
    GuideStep("x.1", EXTRA, "Attach a further RBD disk to a running VM, and detach it", "",
              "02-libvirt-rbd"),
    GuideStep("x.2", EXTRA, "A golden image, snapshotted once, cloned many times", "",
              "03-golden-image-clones", ("{rbd} children {pool}/{golden}@{snapshot} "
                                         "--format json",)),
    GuideStep("x.3", EXTRA, "Boot VMs from the clones", "", "03-golden-image-clones"),
    GuideStep("x.4", EXTRA, "Flatten a clone", "", "03-golden-image-clones"),
    GuideStep("x.5", EXTRA, "Clone time against full-copy time, plotted", "",
              "03-golden-image-clones"),
    GuideStep("x.6", EXTRA, "Benchmark the pool, plotted against the native tools", "",
              "04-benchmark"),
    GuideStep("x.7", EXTRA, "Clean up", "", "99-teardown"),
    GuideStep("x.8", EXTRA, "The same secret (one UUID) and rbd pool on every hypervisor",
              "", "05-live-migration"),
    GuideStep("x.9", EXTRA, "Live-migrate a running VM to another host and back, downtime "
              "plotted", "", "05-live-migration"),
    GuideStep("x.10", EXTRA, "A second site mirroring the pool (rbd-mirror, peers bootstrapped)",
              "", "06-disaster-recovery"),
    GuideStep("x.11", EXTRA, "Planned failover to the second site, and back", "",
              "06-disaster-recovery"),
    GuideStep("x.12", EXTRA, "Unplanned failover (site lost), resync and failback; RTO and "
              "RPO plotted", "", "06-disaster-recovery"),
)


def steps_of(runbook: str) -> list[GuideStep]:
    """The guide steps ``runbook`` performs, in the guide's order."""
    return [s for s in STEPS if s.runbook == runbook]
