"""The libvirt layer's XML and logic on libvirt's in-memory test driver; the guest builder."""
import gzip
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

import rbdnb
from rbdnb.virt import guest; from rbdnb import virt

AUTH = virt.RbdAuth([("10.0.0.1", 6789), ("10.0.0.2", 6789)], "libvirt",
                    "00000000-0000-4000-8000-000000000001")
BOOT = guest.GuestBoot("/var/lib/rbdnb/g.qcow2", "/var/lib/rbdnb/g.vmlinuz",
                       "/var/lib/rbdnb/g.initrd", "console=ttyS0 quiet")


@pytest.fixture
def conn():
    c = virt.connect_libvirt("test:///default")
    yield c
    c.close()


def test_domain_xml_has_rbd_disks_auth_console_and_direct_boot():
    disks = [virt.rbd_disk(rbdnb.parse_spec("pool/a"), "vda", AUTH)]
    root = ET.fromstring(virt.domain_xml("vm", disks, memory_mib=512, vcpus=2, boot=BOOT,
                                         console_log="/var/log/vm.log", virt_type="qemu"))
    assert root.get("type") == "qemu" and root.findtext("name") == "vm"
    assert root.find("memory").text == "512" and root.find("memory").get("unit") == "MiB"
    assert root.findtext("os/kernel") == BOOT.kernel and root.findtext("os/cmdline") == BOOT.cmdline
    assert root.find("features/acpi") is not None
    disk = root.find("devices/disk")
    assert disk.get("type") == "network" and disk.find("source").get("protocol") == "rbd"
    assert [(h.get("name"), h.get("port")) for h in disk.iter("host")] == \
        [("10.0.0.1", "6789"), ("10.0.0.2", "6789")]
    assert disk.find("auth/secret").get("type") == "ceph"
    assert root.find("devices/serial/log").get("file") == "/var/log/vm.log"
    assert root.find("os/boot") is None
    from_disk = ET.fromstring(virt.domain_xml("vm", disks, virt_type="qemu"))
    assert from_disk.find("os/boot").get("dev") == "hd" and from_disk.find("os/kernel") is None


def test_virt_type_auto_follows_what_really_works():
    root = ET.fromstring(virt.domain_xml("vm", [], virt_type="auto"))
    assert root.get("type") == ("kvm" if virt.kvm_usable() else "qemu")
    cpuinfo = open("/proc/cpuinfo").read()
    if " vmx" not in cpuinfo and " svm" not in cpuinfo:
        assert not virt.kvm_usable()  # /dev/kvm may exist here; KVM still does not work


@pytest.mark.parametrize("call", [
    lambda: virt.domain_xml('a"b', []),
    lambda: virt.domain_xml("vm", [], memory_mib=0),
    lambda: virt.domain_xml("vm", [], vcpus=True),
    lambda: virt.domain_xml("vm", [], virt_type="xen"),
    lambda: virt.domain_xml("vm", [], console_log="relative.log"),
    lambda: virt.domain_xml("vm", [], console_log="/tmp/a<b"),
    lambda: virt.domain_xml("vm", [], boot=guest.GuestBoot("i", "/k", "/i", "a=b />")),
    lambda: virt.domain_xml("vm", [], boot=guest.GuestBoot("i", "/k&", "/i", "")),
    lambda: virt.rbd_disk(rbdnb.parse_spec("p/a"), 'vd"a', AUTH),
    lambda: virt.RbdAuth([("h'", 1)], "libvirt", AUTH.secret_uuid),
    lambda: virt.RbdAuth([("h", 70000)], "libvirt", AUTH.secret_uuid),
    lambda: virt.RbdAuth([("h", 1)], "lib virt", AUTH.secret_uuid),
    lambda: virt.RbdAuth([("h", 1)], "libvirt", "not-a-uuid"),
    lambda: virt.secret_xml("libvirt", "'/><x/>"),
    lambda: virt.rbd_pool_xml("a&b", "pool", AUTH),
    lambda: virt.file_disk("/x/a\"b.qcow2"),
    lambda: virt.connect_libvirt("qemu:///system'/>"),
])
def test_markup_and_bad_values_are_refused(call):
    with pytest.raises(rbdnb.InvalidArgument) as err:
        call()
    assert "\n" not in str(err.value)


def test_secret_xml_is_private_ceph_usage():
    root = ET.fromstring(virt.secret_xml("client.libvirt", AUTH.secret_uuid))
    assert root.get("private") == "yes" and root.get("ephemeral") == "no"
    assert root.find("usage").get("type") == "ceph"
    assert root.findtext("usage/name") == "client.libvirt secret"
    assert root.findtext("uuid") == AUTH.secret_uuid


def test_rbd_pool_xml_round_trips():
    xml = virt.rbd_pool_xml("ceph-libvirt-pool", "libvirt-pool", AUTH)
    assert virt.pool_source(xml) == {"type": "rbd", "name": "libvirt-pool",
                                      "hosts": AUTH.hosts, "username": "libvirt",
                                      "secret": AUTH.secret_uuid}


def test_monitor_hosts_are_those_a_bare_host_port_names():
    def mon(*addrs):
        return {"public_addrs": {"addrvec": [{"type": t, "addr": a} for t, a in addrs]}}
    dump = {"mons": [mon(("v2", "10.0.0.1:3300"), ("v1", "10.0.0.1:6789")),
                     mon(("v2", "127.0.0.1:40123")),
                     mon(("v1", "10.0.0.3:7000"))]}
    assert virt.pick_monitor_hosts(dump) == [("10.0.0.1", 6789), ("127.0.0.1", 40123)]


def test_vm_lifecycle_on_the_test_driver(conn):
    assert virt.define_vm(conn, "t1", ["p/disk"], auth=AUTH, virt_type="qemu").changed
    again = virt.define_vm(conn, "t1", ["p/disk"], auth=AUTH, virt_type="qemu", exist_ok=True)
    assert not again.changed
    with pytest.raises(virt.DomainExists):
        virt.define_vm(conn, "t1", ["p/disk"], auth=AUTH)
    with pytest.raises(rbdnb.Conflict, match="other disks"):
        virt.define_vm(conn, "t1", ["p/other"], auth=AUTH, exist_ok=True)
    frame = virt.list_disks(conn, "t1", inactive=True)
    assert list(frame.target) == ["vda"] and list(frame.source) == ["p/disk"]
    assert virt.start_vm(conn, "t1").changed and not virt.start_vm(conn, "t1").changed
    with pytest.raises(rbdnb.InvalidArgument, match="running"):
        virt.undefine_vm(conn, "t1")
    assert virt.destroy_vm(conn, "t1").changed and not virt.destroy_vm(conn, "t1").changed
    assert virt.undefine_vm(conn, "t1").changed
    assert not virt.undefine_vm(conn, "t1", missing_ok=True).changed
    with pytest.raises(virt.DomainNotFound, match="domain t1: no such domain"):
        virt.start_vm(conn, "t1")


def test_define_vm_without_auth_needs_a_libvirt_rbd_pool(conn):
    with pytest.raises(rbdnb.InvalidArgument, match="no libvirt rbd pool serves Ceph pool p"):
        virt.define_vm(conn, "t2", ["p/disk"])


def test_replace_disk_keeps_the_rest_of_the_definition(conn):
    conn.defineXML(virt.domain_xml("t3", [virt.file_disk("/var/lib/x.qcow2")], boot=BOOT,
                                   virt_type="qemu"))
    before = ET.fromstring(virt.dump_xml(conn, "t3", inactive=True))
    result = virt.replace_disk(conn, "t3", "vda", "p/new", auth=AUTH)
    assert result.changed and result.plan.lines == ["virsh edit t3"]
    after = ET.fromstring(virt.dump_xml(conn, "t3", inactive=True))
    assert after.findtext("uuid") == before.findtext("uuid")
    assert after.findtext("os/kernel") == BOOT.kernel
    disk = after.find("devices/disk")
    assert disk.get("type") == "network" and disk.find("source").get("name") == "p/new"
    assert disk.find("target").get("bus") == before.find("devices/disk/target").get("bus")
    assert not virt.replace_disk(conn, "t3", "vda", "p/new", auth=AUTH).changed
    with pytest.raises(rbdnb.NotFound, match="no disk vdc"):
        virt.replace_disk(conn, "t3", "vdc", "p/new", auth=AUTH)


def test_initramfs_is_a_newc_archive_with_init_busybox_and_modules(tmp_path):
    release = guest._kernel_release()
    data = gzip.decompress(guest._initramfs(release))
    (tmp_path / "i.cpio").write_bytes(data)
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True,
                             check=True, timeout=60).stdout.decode().split()
    assert {"init", "bin/busybox"} <= set(listing)
    names = [n.split("/")[-1][:-3] for n in listing if n.endswith(".ko")]
    order = [name for name, _ in guest._module_load_order(release)]
    assert names == order and order[-2:] == ["virtio_pci", "virtio_blk"]
    assert order.index("virtio_ring") < order.index("virtio")
    assert guest._initramfs(release) == guest._initramfs(release)  # reproducible


def test_parse_console():
    sha = "ab" * 32
    text = ("junk\nRBDNB-GUEST-READY 6.1\nRBDNB-DISK vda 131072 " + "0" * 64 +
            f"\nRBDNB-TICK\nRBDNB-DISK vda 131072 {sha}\nRBDNB-DISK vdb 2048 {sha}\n")
    parsed = guest.parse_console(text)
    assert parsed["booted"]
    assert parsed["disks"] == {"vda": {"sectors": 131072, "sha256": sha},
                               "vdb": {"sectors": 2048, "sha256": sha}}
    assert not guest.parse_console("RBDNB-DISK vda 1 " + sha)["booted"]


def test_build_refuses_what_qemu_could_not_read(tmp_path):
    with pytest.raises(rbdnb.InvalidArgument, match="must end in .qcow2"):
        guest.build(tmp_path / "g.img")
    if os.geteuid() == 0:
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        with pytest.raises(rbdnb.InvalidArgument, match="not traversable"):
            guest.build(private / "g.qcow2")


class _Obj:
    def __init__(self, name, xml):
        self._name, self._xml = name, xml

    def name(self):
        return self._name

    def XMLDesc(self, flags=0):
        return self._xml


class _Conn:
    """The two listings objects_on_cluster reads, as libvirt returns them."""

    def __init__(self, domains, pools):
        self.domains, self.pools = domains, pools

    def listAllDomains(self, flags=0):
        return self.domains

    def listAllStoragePools(self, flags=0):
        return self.pools


def _disk(pool, host="127.0.0.1", port="3300"):
    port_attr = f" port='{port}'" if port else ""
    return (f"<disk type='network'><source protocol='rbd' name='{pool}/img'>"
            f"<host name='{host}'{port_attr}/></source></disk>")


def test_objects_on_cluster_finds_only_what_uses_these_monitors_and_pools():
    conn = _Conn(
        [_Obj("vm-ours", f"<domain><devices>{_disk('rbd')}</devices></domain>"),
         _Obj("vm-other-cluster", f"<domain><devices>{_disk('rbd', port='4400')}</devices></domain>"),
         _Obj("vm-other-pool", f"<domain><devices>{_disk('else')}</devices></domain>"),
         _Obj("vm-default-port", f"<domain><devices>{_disk('rbd', port=None)}</devices></domain>"),
         _Obj("vm-file", "<domain><devices><disk type='file'/></devices></domain>")],
        [_Obj("lp", "<pool type='rbd'><source><name>rbd</name><host name='127.0.0.1' port='3300'/>"
                    "<auth><secret uuid='u1'/></auth></source></pool>"),
         _Obj("lp-else", "<pool type='rbd'><source><name>else</name><host name='127.0.0.1' "
                         "port='3300'/><auth><secret uuid='u2'/></auth></source></pool>"),
         _Obj("dir", "<pool type='dir'><target><path>/x</path></target></pool>")])
    mons = [("127.0.0.1", 3300)]
    found = virt.objects_on_cluster(conn, mons, ceph_pools=["rbd"])
    assert (found.domains, found.pools, found.secrets) == (["vm-ours"], ["lp"], ["u1"])
    every = virt.objects_on_cluster(conn, mons)
    assert every.domains == ["vm-ours", "vm-other-pool"] and every.secrets == ["u1", "u2"]
    # A <host> without a port means Ceph's default port, as libvirt and QEMU read it.
    assert virt.objects_on_cluster(conn, [("127.0.0.1", 6789)]).domains == ["vm-default-port"]


def test_a_dry_run_before_the_libvirt_pool_exists_says_where_auth_will_come_from(conn):
    plan = virt.define_vm(conn, "t4", ["p/disk"], dry_run=True)
    assert plan.lines == ["virsh define t4.xml"] and any("monitors" in n for n in plan.notes)
    assert "t4" not in [d.name() for d in conn.listAllDomains()]
    plan = virt.replace_disk(conn, "t4", "vda", "p/new", dry_run=True)
    assert plan.lines == ["virsh edit t4"]


def test_wait_guest_reads_the_console_log_of_a_running_offline_guest(conn, tmp_path):
    log = tmp_path / "t5.console.log"
    virt.define_vm(conn, "t5", ["p/disk"], auth=AUTH, boot=BOOT, console_log=str(log),
                   virt_type="qemu")
    with pytest.raises(rbdnb.InvalidArgument, match="t5 is not running"):
        virt.wait_guest(conn, "t5", timeout=1)
    virt.start_vm(conn, "t5")
    with pytest.raises(rbdnb.Timeout, match="booted: False"):
        virt.wait_guest(conn, "t5", timeout=0.5)
    digest = "ab" * 32
    log.write_text(f"{guest.MARKER}\nRBDNB-DISK vda 2048 {digest}\n")
    seen = virt.wait_guest(conn, "t5", timeout=5)
    assert not seen.changed and "vda sha256 abababab" in seen.message
    assert seen.plan.lines == ["virsh console t5"]
    with pytest.raises(rbdnb.Timeout):
        virt.wait_guest(conn, "t5", disk="vda", sha256="cd" * 32, timeout=0.5)
    assert isinstance(virt.wait_guest(conn, "t5", dry_run=True), rbdnb.Plan)
    # A guest that is not rbdnb's (booted from its disk) reports nothing: not checked.
    virt.define_vm(conn, "t6", ["p/disk"], auth=AUTH, console_log=str(log), virt_type="qemu")
    assert virt.wait_guest(conn, "t6", timeout=1).message.startswith("not checked")
    virt.define_vm(conn, "t7", ["p/disk"], auth=AUTH, virt_type="qemu")
    with pytest.raises(rbdnb.InvalidArgument, match="no console log"):
        virt.wait_guest(conn, "t7", timeout=1)


def test_define_file_vm_copies_the_image_once(conn, tmp_path):
    image = tmp_path / "src.qcow2"
    image.write_bytes(b"QFI\xfb" + bytes(100))
    made = virt.define_file_vm(conn, "t8", str(image), str(tmp_path))
    assert made.changed and (tmp_path / "t8.qcow2").read_bytes() == image.read_bytes()
    assert oct((tmp_path / "t8.qcow2").stat().st_mode & 0o777) == "0o644"
    assert list(virt.list_disks(conn, "t8", inactive=True).source) == [str(tmp_path / "t8.qcow2")]
    assert not virt.define_file_vm(conn, "t8", str(image), str(tmp_path)).changed
    plan = virt.define_file_vm(conn, "t9", str(image), str(tmp_path), dry_run=True)
    assert "t9" not in [d.name() for d in conn.listAllDomains()] and "virt-install" in plan.lines[1]


def test_boot_of_knows_an_offline_guest_by_its_kernel_and_initrd(tmp_path):
    image = tmp_path / "guest.qcow2"
    image.write_bytes(b"x")
    assert guest.boot_of(image) is None
    (tmp_path / "guest.vmlinuz").write_bytes(b"k")
    (tmp_path / "guest.initrd").write_bytes(b"i")
    boot = guest.boot_of(image)
    assert boot.kernel == str(tmp_path / "guest.vmlinuz") and boot.cmdline == guest.GUEST_CMDLINE
    assert guest.boot_of(tmp_path / "other.raw") is None


def test_wait_console_after_an_offset_ignores_earlier_reports(tmp_path):
    log = tmp_path / "c.log"
    old = f"{guest.MARKER}\nRBDNB-DISK vdb 2048 {'ab' * 32}\n"
    log.write_text(old)
    with pytest.raises(rbdnb.Timeout):
        guest.wait_console(log, lambda s: "vdb" in s["disks"], timeout=0.5, after=len(old))
    log.write_text(old + f"RBDNB-DISK vdb 2048 {'cd' * 32}\n")
    seen = guest.wait_console(log, lambda s: "vdb" in s["disks"], timeout=2, after=len(old))
    assert seen["booted"] and seen["disks"]["vdb"]["sha256"] == "cd" * 32


def test_qemu_info_of_a_missing_file_is_a_typed_error(tmp_path):
    from rbdnb import qemu
    with pytest.raises(rbdnb.NotFound, match="no such file"):
        qemu.info(str(tmp_path / "nothing.qcow2"))
