"""A fleet of two libvirt hosts on the sandbox (``hosts=2``): one secret UUID and one rbd pool
on both, a running VM live-migrated there and back with no disk copied and no reboot, and
every refusal before anything changes. Cross-checked with the real virsh on each host.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest
from IPython.core.interactiveshell import InteractiveShell

import rbdnb
from rbdnb import virt
from rbdnb.errors import DomainNotFound, InvalidArgument, RbdnbError
from rbdnb.virt import guest

RUN = uuid.uuid4().hex[:6]
POOL = f"fleet-{RUN}"
LV_POOL = f"fleet-lp-{RUN}"
CLIENT = f"fleet{RUN}"
VM = f"rbdnb-fleet-{RUN}"
DEAD = "qemu:///system?socket=/nonexistent/rbdnb-fleet-test/libvirt-sock"


def virsh(uri, *args, check=True):
    proc = subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True,
                          timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc.stdout


def where(uris, name=VM):
    """uri -> (defined, running) of the VM, as virsh sees each host."""
    return {u: (name in virsh(u, "list", "--all", "--name").split(),
                name in virsh(u, "list", "--name").split()) for u in uris}


def libvirt_state(uris):
    return {u: [virsh(u, *a) for a in (["list", "--all"], ["secret-list"],
                                       ["pool-list", "--all"])] for u in uris}


@pytest.fixture(scope="module")
def hosts(sandbox):
    uris = sandbox.host_uris()
    assert len(uris) == 2, uris
    return uris


@pytest.fixture(scope="module")
def guest_dir():
    path = tempfile.mkdtemp(prefix="rbdnb-it-fleet-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cleanup(uris, cluster):
    for uri in uris:
        conn = virt.connect_libvirt(uri)
        try:
            for dom in conn.listAllDomains():
                if RUN in dom.name():
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
            virt.delete_rbd_pool(conn, LV_POOL)
            for s in conn.listAllSecrets():
                if s.usageID() == f"client.{CLIENT} secret":
                    s.undefine()
        finally:
            conn.close()
    rbdnb.delete_user(cluster, CLIENT, confirm=True, missing_ok=True)
    rbdnb.delete_pool(cluster, POOL, confirm=True, missing_ok=True)


@pytest.fixture(scope="module")
def fleet(sandbox, cluster, hosts, guest_dir):
    rbdnb.create_pool(cluster, POOL, 8)
    rbdnb.create_user(cluster, CLIENT, [POOL])
    boot = guest.build(os.path.join(guest_dir, "guest.qcow2"))
    rbdnb.import_image(cluster, boot.image, f"{POOL}/golden")
    rbdnb.create_snapshot(cluster, f"{POOL}/golden@base")
    yield {"boot": boot}
    _cleanup(hosts, cluster)


def test_the_sandbox_has_two_hosts_with_their_own_host_uuids(sandbox, hosts):
    status = sandbox.status()
    assert [h["name"] for h in status.hosts] == ["host1", "host2"]
    assert all(h["reachable"] for h in status.hosts), status.hosts
    uuids = [re.search(r"<uuid>(.*?)</uuid>", virsh(u, "capabilities")).group(1)
             for u in hosts]
    assert uuids[0] != uuids[1]
    assert sandbox.env()["RBDNB_LIBVIRT_URIS"].split() == hosts
    assert "host2:" in status.summary()


def test_the_fleet_gets_one_secret_uuid_and_the_pool_everywhere(cluster, hosts, fleet):
    result = virt.apply_fleet(cluster, [*hosts, DEAD], POOL, libvirt_pool=LV_POOL,
                              client=CLIENT)
    rows = result.value
    assert list(rows.ok) == [True, True, False], rows
    assert "not reachable" in rows.outcome[2] and "2 of 3" in result.message
    uuid_ = rows.secret[0]
    for uri in hosts:  # as virsh sees each host: the same UUID, the pool running
        listed = [line.split() for line in virsh(uri, "secret-list").splitlines()]
        assert [uuid_, "ceph", f"client.{CLIENT}", "secret"] in listed, listed
        info = virsh(uri, "pool-info", LV_POOL)
        assert re.search(r"State:\s+running", info) and re.search(r"Autostart:\s+yes", info)
        assert f"<secret uuid='{uuid_}'/>" in virsh(uri, "pool-dumpxml", LV_POOL)
    again = virt.apply_fleet(cluster, hosts, POOL, libvirt_pool=LV_POOL, client=CLIENT)
    assert not again.changed and again.value.ok.all() and "unchanged" in again.message


def test_a_running_vm_moves_there_and_back_with_no_disk_copied(cluster, hosts, fleet, cli):
    h1, h2 = hosts
    rbdnb.clone(cluster, f"{POOL}/golden@base", f"{POOL}/{VM}", exist_ok=True)
    conn = virt.connect_libvirt(h1)
    try:
        console = os.path.join(os.path.dirname(fleet["boot"].image), f"{VM}.console.log")
        virt.define_vm(conn, VM, [f"{POOL}/{VM}"], boot=fleet["boot"], cluster=cluster,
                       console_log=console)
        virt.start_vm(conn, VM)
        virt.wait_guest(conn, VM, timeout=120)
    finally:
        conn.close()
    before = where(hosts)
    assert before == {h1: (True, True), h2: (False, False)}
    plan = virt.migrate(VM, h1, h2, dry_run=True)
    assert "--live" in plan.lines[0] and where(hosts) == before

    moved = virt.migrate(VM, h1, h2)
    stats = moved.value
    assert moved.changed and where(hosts) == {h1: (False, False), h2: (True, True)}
    assert stats["disk_bytes"] == 0 and stats["memory_bytes"] > 0
    assert stats["downtime_ms"] is not None and stats["rebooted"] is False
    assert stats["uptime_after"] > stats["uptime_before"]
    # The disk XML on host2 is the same network disk; its console is host2's own file.
    xml = virsh(h2, "dumpxml", VM)
    assert f"name='{POOL}/{VM}'" in xml and "protocol='rbd'" in xml
    assert console not in xml and f"{VM}.console." in xml
    # On host2 the guest reads what the host writes into a disk attached there.
    conn2 = virt.connect_libvirt(h2)
    try:
        seen = virt.check_hotplug(conn2, cluster, VM, f"{POOL}/{VM}-data", target="vdb",
                                  timeout=120)
        assert "sha256" in seen.message
    finally:
        conn2.close()
    # A re-run is "unchanged", and moving it back restores where it began.
    assert not virt.migrate(VM, h1, h2).changed
    back = virt.migrate(VM, h2, h1)
    assert back.changed and back.value["rebooted"] is False
    assert where(hosts) == before
    info = cli("rbd", "info", f"{POOL}/{VM}", json_out=True)
    assert info["parent"]["image"] == "golden"  # the disk is the clone it was, never copied


def test_round_trips_measure_each_move(cluster, hosts, fleet):
    h1, h2 = hosts
    if not where(hosts)[h1][1]:
        pytest.fail("the VM of the previous test is not running on host1")
    result = virt.round_trips(VM, h1, h2, 1)
    table = result.value
    assert list(table.move) == ["1 there", "1 back"] and not result.changed
    assert (table.disk_bytes == 0).all() and table.rebooted.eq(False).all()
    assert "never rebooted" in result.message and where(hosts)[h1] == (True, True)


def test_bad_migrations_are_refused_in_one_line_and_change_nothing(cluster, hosts, fleet,
                                                                   guest_dir):
    h1, h2 = hosts
    before = libvirt_state(hosts)
    cases = [
        (lambda: virt.migrate(VM, h1, h1), InvalidArgument, "to itself"),
        (lambda: virt.migrate(f"rbdnb-nothere-{RUN}", h1, h2), DomainNotFound, "not defined"),
        (lambda: virt.migrate(VM, h1, DEAD), RbdnbError, "not reachable"),
        (lambda: virt.migrate(VM, h1, h2, timeout=0), InvalidArgument, "timeout"),
    ]
    for call, kind, text in cases:
        with pytest.raises(kind) as caught:
            call()
        assert text in str(caught.value) and "\n" not in str(caught.value)
    # A VM with a file disk: a live migration copies no storage.
    conn = virt.connect_libvirt(h1)
    try:
        filevm = f"rbdnb-file-{RUN}"
        virt.define_file_vm(conn, filevm, fleet["boot"].image, guest_dir, boot=fleet["boot"])
        virt.start_vm(conn, filevm)
        with pytest.raises(InvalidArgument, match="not on RBD"):
            virt.migrate(filevm, h1, h2)
        virt.destroy_vm(conn, filevm)
        virt.undefine_vm(conn, filevm)
    finally:
        conn.close()
    # A destination without the disk's secret.
    uuid_ = virt.apply_fleet(cluster, hosts, POOL, libvirt_pool=LV_POOL,
                             client=CLIENT).value.secret[0]
    virsh(h2, "pool-destroy", LV_POOL)
    virsh(h2, "pool-undefine", LV_POOL)
    virsh(h2, "secret-undefine", uuid_)
    try:
        with pytest.raises(InvalidArgument, match=f"has no libvirt secret {uuid_}"):
            virt.migrate(VM, h1, h2)
        assert where(hosts)[h1] == (True, True) and not where(hosts)[h2][0]
    finally:
        virt.apply_fleet(cluster, hosts, POOL, libvirt_pool=LV_POOL, client=CLIENT)
    assert libvirt_state(hosts) == before


def test_the_magics_migrate_and_apply_the_fleet(sandbox, cluster, hosts, fleet):
    h1, h2 = hosts
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext rbdnb", store_history=False)
    assert shell.run_cell(f"%rbdnb connect --conf {sandbox.conf_path} --uri {h1}").success

    def cell(line):
        result = shell.run_cell(line, store_history=False)
        error = result.error_in_exec or result.error_before_exec
        if error is not None:
            raise error
        return result.result

    rows = cell(f"%virsh pool-define-rbd {LV_POOL} {POOL} --client {CLIENT} "
                f"--host {h1} --host {h2}").value
    assert rows.ok.all() and not rows.changed.any()
    with pytest.raises(Exception, match="--live"):
        cell(f"%virsh migrate {VM} {h2}")
    moved = cell(f"%virsh migrate --live --persistent --undefinesource {VM} {h2}")
    assert moved.changed and where(hosts)[h2] == (True, True)
    # From host2, back to host1: a dry run first, then for real.
    assert shell.run_cell(f"%rbdnb connect --conf {sandbox.conf_path} --uri {h2}").success
    try:
        plan = cell(f"%virsh migrate --live {VM} {h1} --dry-run")
        assert plan.lines[0].startswith("virsh -c") and where(hosts)[h2] == (True, True)
        assert cell(f"%virsh migrate --live {VM} {h1}").value["downtime_ms"] is not None
        assert where(hosts)[h1] == (True, True)
    finally:  # the shell is shared: leave it on the sandbox's first host
        shell.run_cell(f"%rbdnb connect --conf {sandbox.conf_path} --uri {h1}")


def test_a_host_whose_libvirtd_died_is_brought_back_by_up(sandbox, hosts):
    from rbdnb.sandbox import hosts as sandbox_hosts
    record = json.loads((sandbox.dir / "sandbox.json").read_text())["hosts"][0]
    sandbox_hosts.signal_host(record)
    assert sandbox_hosts.wait_gone(record)
    assert not [h for h in sandbox.status().hosts if h["name"] == "host2"][0]["reachable"]
    proc = subprocess.run([sys.executable, "-m", "rbdnb", "sandbox", "up", "--dir",
                           str(sandbox.dir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "libvirtd of host2" in proc.stdout, proc.stdout
    assert all(h["reachable"] for h in sandbox.status().hosts)
    again = json.loads((sandbox.dir / "sandbox.json").read_text())["hosts"][0]
    assert again["uuid"] == record["uuid"] and again["uri"] == record["uri"]
