"""The IPython magics in a real InteractiveShell against the sandbox, cross-checked with the CLIs."""
import os
import uuid

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import rbdnb
from rbdnb.base.plan import Plan, Result
from rbdnb.sandbox import new_cephx_key

POOL = "mag-pool"


@pytest.fixture(scope="module")
def ip(sandbox):
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext rbdnb", store_history=False)
    result = shell.run_cell(f"%rbdnb connect --conf {sandbox.conf_path} --uri {sandbox.libvirt_uri}")
    assert result.success, result.error_in_exec
    yield shell
    shell.run_cell(f"%ceph osd pool delete {POOL} --yes --missing-ok")


def forget(sandbox, cli, vm, lvpool, client):
    """Remove a test's VM (off), libvirt pool, ceph secret and cephx user."""
    from rbdnb import virt
    conn = virt.connect_libvirt(sandbox.libvirt_uri)
    try:
        try:
            virt.destroy_vm(conn, vm)
        except rbdnb.NotFound:
            pass
        virt.undefine_vm(conn, vm, missing_ok=True)
        virt.delete_rbd_pool(conn, lvpool)
        for secret in conn.listAllSecrets():
            if secret.usageID() == f"client.{client} secret":
                secret.undefine()
    finally:
        conn.close()
    cli("ceph", "auth", "rm", f"client.{client}")


def run(ip, cell):
    """Run a cell; return its value, raising what it raised (UsageError for user errors)."""
    result = ip.run_cell(cell, store_history=False)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    if result.error_before_exec is not None:
        raise result.error_before_exec
    return result.result


def test_pool_image_and_listing(ip, cli):
    created = run(ip, f"%ceph osd pool create {POOL} 8 --exist-ok")
    assert isinstance(created, Result)
    assert POOL in cli("ceph", "osd", "pool", "ls", json_out=True)
    made = run(ip, f"%rbd create {POOL}/os-data --size 10G")
    assert made.changed and cli("rbd", "info", f"{POOL}/os-data", json_out=True)["size"] == 10 * 1024**3
    assert run(ip, f"%rbd create {POOL}/small 64").value.size == 64 * 1024**2  # bare = MiB, as rbd
    again = run(ip, f"%rbd create {POOL}/os-data 10G --exist-ok")
    assert not again.changed
    df = run(ip, f"df = %rbd ls {POOL}\ndf")
    assert isinstance(df, pd.DataFrame) and set(df.name) == set(cli("rbd", "ls", POOL, json_out=True))
    assert isinstance(ip.user_ns["df"], pd.DataFrame)
    info = run(ip, f"%rbd info {POOL}/os-data")
    assert info.id == cli("rbd", "info", f"{POOL}/os-data", json_out=True)["id"]
    assert run(ip, f"%rbd resize {POOL}/os-data --size 12G").changed
    assert cli("rbd", "info", f"{POOL}/os-data", json_out=True)["size"] == 12 * 1024**3
    assert int(run(ip, f"%rbd du {POOL}/os-data").iloc[0]["provisioned"]) == 12 * 1024**3


def test_snapshots_clones_and_removal(ip, cli):
    run(ip, f"%rbd create {POOL}/golden 1G --exist-ok")
    run(ip, f"%rbd snap create {POOL}/golden@base")
    assert [s["name"] for s in cli("rbd", "snap", "ls", f"{POOL}/golden", json_out=True)] == ["base"]
    result = run(ip, f"%rbd clone {POOL}/golden@base {POOL}/vm-{{i:02d}} --count 5")
    assert list(result.value.status) == ["created"] * 5
    kids = run(ip, f"%rbd children {POOL}/golden@base")
    assert sorted(kids.image) == sorted(k["image"] for k in cli(
        "rbd", "children", f"{POOL}/golden@base", json_out=True))
    assert run(ip, f"%rbd clone {POOL}/golden@base {POOL}/single").changed
    assert run(ip, f"%rbd flatten {POOL}/single").changed
    assert "parent" not in cli("rbd", "info", f"{POOL}/single", json_out=True)
    snaps = run(ip, f"%rbd snap ls {POOL}/golden")
    assert bool(snaps.iloc[0]["protected"]) is True
    with pytest.raises(UsageError, match="clones depend on"):
        run(ip, f"%rbd snap unprotect {POOL}/golden@base")
    run(ip, f"%rbd snap create {POOL}/single@s1")
    with pytest.raises(UsageError, match="add --yes to do it"):
        run(ip, f"%rbd snap rollback {POOL}/single@s1")
    assert run(ip, f"%rbd snap rollback {POOL}/single@s1 --yes").changed
    assert run(ip, f"%rbd snap rm {POOL}/single@s1").changed
    assert run(ip, f"%rbd mv {POOL}/single {POOL}/renamed").changed
    # rbd renames within a pool only; the magic refuses, as the CLI does, naming cp.
    with pytest.raises(UsageError, match="different pools.*%rbd cp"):
        run(ip, f"%rbd mv {POOL}/renamed rbd/elsewhere")
    assert "renamed" in cli("rbd", "ls", POOL, json_out=True)
    assert run(ip, f"%rbd cp {POOL}/renamed {POOL}/copied").changed
    with pytest.raises(UsageError, match="add --yes to do it"):
        run(ip, f"%rbd rm {POOL}/copied")
    assert "copied" in cli("rbd", "ls", POOL, json_out=True)
    assert run(ip, f"%rbd rm {POOL}/copied --yes").changed
    assert "copied" not in cli("rbd", "ls", POOL, json_out=True)
    run(ip, f"%rbd snap create {POOL}/renamed@a")
    assert run(ip, f"%rbd snap purge {POOL}/renamed --yes").changed


def test_dry_runs_change_nothing(ip, cli, cluster_state):
    before = cluster_state()
    for cell in (f"%rbd create {POOL}/dry 1G --dry-run", f"%rbd rm {POOL}/os-data --dry-run",
                 "%ceph osd pool create dry-pool --dry-run",
                 f"%rbd clone {POOL}/golden@base {POOL}/d-{{i}} --count 3 --dry-run",
                 f"%ceph auth get-or-create client.dry --pool {POOL} --dry-run"):
        plan = run(ip, cell)
        assert isinstance(plan, Plan), cell
        assert "```sh" in plan._repr_markdown_()
    run(ip, "%config RbdnbMagics.dry_run = True")
    try:
        assert isinstance(run(ip, f"%rbd create {POOL}/dry2 1G"), Plan)
    finally:
        run(ip, "%config RbdnbMagics.dry_run = False")
    assert cluster_state() == before


def test_user_errors_are_one_line(ip):
    for cell, text in [(f"%rbd create {POOL}/x 10Q", "size '10Q' is not valid"),
                       (f"%rbd info {POOL}/nope", f"image {POOL}/nope not found"),
                       ("%rbd frobnicate", "unknown command frobnicate"),
                       ("%rbd create", "rbd: image name was not specified"),  # rbd's own
                       (f"%rbd create '{POOL}/unclosed", "a quote that is not closed"),
                       ("%ceph auth get-or-create client.x mon", "caps come in pairs")]:
        with pytest.raises(UsageError) as err:
            run(ip, cell)
        assert text in str(err.value) and "\n" not in str(err.value).strip()


def test_help(ip, capsys):
    run(ip, "%rbd --help")
    assert "snap rollback" in capsys.readouterr().out
    run(ip, "%rbd clone --help")
    assert "--count" in capsys.readouterr().out
    assert "RBD images" in ip.find_line_magic("rbd").__doc__


def test_cell_magic_runs_each_line_and_stops_at_the_first_error(ip, cli):
    value = run(ip, f"%%rbd\n# a comment\ncreate {POOL}/cell-a 8M\ncreate {POOL}/cell-b 8M\n")
    assert value.changed
    with pytest.raises(UsageError):
        run(ip, f"%%rbd\ncreate {POOL}/cell-c 8M\ninfo {POOL}/missing\ncreate {POOL}/cell-d 8M")
    names = cli("rbd", "ls", POOL, json_out=True)
    assert {"cell-a", "cell-b", "cell-c"} <= set(names) and "cell-d" not in names


def test_ceph_and_qemu_img_magics(ip, cli, sandbox, tmp_path):
    health = run(ip, "%ceph health")
    assert health.status == cli("ceph", "health", json_out=True)["status"]
    assert POOL in set(run(ip, "%ceph df").pool)
    entity = f"client.mag{uuid.uuid4().hex[:6]}"
    assert run(ip, f"%ceph auth get-or-create {entity} --pool {POOL}").changed
    caps = cli("ceph", "auth", "get", entity, json_out=True)[0]["caps"]
    assert caps["osd"] == f"profile rbd pool={POOL}"
    assert entity in set(run(ip, "%ceph auth ls").entity)
    rbdnb.delete_user(rbdnb.connect(str(sandbox.conf_path)), entity, confirm=True)
    assert run(ip, f"%qemu-img create -f raw rbd:{POOL}/image3 1G").changed
    info = run(ip, f"%qemu-img info rbd:{POOL}/image3")
    assert int(info.loc["virtual-size"].iloc[0]) == 1024**3
    assert run(ip, f"%qemu_img resize rbd:{POOL}/image3 2G").changed
    assert cli("rbd", "info", f"{POOL}/image3", json_out=True)["size"] == 2 * 1024**3
    raw = tmp_path / "d.raw"
    raw.write_bytes(os.urandom(1024 * 1024))
    assert run(ip, f"%qemu-img convert -f raw -O raw {raw} rbd:{POOL}/conv").changed
    assert rbdnb.verify_image(rbdnb.connect(str(sandbox.conf_path)), raw, f"{POOL}/conv").identical


def test_output_guard_redacts_keys(ip, capfd):
    key = new_cephx_key()
    ip.run_cell(f"print('the key is {key}')")
    ip.run_cell(f"from IPython.display import display, HTML; display(HTML('<b>{key}</b>'))")
    out = capfd.readouterr().out
    assert key not in out and "[cephx key redacted]" in out


def test_virsh_magics_on_definitions(ip, sandbox, cli):
    import subprocess
    run_id = uuid.uuid4().hex[:6]
    client, lvpool, vm = f"magv{run_id}", f"mag-{run_id}-ceph", f"rbdnb-mag-{run_id}"

    def virsh(*args):
        return subprocess.run(["virsh", "-c", sandbox.libvirt_uri, *args], capture_output=True,
                              text=True, timeout=60).stdout
    run(ip, f"%ceph osd pool create {POOL} --exist-ok")
    run(ip, f"%ceph auth get-or-create client.{client} --pool {POOL}")
    run(ip, f"%rbd create {POOL}/v-root 64M --exist-ok")
    run(ip, f"%rbd create {POOL}/v-data 32M --exist-ok")
    try:
        secret = run(ip, f"%virsh secret-define --client {client}").value
        assert secret in virsh("secret-list")
        assert run(ip, f"%virsh pool-define-rbd {lvpool} {POOL} --client {client}").changed
        assert lvpool in set(run(ip, "%virsh pool-list").name)
        assert "v-root" in set(run(ip, f"%virsh vol-list {lvpool}").name)
        assert secret in set(run(ip, "%virsh secret-list").uuid)
        assert run(ip, f"%virsh define {vm} --disk {POOL}/v-root").changed
        assert vm in set(run(ip, "%virsh list --all").name)
        xml = run(ip, f"%virsh dumpxml {vm}")
        assert f"name='{POOL}/v-root'" in xml or f'name="{POOL}/v-root"' in xml
        assert "```xml" in xml._repr_markdown_()
        plan = run(ip, f"%virsh attach-rbd {vm} {POOL}/v-data --target vdb --config --dry-run")
        # (by the disk's target: the client's random name may hold the letters vdb)
        assert isinstance(plan, Plan) and "dev='vdb'" not in virsh("dumpxml", "--inactive", vm)
        assert run(ip, f"%virsh attach-rbd {vm} {POOL}/v-data --target vdb --config").changed
        assert f"{POOL}/v-data" in virsh("dumpxml", "--inactive", vm)
        assert run(ip, f"%virsh detach-rbd {vm} vdb --config").changed
        assert f"{POOL}/v-data" not in virsh("dumpxml", "--inactive", vm)
        assert run(ip, f"%virsh replace-disk {vm} vda {POOL}/v-data").changed
        assert f"{POOL}/v-data" in virsh("dumpxml", "--inactive", vm)
        with pytest.raises(UsageError, match="is not valid"):
            run(ip, f"%virsh attach-rbd {vm} {POOL}/v-data --target 'vd\"x'")
    finally:
        forget(sandbox, cli, vm, lvpool, client)
    assert vm not in virsh("list", "--all", "--name")


def test_remaining_subcommands(ip, cli, sandbox, tmp_path):
    raw = tmp_path / "disk.raw"
    raw.write_bytes(os.urandom(2 * 1024 * 1024))
    run(ip, f"%ceph osd pool create {POOL} --exist-ok")
    assert run(ip, f"%rbd import {raw} {POOL}/imported").changed
    assert cli("rbd", "info", f"{POOL}/imported", json_out=True)["size"] == 2 * 1024 * 1024
    out = tmp_path / "out.qcow2"
    assert run(ip, f"%rbd export {POOL}/imported {out} -O qcow2").changed
    assert rbdnb.checksum_file(out) == rbdnb.checksum_file(raw)
    run(ip, f"%rbd snap create {POOL}/imported@p")
    assert run(ip, f"%rbd snap protect {POOL}/imported@p").changed
    assert cli("rbd", "snap", "ls", f"{POOL}/imported", json_out=True)[0]["protected"] == "true"
    assert run(ip, f"%rbd snap unprotect {POOL}/imported@p").changed
    # virsh start/destroy on a VM with one RBD disk and no kernel (SeaBIOS finds nothing to boot)
    run_id = uuid.uuid4().hex[:6]
    client, lvpool, vm = f"magr{run_id}", f"magr-{run_id}-ceph", f"rbdnb-magr-{run_id}"
    run(ip, f"%ceph auth get-or-create client.{client} --pool {POOL}")
    try:
        run(ip, f"%virsh pool-define-rbd {lvpool} {POOL} --client {client}")
        run(ip, f"%virsh define {vm} --disk {POOL}/imported")
        assert run(ip, f"%virsh start {vm}").changed
        assert dict(zip(*[run(ip, "%virsh list")[c] for c in ("name", "running")]))[vm]
        assert run(ip, f"%virsh destroy {vm}").changed
        assert run(ip, f"%virsh undefine {vm} --yes").changed
    finally:
        forget(sandbox, cli, vm, lvpool, client)
    spare = f"spare-{run_id}"
    run(ip, f"%ceph osd pool create {spare}")
    with pytest.raises(UsageError, match="add --yes to do it"):
        run(ip, f"%ceph osd pool delete {spare}")
    assert run(ip, f"%ceph osd pool delete {spare} --yes").changed
    assert spare not in cli("ceph", "osd", "pool", "ls", json_out=True)
