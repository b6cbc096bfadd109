"""QEMU and libvirt on the sandbox: a guest that boots from an RBD clone, disks hot-attached.

Cross-checked with the real virsh, qemu-img and rbd CLIs.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

import rbdnb
from rbdnb.virt import guest; from rbdnb.ceph import qemu; from rbdnb import virt
from rbdnb.ceph.images import open_image
from rbdnb.base.specs import parse_spec

# libvirt's names are machine-wide: a per-run id keeps concurrent test sessions apart.
RUN = uuid.uuid4().hex[:6]
POOL = "it-vms"
LV_POOL = f"it-{RUN}-ceph-vms"
CLIENT = f"it-{RUN}-libvirt"
PREFIX = f"rbdnb-it-{RUN}-"
BOOT_TIMEOUT = 90


def wait_console(path, check, timeout=BOOT_TIMEOUT):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = open(path, errors="replace").read() if os.path.exists(path) else ""
        parsed = guest.parse_console(text)
        if check(parsed, text):
            return parsed, text
        time.sleep(1)
    raise AssertionError(f"console {path} after {timeout} s: {text[-600:]!r}")


@pytest.fixture(scope="module")
def guest_dir():
    # libvirt's QEMU runs as libvirt-qemu: kernel and initrd must be in a traversable dir.
    path = tempfile.mkdtemp(prefix="rbdnb-it-guest-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def boot(guest_dir):
    out = subprocess.run([sys.executable, "-m", "rbdnb", "guest", "build",
                          os.path.join(guest_dir, "guest.qcow2"), "--json"],
                         capture_output=True, text=True, timeout=120, check=True)
    data = json.loads(out.stdout)
    assert data["marker"] == guest.MARKER and data["kernel"] and data["initrd"]
    return guest.GuestBoot(**data)


@pytest.fixture(scope="module")
def conn(sandbox):
    c = virt.connect_libvirt(sandbox.libvirt_uri)
    yield c
    c.close()


def cleanup(conn, cluster):
    for dom in conn.listAllDomains():
        if dom.name().startswith(PREFIX):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    virt.delete_rbd_pool(conn, LV_POOL)
    for s in conn.listAllSecrets():
        if s.usageID() == f"client.{CLIENT} secret":
            s.undefine()
    rbdnb.delete_user(cluster, CLIENT, confirm=True, missing_ok=True)
    rbdnb.delete_pool(cluster, POOL, confirm=True, missing_ok=True)


@pytest.fixture(scope="module")
def env(cluster, conn, boot):
    """Pool, least-privilege user, libvirt secret and rbd pool, golden image imported and snapshotted."""
    cleanup(conn, cluster)
    rbdnb.create_pool(cluster, POOL, 16)
    rbdnb.create_user(cluster, CLIENT, [POOL])
    secret = virt.ensure_secret(conn, cluster, CLIENT)
    virt.ensure_rbd_pool(conn, LV_POOL, POOL, cluster, CLIENT, secret)
    rbdnb.import_image(cluster, boot.image, f"{POOL}/golden")
    rbdnb.create_snapshot(cluster, f"{POOL}/golden@base")
    yield {"secret": secret}
    cleanup(conn, cluster)


def virsh(sandbox, *args, check=True):
    proc = subprocess.run(["virsh", "-c", sandbox.libvirt_uri, *args], capture_output=True,
                          text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_secret_and_rbd_pool_match_virsh(sandbox, cluster, conn, env):
    uuid = env["secret"]
    listed = virsh(sandbox, "secret-list").stdout
    assert uuid in listed and f"ceph client.{CLIENT} secret" in listed
    # Private: libvirt will not hand the key out, not even to virsh.
    got = virsh(sandbox, "secret-get-value", uuid, check=False)
    assert got.returncode != 0 and "AQ" not in got.stdout
    again = virt.define_secret(conn, cluster, CLIENT)
    assert not again.changed and again.value == uuid
    with pytest.raises(rbdnb.Conflict, match="exists with UUID"):
        virt.ensure_secret(conn, cluster, CLIENT, uuid="00000000-0000-4000-8000-000000000000")

    info = virsh(sandbox, "pool-info", LV_POOL).stdout
    assert "running" in info and "Autostart:      yes" in info
    pool_xml = ET.fromstring(virsh(sandbox, "pool-dumpxml", LV_POOL).stdout)
    assert pool_xml.findtext("source/name") == POOL
    assert pool_xml.find("source/auth").get("username") == CLIENT
    assert pool_xml.find("source/auth/secret").get("uuid") == uuid
    port = int(pool_xml.find("source/host").get("port"))
    assert sandbox.status().mon_host.endswith(f":{port}")
    assert not virt.ensure_rbd_pool(conn, LV_POOL, POOL, cluster, CLIENT, uuid).changed
    vols = virsh(sandbox, "vol-list", LV_POOL).stdout
    assert "golden" in vols
    assert "golden" in set(virt.list_volumes(conn, LV_POOL).name)


def test_volumes_through_the_libvirt_pool_match_rbd(sandbox, cluster, conn, env, cli):
    assert virt.create_volume(conn, LV_POOL, "vol-a", "64M").changed
    assert cli("rbd", "info", f"{POOL}/vol-a", json_out=True)["size"] == 64 * 1024**2
    assert virt.clone_volume(conn, LV_POOL, "golden", "vol-clone").changed
    info = cli("rbd", "info", f"{POOL}/vol-clone", json_out=True)
    # libvirt clones copy-on-write: the new image's parent is a snapshot of golden.
    assert info["parent"]["image"] == "golden"
    vols = set(virt.list_volumes(conn, LV_POOL).name)
    assert {"vol-a", "vol-clone", "golden"} <= vols
    assert vols == set(cli("rbd", "ls", POOL, json_out=True))
    with pytest.raises(rbdnb.ConfirmationRequired):
        virt.delete_volume(conn, LV_POOL, "vol-a")
    for vol in ("vol-a", "vol-clone"):
        assert virt.delete_volume(conn, LV_POOL, vol, confirm=True).changed
    assert not virt.delete_volume(conn, LV_POOL, "vol-a", confirm=True, missing_ok=True).changed
    assert "vol-a" not in cli("rbd", "ls", POOL, json_out=True)


def test_three_vms_boot_from_rbd_clones(sandbox, cluster, conn, env, boot, guest_dir, cli):
    rbdnb.clone_many(cluster, f"{POOL}/golden@base", f"{POOL}/vm-{{i}}", count=3)
    header = hashlib.sha256(guest.disk_header()).hexdigest()
    logs = {}
    for i in (1, 2, 3):
        name = f"{PREFIX}vm{i}"
        logs[name] = os.path.join(guest_dir, f"{name}.log")
        result = virt.define_vm(conn, name, [f"{POOL}/vm-{i}"], boot=boot, cluster=cluster,
                                console_log=logs[name])
        assert result.changed
        assert virt.start_vm(conn, name).changed
    for name, log in logs.items():
        parsed, _ = wait_console(log, lambda p, t: p["booted"] and "vda" in p["disks"])
        assert parsed["disks"]["vda"]["sha256"] == header
        assert parsed["disks"]["vda"]["sectors"] == guest.DISK_SIZE // 512
    running = virsh(sandbox, "list", "--name").stdout.split()
    assert {f"{PREFIX}vm{i}" for i in (1, 2, 3)} <= set(running)
    dom = ET.fromstring(virsh(sandbox, "dumpxml", f"{PREFIX}vm2").stdout)
    expected_type = "kvm" if virt.kvm_usable() else "qemu"
    assert dom.get("type") == expected_type
    disk = dom.find("devices/disk")
    assert disk.get("type") == "network"
    assert disk.find("source").get("protocol") == "rbd"
    assert disk.find("source").get("name") == f"{POOL}/vm-2"
    assert disk.find("auth").get("username") == CLIENT
    assert disk.find("auth/secret").get("uuid") == env["secret"]
    assert dom.find("os/kernel").text == boot.kernel
    # The clones are watched by their running VMs: rbd status agrees.
    status = cli("rbd", "status", f"{POOL}/vm-2", json_out=True)
    assert len(status["watchers"]) >= 1
    again = virt.define_vm(conn, f"{PREFIX}vm1", [f"{POOL}/vm-1"], boot=boot, exist_ok=True)
    assert not again.changed
    with pytest.raises(virt.DomainExists):
        virt.define_vm(conn, f"{PREFIX}vm1", [f"{POOL}/vm-1"], boot=boot)
    assert not virt.start_vm(conn, f"{PREFIX}vm1").changed


def test_hot_attach_is_seen_by_the_guest_then_detach(sandbox, cluster, conn, env, guest_dir):
    name = f"{PREFIX}vm1"
    log = os.path.join(guest_dir, f"{name}.log")
    wait_console(log, lambda p, t: p["booted"])
    rbdnb.create_image(cluster, f"{POOL}/extra", "32M")
    data = os.urandom(1024**2)
    with open_image(cluster, parse_spec(f"{POOL}/extra")) as image:
        image.write(data, 0)
    want = hashlib.sha256(data).hexdigest()

    plan = virt.attach_rbd(conn, name, f"{POOL}/extra", target="vdb", dry_run=True)
    assert "--live --config" in plan.lines[0]
    assert "vdb" not in virsh(sandbox, "domblklist", name).stdout
    result = virt.attach_rbd(conn, name, f"{POOL}/extra", target="vdb", cluster=cluster)
    assert result.changed and "live and in its config" in result.message
    parsed, _ = wait_console(log, lambda p, t: p["disks"].get("vdb", {}).get("sha256") == want,
                             timeout=60)
    assert parsed["disks"]["vdb"]["sectors"] == 32 * 1024**2 // 512
    assert "vdb" in virsh(sandbox, "domblklist", name).stdout
    assert "vdb" in virsh(sandbox, "dumpxml", "--inactive", name).stdout
    assert not virt.attach_rbd(conn, name, f"{POOL}/extra", target="vdb").changed
    with pytest.raises(rbdnb.Conflict, match="already has a disk vdb"):
        virt.attach_rbd(conn, name, f"{POOL}/vm-2", target="vdb")

    assert virt.detach_rbd(conn, name, f"{POOL}/extra").changed
    assert "vdb" not in virsh(sandbox, "domblklist", name).stdout
    assert "vdb" not in virsh(sandbox, "dumpxml", "--inactive", name).stdout
    size = os.path.getsize(log)

    def gone(parsed, text):
        later = text[size:]
        blocks = later.split("RBDNB-TICK")
        return len(blocks) >= 3 and "vdb" not in blocks[-2] and "RBDNB-DISK vda" in blocks[-2]
    wait_console(log, gone, timeout=60)
    assert not virt.detach_rbd(conn, name, f"{POOL}/extra").changed


def test_replace_a_file_disk_by_an_rbd_disk(sandbox, cluster, conn, env, boot, guest_dir):
    name = f"{PREFIX}edited"
    disk_file = os.path.join(guest_dir, "file-disk.qcow2")
    shutil.copyfile(boot.image, disk_file)
    os.chmod(disk_file, 0o644)
    log = os.path.join(guest_dir, f"{name}.log")
    conn.defineXML(virt.domain_xml(name, [virt.file_disk(disk_file)], boot=boot,
                                   console_log=log))
    before = ET.fromstring(virsh(sandbox, "dumpxml", name).stdout)
    assert before.find("devices/disk").get("type") == "file"
    rbdnb.clone(cluster, f"{POOL}/golden@base", f"{POOL}/replaced")
    result = virt.replace_disk(conn, name, "vda", f"{POOL}/replaced", cluster=cluster)
    assert result.changed
    after = ET.fromstring(virsh(sandbox, "dumpxml", name).stdout)
    disk = after.find("devices/disk")
    assert disk.get("type") == "network" and disk.find("source").get("name") == f"{POOL}/replaced"
    assert after.findtext("uuid") == before.findtext("uuid")
    assert after.findtext("os/kernel") == before.findtext("os/kernel")
    assert disk.find("address").attrib == before.find("devices/disk/address").attrib
    assert len(after.findall("devices/disk")) == 1
    assert not virt.replace_disk(conn, name, "vda", f"{POOL}/replaced").changed
    virt.start_vm(conn, name)
    parsed, _ = wait_console(log, lambda p, t: p["booted"] and "vda" in p["disks"])
    assert parsed["disks"]["vda"]["sha256"] == hashlib.sha256(guest.disk_header()).hexdigest()
    assert virt.destroy_vm(conn, name).changed
    with pytest.raises(rbdnb.NotFound, match="no disk vdz"):
        virt.replace_disk(conn, name, "vdz", f"{POOL}/replaced")


INJECTIONS = [
    ("domain name quote", lambda c, b, d: virt.define_vm(c, 'x"><evil/>', [f"{POOL}/vm-1"], boot=b)),
    ("disk markup", lambda c, b, d: virt.define_vm(c, f"{PREFIX}x", [f"{POOL}/<evil/>"], boot=b)),
    ("console quote", lambda c, b, d: virt.define_vm(c, f"{PREFIX}x", [f"{POOL}/vm-1"], boot=b,
                                                      console_log=f"{d}/a'b.log")),
    ("cmdline markup", lambda c, b, d: virt.define_vm(
        c, f"{PREFIX}x", [f"{POOL}/vm-1"], console_log=f"{d}/x.log",
        boot=guest.GuestBoot(b.image, b.kernel, b.initrd, "console=ttyS0 </cmdline><evil/>"))),
    ("kernel amp", lambda c, b, d: virt.define_vm(
        c, f"{PREFIX}x", [f"{POOL}/vm-1"],
        boot=guest.GuestBoot(b.image, b.kernel + "&x", b.initrd, b.cmdline))),
    ("target", lambda c, b, d: virt.attach_rbd(c, f"{PREFIX}vm1", f"{POOL}/extra", target='vdb"/>')),
    ("attach image", lambda c, b, d: virt.attach_rbd(c, f"{PREFIX}vm1", f"{POOL}/a&b", target="vdc")),
    ("auth host", lambda c, b, d: virt.attach_rbd(
        c, f"{PREFIX}vm1", f"{POOL}/extra", target="vdc",
        auth=virt.RbdAuth([("127.0.0.1'/><evil", 1)], CLIENT, "00000000-0000-4000-8000-000000000000"))),
    ("secret uuid", lambda c, b, d: virt.ensure_secret(c, None, CLIENT, uuid="x'/><evil/>")),
    ("replace image", lambda c, b, d: virt.replace_disk(c, f"{PREFIX}vm1", "vda", f"{POOL}/<x>")),
    ("pool name", lambda c, b, d: virt.ensure_rbd_pool(c, "a<b", POOL, None, CLIENT, "x")),
]


@pytest.mark.parametrize("label, call", INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_markup_in_any_xml_value_is_refused_before_libvirt(sandbox, conn, env, boot, guest_dir,
                                                          label, call):
    before = {n: virsh(sandbox, "dumpxml", "--inactive", n).stdout
              for n in virsh(sandbox, "list", "--all", "--name").stdout.split()}
    with pytest.raises(rbdnb.InvalidArgument) as err:
        call(conn, boot, guest_dir)
    assert "\n" not in str(err.value)
    after = {n: virsh(sandbox, "dumpxml", "--inactive", n).stdout
             for n in virsh(sandbox, "list", "--all", "--name").stdout.split()}
    assert after == before


def test_qemu_img_on_rbd_matches_the_cli(sandbox, cluster, env, boot):
    target = f"rbd:{POOL}/qimg"
    plan = qemu.create(target, "1G", cluster, dry_run=True)
    assert plan.lines[0].startswith(f"qemu-img create -f raw rbd:{POOL}/qimg:conf=")
    assert qemu.create(target, "1G", cluster).changed
    info = qemu.info(target, cluster)
    assert info["virtual-size"] == 1024**3 and info["format"] == "raw"
    cli_info = json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", f"{target}:conf={sandbox.conf_path}"],
        capture_output=True, check=True, timeout=60).stdout)
    assert cli_info["virtual-size"] == info["virtual-size"]
    assert qemu.resize(target, "2G", cluster).changed
    assert rbdnb.image_info(cluster, f"{POOL}/qimg").size == 2 * 1024**3
    # Run again (a runbook's second run): what is there already is left as it is.
    again = qemu.resize(target, "2G", cluster)
    assert not again.changed and again.message == "unchanged: already 2G"
    same = qemu.create(target, "2G", cluster, exist_ok=True)
    assert not same.changed and same.message.startswith("unchanged: exists")
    grown = qemu.create(target, "1G", cluster, exist_ok=True)  # created 1G, grown since
    assert not grown.changed and grown.message == "unchanged: exists, 2G (not 1G): left as it is"
    assert rbdnb.image_info(cluster, f"{POOL}/qimg").size == 2 * 1024**3
    seen = []
    result = qemu.convert(boot.image, f"rbd:{POOL}/qconv", cluster, source_format="qcow2",
                          progress=lambda d, t: seen.append(d))
    assert result.changed and seen[-1] == guest.DISK_SIZE
    assert rbdnb.verify_image(cluster, boot.image, f"{POOL}/qconv").identical
    for line in plan.lines + result.plan.lines:
        assert "AQ" not in line and "key=" not in line


def test_a_ceph_pool_name_on_two_clusters_is_never_guessed(sandbox, cluster, conn, env):
    """libvirt is machine-wide: another cluster may have a libvirt pool for a Ceph pool of the
    same name. Its monitors must never end up in this cluster's VMs."""
    other = virt.RbdAuth([("127.0.0.2", 1)], CLIENT, env["secret"])
    decoy = conn.storagePoolDefineXML(virt.rbd_pool_xml(f"{LV_POOL}-decoy", POOL, other), 0)
    try:
        with pytest.raises(rbdnb.InvalidArgument, match="different clusters: pass cluster="):
            virt.define_vm(conn, f"{PREFIX}ambiguous", [f"{POOL}/vm-1"])
        plan = virt.define_vm(conn, f"{PREFIX}ambiguous", [f"{POOL}/vm-1"], cluster=cluster,
                              dry_run=True)
        assert isinstance(plan, rbdnb.Plan)
        right = virt.auth_for(conn, rbdnb.parse_spec(f"{POOL}/vm-1"), None, cluster)
        assert right.hosts == virt.monitor_hosts(cluster) and ("127.0.0.2", 1) not in right.hosts
    finally:
        decoy.undefine()


def test_cleanup_leaves_no_domain_secret_or_pool(sandbox, cluster, conn, env):
    cleanup(conn, cluster)
    assert not [n for n in virsh(sandbox, "list", "--all", "--name").stdout.split()
                if n.startswith(PREFIX)]
    assert f"client.{CLIENT} secret" not in virsh(sandbox, "secret-list").stdout
    assert LV_POOL not in virsh(sandbox, "pool-list", "--all").stdout
    assert POOL not in subprocess.run(["ceph", "osd", "pool", "ls"], env={**os.environ,
                                      **sandbox.env()}, capture_output=True, text=True).stdout
