"""The core library on the real sandbox, cross-checked with the rbd, ceph and qemu-img CLIs."""
import json
import os
import subprocess
import time

import pytest

import rbdnb
from rbdnb.base.plan import Plan

MiB = 1024**2


def write(cluster, spec, offset, data):
    from rbdnb.ceph.images import open_image
    from rbdnb.base.specs import parse_spec
    with open_image(cluster, parse_spec(spec)) as image:
        image.write(data, offset)


def read(cluster, spec, offset, length):
    from rbdnb.ceph.images import open_image
    from rbdnb.base.specs import parse_spec
    with open_image(cluster, parse_spec(spec, snap="optional"), read_only=True) as image:
        return image.read(offset, length)


# -- connection and preflight -----------------------------------------------------------------
def test_preflight_matches_ceph_status(cluster, cli):
    pre = rbdnb.preflight(cluster)
    status = cli("ceph", "status", json_out=True)
    assert pre.fsid == status["fsid"] and pre.status == status["health"]["status"]
    assert pre.osds_up == 1 and pre.osds_total == 1 and not pre.full_osds
    assert pre.client_version.startswith("16.2")
    assert "16.2" in " ".join(v for vs in pre.cluster_versions.values() for v in vs)
    compat = cli("ceph", "osd", "dump", json_out=True)["require_min_compat_client"]
    assert pre.require_min_compat_client == compat
    assert pre.clone_format == (1 if compat in ("jewel", "luminous") else 2)
    frame = pre.to_frame()
    assert frame.loc["health", "value"] == "HEALTH_OK"


def test_connect_to_an_unreachable_cluster_times_out(sandbox, tmp_path):
    conf = sandbox.conf_path.read_text()
    port = sandbox.status().mon_host.rsplit(":", 1)[1]
    from rbdnb.sandbox import pick_free_port
    dead = tmp_path / "dead.conf"
    dead.write_text(conf.replace(f"127.0.0.1:{port}", f"127.0.0.1:{pick_free_port()}"))
    t0 = time.monotonic()
    with pytest.raises(rbdnb.Timeout, match="cannot reach the cluster"):
        rbdnb.connect(str(dead), keyring=str(sandbox.keyring_path), timeout=3)
    assert time.monotonic() - t0 < 20


def test_connect_with_a_wrong_keyring_is_refused(sandbox, tmp_path):
    from rbdnb.sandbox import new_cephx_key, render_keyring
    bad = tmp_path / "bad.keyring"
    bad.write_text(render_keyring({"client.admin": (new_cephx_key(), {})}))
    with pytest.raises((rbdnb.PermissionDenied, rbdnb.Timeout)):
        rbdnb.connect(str(sandbox.conf_path), keyring=str(bad), timeout=5)


def test_missing_conf_is_a_clear_error(tmp_path):
    with pytest.raises(rbdnb.InvalidArgument, match="does not exist"):
        rbdnb.connect(str(tmp_path / "nope.conf"))


# -- pools ------------------------------------------------------------------------------------
def test_create_pool_is_initialised_and_idempotent(cluster, cli):
    name = "core-pool-a"
    plan = rbdnb.create_pool(cluster, name, 16, dry_run=True)
    assert isinstance(plan, Plan) and name not in cli("ceph", "osd", "pool", "ls", json_out=True)
    assert plan.lines[0].endswith(f"osd pool create {name} 16 16")
    result = rbdnb.create_pool(cluster, name, 16)
    assert result.changed and result.plan.lines == plan.lines
    try:
        detail = {p["pool_name"]: p for p in cli("ceph", "osd", "pool", "ls", "detail",
                                                 json_out=True)}
        assert detail[name]["pg_num"] == 16
        assert "rbd" in detail[name]["application_metadata"]
        again = rbdnb.create_pool(cluster, name, 16, exist_ok=True)
        assert not again.changed and "unchanged" in again.message
        with pytest.raises(rbdnb.PoolExists, match=f"pool {name} already exists"):
            rbdnb.create_pool(cluster, name)
        with pytest.raises(rbdnb.Conflict, match="pg_num 16, not 32"):
            rbdnb.create_pool(cluster, name, 32, exist_ok=True)
        frame = rbdnb.list_pools(cluster).set_index("pool")
        assert frame.loc[name, "pg_num"] == 16 and frame.loc[name, "application"] == "rbd"
        assert frame.loc[name, "id"] == detail[name]["pool_id"]
        with pytest.raises(rbdnb.ConfirmationRequired):
            rbdnb.delete_pool(cluster, name)
        assert name in cli("ceph", "osd", "pool", "ls", json_out=True)
    finally:
        rbdnb.delete_pool(cluster, name, confirm=True, missing_ok=True)
    assert name not in cli("ceph", "osd", "pool", "ls", json_out=True)
    assert not rbdnb.delete_pool(cluster, name, confirm=True, missing_ok=True).changed
    with pytest.raises(rbdnb.PoolNotFound):
        rbdnb.delete_pool(cluster, name, confirm=True)


# -- users ------------------------------------------------------------------------------------
def test_least_privilege_user_works_in_its_pool_only(cluster, pool, cli, sandbox, tmp_path):
    other = pool + "-other"
    rbdnb.create_pool(cluster, other, 8)
    user = "lp-" + pool[:20]
    try:
        result = rbdnb.create_user(cluster, user, [pool])
        assert result.changed
        got = cli("ceph", "auth", "get", f"client.{user}", json_out=True)[0]
        assert got["caps"] == {"mon": "profile rbd", "osd": f"profile rbd pool={pool}",
                               "mgr": f"profile rbd pool={pool}"}
        assert got["key"] not in str(result) + result._repr_markdown_() + str(result.plan)
        assert not rbdnb.create_user(cluster, user, [pool], exist_ok=True).changed
        with pytest.raises(rbdnb.Conflict, match="other caps"):
            rbdnb.create_user(cluster, user, [other], exist_ok=True)
        with pytest.raises(rbdnb.UserExists):
            rbdnb.create_user(cluster, user, [pool])

        key = rbdnb.get_key(cluster, user)
        assert key.reveal() == got["key"]
        for shown in (repr(key), str(key), f"{key}", f"{key!r}", key._repr_html_()):
            assert got["key"] not in shown and "redacted" in shown
        keyring = tmp_path / f"ceph.client.{user}.keyring"
        assert rbdnb.write_keyring(cluster, user, keyring).changed
        assert keyring.stat().st_mode & 0o777 == 0o600
        assert not rbdnb.write_keyring(cluster, user, keyring).changed
        users = rbdnb.list_users(cluster)
        assert f"client.{user}" in set(users.entity)
        assert got["key"] not in users.to_string() + users.to_html()

        with rbdnb.connect(str(sandbox.conf_path), client=user, keyring=str(keyring)) as mine:
            assert rbdnb.create_image(mine, f"{pool}/by-user", "16M").changed
            with pytest.raises(rbdnb.PermissionDenied, match=f"pool {other}"):
                rbdnb.create_image(mine, f"{other}/nope", "16M")
            with pytest.raises(rbdnb.PermissionDenied):
                rbdnb.list_images(mine, other)
            with pytest.raises(rbdnb.PermissionDenied):
                rbdnb.create_pool(mine, "not-mine")
        assert cli("rbd", "ls", pool, json_out=True) == ["by-user"]
        assert cli("rbd", "ls", other, json_out=True) == []
        # The real CLI agrees that the user is confined.
        denied = cli("rbd", "ls", other, "--id", user, "--keyring", str(keyring), check=False)
        assert denied.returncode != 0
    finally:
        rbdnb.delete_user(cluster, user, confirm=True, missing_ok=True)
        rbdnb.delete_pool(cluster, other, confirm=True, missing_ok=True)


# -- images -----------------------------------------------------------------------------------
def test_image_create_info_list_match_rbd_cli(cluster, pool, cli):
    spec = f"{pool}/disk"
    result = rbdnb.create_image(cluster, spec, "96M", features=["layering", "exclusive-lock"],
                                object_size="1M")
    assert result.changed
    assert result.plan.lines == [f"rbd --conf {cluster.conffile} create --size 100663296B "
                                 f"--image-feature layering,exclusive-lock --object-size 1048576B "
                                 f"{spec}"]
    info = rbdnb.image_info(cluster, spec)
    cli_info = cli("rbd", "info", spec, json_out=True)
    assert info.size == cli_info["size"] == 96 * MiB
    assert info.id == cli_info["id"] and info.order == cli_info["order"] == 20
    assert info.object_size == cli_info["object_size"]
    assert info.block_name_prefix == cli_info["block_name_prefix"]
    assert sorted(info.features) == sorted(cli_info["features"])
    assert info.format == cli_info["format"] == 2
    rbdnb.create_image(cluster, f"{pool}/disk2", "10G")
    frame = rbdnb.list_images(cluster, pool).set_index("name")
    cli_list = {i["image"]: i for i in cli("rbd", "ls", "-l", pool, json_out=True)}
    assert set(frame.index) == set(cli_list) == {"disk", "disk2"}
    for name, row in frame.iterrows():
        assert row["size"] == cli_list[name]["size"]
        assert row["format"] == cli_list[name]["format"]
    assert sorted(rbdnb.image_names(cluster, pool)) == sorted(cli("rbd", "ls", pool, json_out=True))

    again = rbdnb.create_image(cluster, spec, "96M", exist_ok=True)
    assert not again.changed and again.message.startswith("unchanged")
    with pytest.raises(rbdnb.Conflict, match="exists with size 96M, not 1G"):
        rbdnb.create_image(cluster, spec, "1G", exist_ok=True)
    with pytest.raises(rbdnb.ImageExists, match=f"image {spec} already exists"):
        rbdnb.create_image(cluster, spec, "96M")


def test_resize_grow_shrink_refused_then_allowed(cluster, pool, cli):
    spec = f"{pool}/grow"
    rbdnb.create_image(cluster, spec, "1G")
    assert rbdnb.resize_image(cluster, spec, "10G").changed
    assert cli("rbd", "info", spec, json_out=True)["size"] == 10 * 1024**3
    assert not rbdnb.resize_image(cluster, spec, "10G").changed
    with pytest.raises(rbdnb.ConfirmationRequired, match="allow_shrink=True"):
        rbdnb.resize_image(cluster, spec, "2G")
    assert cli("rbd", "info", spec, json_out=True)["size"] == 10 * 1024**3
    assert rbdnb.resize_image(cluster, spec, "2G", allow_shrink=True).changed
    assert cli("rbd", "info", spec, json_out=True)["size"] == 2 * 1024**3


def test_remove_refuses_snapshots_and_children_unless_told(cluster, pool, cli):
    spec = f"{pool}/victim"
    rbdnb.create_image(cluster, spec, "64M")
    rbdnb.create_snapshot(cluster, f"{spec}@one")
    rbdnb.create_snapshot(cluster, f"{spec}@two")
    with pytest.raises(rbdnb.ConfirmationRequired):
        rbdnb.remove_image(cluster, spec)
    with pytest.raises(rbdnb.ImageHasSnapshots, match=r"has 2 snapshot\(s\) \(one, two\)"):
        rbdnb.remove_image(cluster, spec, confirm=True)
    rbdnb.clone(cluster, f"{spec}@one", f"{pool}/kid")
    with pytest.raises(rbdnb.ImageHasChildren, match=f"{pool}/kid"):
        rbdnb.remove_image(cluster, spec, confirm=True, purge_snapshots=True)
    assert "victim" in cli("rbd", "ls", pool, json_out=True)
    assert len(cli("rbd", "snap", "ls", spec, json_out=True)) == 2
    rbdnb.flatten(cluster, f"{pool}/kid")
    result = rbdnb.remove_image(cluster, spec, confirm=True, purge_snapshots=True)
    assert result.changed and "2 snapshot" in result.message
    assert cli("rbd", "ls", pool, json_out=True) == ["kid"]
    assert not rbdnb.remove_image(cluster, spec, confirm=True, missing_ok=True).changed
    with pytest.raises(rbdnb.ImageNotFound, match=f"image {spec} not found"):
        rbdnb.remove_image(cluster, spec, confirm=True)


def test_rename_copy_and_du(cluster, pool, cli):
    rbdnb.create_image(cluster, f"{pool}/src", "32M")
    payload = os.urandom(3 * MiB)
    write(cluster, f"{pool}/src", 4 * MiB, payload)
    assert rbdnb.rename_image(cluster, f"{pool}/src", "orig").changed
    assert cli("rbd", "ls", pool, json_out=True) == ["orig"]
    assert rbdnb.copy_image(cluster, f"{pool}/orig", f"{pool}/dup").changed
    assert rbdnb.checksum_image(cluster, f"{pool}/orig") == rbdnb.checksum_image(cluster, f"{pool}/dup")
    assert read(cluster, f"{pool}/dup", 4 * MiB, 3 * MiB) == payload
    with pytest.raises(rbdnb.ImageExists):
        rbdnb.rename_image(cluster, f"{pool}/orig", "dup")
    ours = rbdnb.disk_usage(cluster, f"{pool}/orig").iloc[0]
    theirs = cli("rbd", "du", f"{pool}/orig", json_out=True)["images"][0]
    assert ours["provisioned"] == theirs["provisioned_size"] == 32 * MiB
    assert ours["used"] == theirs["used_size"] == 4 * MiB  # one whole 4M object


# -- snapshots --------------------------------------------------------------------------------
def test_snapshot_lifecycle_matches_rbd_snap_ls(cluster, pool, cli):
    spec = f"{pool}/snappy"
    rbdnb.create_image(cluster, spec, "16M")
    write(cluster, spec, 0, b"A" * 4096)
    assert rbdnb.create_snapshot(cluster, f"{spec}@s1").changed
    assert not rbdnb.create_snapshot(cluster, f"{spec}@s1", exist_ok=True).changed
    with pytest.raises(rbdnb.SnapshotExists):
        rbdnb.create_snapshot(cluster, f"{spec}@s1")
    rbdnb.create_snapshot(cluster, f"{spec}@s2")
    ours = rbdnb.list_snapshots(cluster, spec)
    theirs = cli("rbd", "snap", "ls", spec, json_out=True)
    assert list(ours.name) == [s["name"] for s in theirs]
    assert list(ours.id) == [s["id"] for s in theirs]
    assert list(ours["size"]) == [s["size"] for s in theirs]

    assert rbdnb.protect_snapshot(cluster, f"{spec}@s1").changed
    assert not rbdnb.protect_snapshot(cluster, f"{spec}@s1").changed
    assert {s["name"]: s["protected"] for s in cli("rbd", "snap", "ls", spec, json_out=True)} == \
        {"s1": "true", "s2": "false"}
    with pytest.raises(rbdnb.SnapshotProtected):
        rbdnb.remove_snapshot(cluster, f"{spec}@s1")
    with pytest.raises(rbdnb.SnapshotProtected):
        rbdnb.purge_snapshots(cluster, spec, confirm=True)
    assert rbdnb.unprotect_snapshot(cluster, f"{spec}@s1").changed
    assert not rbdnb.unprotect_snapshot(cluster, f"{spec}@s1").changed

    write(cluster, spec, 0, b"B" * 4096)
    with pytest.raises(rbdnb.ConfirmationRequired):
        rbdnb.rollback_snapshot(cluster, f"{spec}@s1")
    assert read(cluster, spec, 0, 4096) == b"B" * 4096
    assert rbdnb.rollback_snapshot(cluster, f"{spec}@s1", confirm=True).changed
    assert read(cluster, spec, 0, 4096) == b"A" * 4096

    assert rbdnb.remove_snapshot(cluster, f"{spec}@s2").changed
    assert not rbdnb.remove_snapshot(cluster, f"{spec}@s2", missing_ok=True).changed
    with pytest.raises(rbdnb.SnapshotNotFound, match=f"snapshot {spec}@s2 not found"):
        rbdnb.remove_snapshot(cluster, f"{spec}@s2")
    assert rbdnb.purge_snapshots(cluster, spec, confirm=True).changed
    assert cli("rbd", "snap", "ls", spec, json_out=True) == []
    assert not rbdnb.purge_snapshots(cluster, spec, confirm=True).changed


def test_long_listing_and_children_read_from_headers_match_rbd_cli(cluster, pool, cli):
    """list_images and children read rbd's metadata without opening images: every field
    agrees with rbd ls -l and rbd children, for clone v1 and v2, a parent in another pool, a
    namespace, a snapshot of a clone and a clone in the trash."""
    other = f"{pool}-other"
    golden = f"{pool}/golden"
    rbdnb.create_image(cluster, golden, "64M")
    rbdnb.create_snapshot(cluster, f"{golden}@base")
    rbdnb.create_snapshot(cluster, f"{golden}@two")
    rbdnb.protect_snapshot(cluster, f"{golden}@base")
    rbdnb.create_pool(cluster, other, 8)
    try:
        cli("rbd", "namespace", "create", f"{other}/ns")
        rbdnb.clone(cluster, f"{golden}@base", f"{pool}/kid-v1")
        rbdnb.create_snapshot(cluster, f"{pool}/kid-v1@k1")
        cli("rbd", "clone", "--rbd-default-clone-format", "2", f"{golden}@two", f"{pool}/kid-v2")
        cli("rbd", "clone", "--rbd-default-clone-format", "2", f"{golden}@base",
            f"{other}/ns/kid-ns")
        rbdnb.clone(cluster, f"{golden}@base", f"{other}/kid-far")
        rbdnb.clone(cluster, f"{golden}@base", f"{pool}/kid-trashed")
        cli("rbd", "trash", "mv", f"{pool}/kid-trashed")
        rbdnb.create_image(cluster, f"{pool}/plain", "1G", features=["layering"])

        for where, ns in ((pool, ""), (other, ""), (other, "ns")):
            frame = rbdnb.list_images(cluster, where, ns).set_index("name")
            listed = cli("rbd", "ls", "-l", where,
                         *(["--namespace", ns] if ns else []), json_out=True)
            heads = {e["image"]: e for e in listed if "snapshot" not in e}
            assert set(frame.index) == set(heads) and not frame.attrs["skipped"]
            for name, row in frame.iterrows():
                head, snaps = heads[name], [e for e in listed
                                            if e["image"] == name and "snapshot" in e]
                p = head.get("parent")
                want = (f"{p['pool']}/{p['pool_namespace'] + '/' if p.get('pool_namespace') else ''}"
                        f"{p['image']}@{p['snapshot']}") if p else None
                assert (row["parent"] if isinstance(row["parent"], str) else None) == want, name
                assert row["size"] == head["size"] and row["format"] == head["format"] == 2
                assert row["snapshots"] == len(snaps)
                assert row["protected_snapshots"] == ",".join(
                    e["snapshot"] for e in snaps if e["protected"] == "true")
                spec = f"{where}/{ns + '/' if ns else ''}{name}"
                assert sorted(row["features"].split(",")) == sorted(
                    cli("rbd", "info", spec, json_out=True)["features"])

        for snap in ("base", "two"):
            ours = rbdnb.children(cluster, f"{golden}@{snap}")
            theirs = cli("rbd", "children", f"{golden}@{snap}", json_out=True)
            assert sorted(zip(ours.pool, ours.namespace, ours.image)) == sorted(
                (k["pool"], k["pool_namespace"], k["image"]) for k in theirs)
        assert "kid-trashed" not in set(rbdnb.children(cluster, f"{golden}@base").image)
    finally:
        rbdnb.delete_pool(cluster, other, confirm=True, missing_ok=True)


def test_clone_many_beyond_the_pool_quota_is_refused_before_the_first_clone(cluster, pool, cli):
    golden = f"{pool}/golden"
    rbdnb.create_image(cluster, golden, "16M")
    rbdnb.create_snapshot(cluster, f"{golden}@base")
    cli("ceph", "osd", "pool", "set-quota", pool, "max_objects", "40")
    try:
        before = cli("rbd", "ls", pool, json_out=True)
        with pytest.raises(rbdnb.ClusterFull, match=f"pool {pool} can hold about .* more "
                           f"clones, not 500: its quota is 40 objects"):
            rbdnb.clone_many(cluster, f"{golden}@base", f"{pool}/vm-{{i:03d}}", count=500)
        assert cli("rbd", "ls", pool, json_out=True) == before
    finally:
        cli("ceph", "osd", "pool", "set-quota", pool, "max_objects", "0")


# -- clones -----------------------------------------------------------------------------------
def test_golden_image_clone_many_and_flatten(cluster, pool, cli):
    golden = f"{pool}/golden"
    rbdnb.create_image(cluster, golden, "64M")
    write(cluster, golden, 0, b"golden!" * 1000)
    rbdnb.create_snapshot(cluster, f"{golden}@base")
    seen = []
    result = rbdnb.clone_many(cluster, f"{golden}@base", f"{pool}/vm-{{i:03d}}", count=20,
                              concurrency=8, progress=lambda done, total: seen.append((done, total)))
    assert result.changed and result.message.startswith("20 created")
    assert list(result.value.status) == ["created"] * 20
    assert seen[-1] == (20, 20) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    kids = cli("rbd", "children", f"{golden}@base", json_out=True)
    assert sorted(k["image"] for k in kids) == [f"vm-{i:03d}" for i in range(1, 21)]
    ours = rbdnb.children(cluster, f"{golden}@base")
    assert sorted(ours.image) == sorted(k["image"] for k in kids)
    info = cli("rbd", "info", f"{pool}/vm-007", json_out=True)
    assert info["parent"]["image"] == "golden" and info["parent"]["snapshot"] == "base"
    assert rbdnb.image_info(cluster, f"{pool}/vm-007").parent == f"{golden}@base"
    assert read(cluster, f"{pool}/vm-007", 0, 7) == b"golden!"
    if rbdnb.preflight(cluster).clone_format == 1:
        assert "protected" in result.message
        assert cli("rbd", "snap", "ls", golden, json_out=True)[0]["protected"] == "true"

    before = cli("rbd", "ls", pool, json_out=True)
    with pytest.raises(rbdnb.ImageExists, match="20 of the clones exist already"):
        rbdnb.clone_many(cluster, f"{golden}@base", f"{pool}/vm-{{i:03d}}", count=20)
    again = rbdnb.clone_many(cluster, f"{golden}@base", f"{pool}/vm-{{i:03d}}", count=22,
                             exist_ok=True)
    assert again.message.startswith("2 created, 20 unchanged")
    assert len(cli("rbd", "ls", pool, json_out=True)) == len(before) + 2
    rbdnb.create_image(cluster, f"{pool}/stranger", "1M")
    with pytest.raises(rbdnb.Conflict, match="not a clone of"):
        rbdnb.clone(cluster, f"{golden}@base", f"{pool}/stranger", exist_ok=True)

    ticks = []
    flat = rbdnb.flatten(cluster, f"{pool}/vm-001", progress=lambda d, t: ticks.append(d))
    assert flat.changed and ticks
    assert "parent" not in cli("rbd", "info", f"{pool}/vm-001", json_out=True)
    assert read(cluster, f"{pool}/vm-001", 0, 7) == b"golden!"
    assert not rbdnb.flatten(cluster, f"{pool}/vm-001").changed


def test_clone_many_dry_run_changes_nothing(cluster, pool, cli):
    rbdnb.create_image(cluster, f"{pool}/g", "8M")
    rbdnb.create_snapshot(cluster, f"{pool}/g@s")
    plan = rbdnb.clone_many(cluster, f"{pool}/g@s", [f"{pool}/a", "b"], dry_run=True)
    assert isinstance(plan, Plan)
    assert f"clone {pool}/g@s {pool}/b" in plan.lines[-1]
    assert cli("rbd", "ls", pool, json_out=True) == ["g"]
    assert cli("rbd", "snap", "ls", f"{pool}/g", json_out=True)[0]["protected"] == "false"


# -- import / export --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def disk_files(tmp_path_factory):
    """A 64 MiB raw disk with scattered data, and the same disk as qcow2."""
    tmp = tmp_path_factory.mktemp("disks")
    raw = tmp / "disk.raw"
    with open(raw, "wb") as fh:
        fh.truncate(64 * MiB)
        for i in range(0, 64, 5):
            fh.seek(i * MiB + 123)
            fh.write(os.urandom(300_000))
    qcow = tmp / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow)],
                   check=True, timeout=60)
    return raw, qcow


def test_import_qcow2_then_verify_and_export(cluster, pool, cli, disk_files, sandbox, tmp_path):
    raw, qcow = disk_files
    spec = f"{pool}/imported"
    seen = []
    result = rbdnb.import_image(cluster, qcow, spec, progress=lambda d, t: seen.append((d, t)))
    assert result.changed and result.value["format"] == "qcow2"
    assert seen and seen[-1] == (64 * MiB, 64 * MiB)
    assert not any(k in " ".join(result.plan.lines) for k in ("key=", "AQ"))
    target = f"rbd:{spec}:conf={sandbox.conf_path}"
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", target],
                                     capture_output=True, text=True, check=True, timeout=60).stdout)
    assert info["format"] == "raw" and info["virtual-size"] == 64 * MiB
    check = rbdnb.verify_image(cluster, qcow, spec)
    assert check.identical and check.source_sha256 == rbdnb.checksum_file(raw)
    # rbd export agrees byte for byte.
    exported = tmp_path / "cli-export.raw"
    cli("rbd", "export", spec, str(exported))
    assert rbdnb.checksum_file(exported) == check.image_sha256

    again = rbdnb.import_image(cluster, qcow, spec, exist_ok=True)
    assert not again.changed
    with pytest.raises(rbdnb.ImageExists):
        rbdnb.import_image(cluster, qcow, spec)
    out = tmp_path / "back.qcow2"
    assert rbdnb.export_image(cluster, spec, out, dest_format="qcow2").changed
    assert json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(out)],
                                     capture_output=True, check=True).stdout)["format"] == "qcow2"
    assert rbdnb.checksum_file(out) == check.source_sha256
    with pytest.raises(rbdnb.InvalidArgument, match="exists"):
        rbdnb.export_image(cluster, spec, out)


def test_import_raw_with_rbd_import(cluster, pool, disk_files):
    raw, qcow = disk_files
    result = rbdnb.import_image(cluster, raw, f"{pool}/via-rbd", method="rbd")
    assert result.value["method"] == "rbd"
    assert rbdnb.verify_image(cluster, raw, f"{pool}/via-rbd").identical
    with pytest.raises(rbdnb.InvalidArgument, match="raw files only"):
        rbdnb.import_image(cluster, qcow, f"{pool}/nope", method="rbd")
    rbdnb.create_image(cluster, f"{pool}/small", "1M")
    with pytest.raises(rbdnb.Conflict, match="does not hold .*its size is 1M, not 64M"):
        rbdnb.import_image(cluster, raw, f"{pool}/small", exist_ok=True)


# -- bad input changes nothing ----------------------------------------------------------------
BAD_CALLS = [
    ("empty spec", lambda c, p: rbdnb.create_image(c, "", "1G"), rbdnb.InvalidArgument),
    ("four parts", lambda c, p: rbdnb.create_image(c, f"{p}/a/b/c", "1G"), rbdnb.InvalidArgument),
    ("space in name", lambda c, p: rbdnb.create_image(c, f"{p}/ba d", "1G"), rbdnb.InvalidArgument),
    ("markup in name", lambda c, p: rbdnb.create_image(c, f"{p}/<x/>", "1G"), rbdnb.InvalidArgument),
    ("dot-dot", lambda c, p: rbdnb.create_image(c, f"{p}/..", "1G"), rbdnb.InvalidArgument),
    ("snap on create", lambda c, p: rbdnb.create_image(c, f"{p}/img@s", "1G"), rbdnb.InvalidArgument),
    ("empty snap", lambda c, p: rbdnb.create_snapshot(c, f"{p}/img@"), rbdnb.InvalidArgument),
    ("two snaps", lambda c, p: rbdnb.create_snapshot(c, f"{p}/img@a@b"), rbdnb.InvalidArgument),
    ("size 0", lambda c, p: rbdnb.create_image(c, f"{p}/img", "0"), rbdnb.InvalidArgument),
    ("size -1B", lambda c, p: rbdnb.create_image(c, f"{p}/img", "-1B"), rbdnb.InvalidArgument),
    ("size -1G", lambda c, p: rbdnb.create_image(c, f"{p}/img", "-1G"), rbdnb.InvalidArgument),
    ("size 10Q", lambda c, p: rbdnb.create_image(c, f"{p}/img", "10Q"), rbdnb.InvalidArgument),
    ("size 1.5.G", lambda c, p: rbdnb.create_image(c, f"{p}/img", "1.5.G"), rbdnb.InvalidArgument),
    ("size overflow", lambda c, p: rbdnb.create_image(c, f"{p}/img", "99999999E"), rbdnb.InvalidArgument),
    ("size unitless", lambda c, p: rbdnb.create_image(c, f"{p}/img", "1024"), rbdnb.InvalidArgument),
    ("bad feature", lambda c, p: rbdnb.create_image(c, f"{p}/img", "1G", features=["turbo"]), rbdnb.InvalidArgument),
    ("object size", lambda c, p: rbdnb.create_image(c, f"{p}/img", "1G", object_size="3M"), rbdnb.InvalidArgument),
    ("bad pool name", lambda c, p: rbdnb.create_pool(c, "bad/pool"), rbdnb.InvalidArgument),
    ("pg_num 0", lambda c, p: rbdnb.create_pool(c, "okname", 0), rbdnb.InvalidArgument),
    ("client empty", lambda c, p: rbdnb.create_user(c, "client.", [p]), rbdnb.InvalidArgument),
    ("client space", lambda c, p: rbdnb.create_user(c, "lib virt", [p]), rbdnb.InvalidArgument),
    ("caps pool", lambda c, p: rbdnb.create_user(c, "ok", ["bad pool"]), rbdnb.InvalidArgument),
    ("caps quote", lambda c, p: rbdnb.create_user(c, "ok", [p], caps={"mon": "allow r\""}), rbdnb.InvalidArgument),
    ("caps service", lambda c, p: rbdnb.create_user(c, "ok", [p], caps={"rgw": "allow *"}), rbdnb.InvalidArgument),
    ("no pools", lambda c, p: rbdnb.create_user(c, "ok", []), rbdnb.InvalidArgument),
    ("missing pool", lambda c, p: rbdnb.create_image(c, "no-such-pool/img", "1G"), rbdnb.PoolNotFound),
    ("missing image", lambda c, p: rbdnb.resize_image(c, f"{p}/ghost", "1G"), rbdnb.ImageNotFound),
    ("missing snap", lambda c, p: rbdnb.clone(c, f"{p}/base@ghost", f"{p}/kid"), rbdnb.SnapshotNotFound),
    ("clone needs snap", lambda c, p: rbdnb.clone(c, f"{p}/base", f"{p}/kid"), rbdnb.InvalidArgument),
    ("pattern no count", lambda c, p: rbdnb.clone_many(c, f"{p}/base@s", f"{p}/vm-{{i}}"), rbdnb.InvalidArgument),
    ("pattern bad", lambda c, p: rbdnb.clone_many(c, f"{p}/base@s", f"{p}/vm-{{i:zz}}", count=2), rbdnb.InvalidArgument),
    ("pattern no i", lambda c, p: rbdnb.clone_many(c, f"{p}/base@s", f"{p}/vm", count=2), rbdnb.InvalidArgument),
    ("dup names", lambda c, p: rbdnb.clone_many(c, f"{p}/base@s", ["a", "a"]), rbdnb.InvalidArgument),
    ("concurrency", lambda c, p: rbdnb.clone_many(c, f"{p}/base@s", ["a"], concurrency=0), rbdnb.InvalidArgument),
    ("import missing", lambda c, p: rbdnb.import_image(c, "/nonexistent.qcow2", f"{p}/img"), rbdnb.InvalidArgument),
    ("import method", lambda c, p: rbdnb.import_image(c, "/etc/hostname", f"{p}/img", method="dd"), rbdnb.InvalidArgument),
    ("delete unconfirmed", lambda c, p: rbdnb.delete_pool(c, p), rbdnb.ConfirmationRequired),
    ("remove unconfirmed", lambda c, p: rbdnb.remove_image(c, f"{p}/base"), rbdnb.ConfirmationRequired),
    ("shrink", lambda c, p: rbdnb.resize_image(c, f"{p}/base", "1M"), rbdnb.ConfirmationRequired),
]


@pytest.fixture(scope="module")
def bad_input_pool(cluster):
    rbdnb.create_pool(cluster, "bad-input", 8, exist_ok=True)
    rbdnb.create_image(cluster, "bad-input/base", "8M", exist_ok=True)
    rbdnb.create_snapshot(cluster, "bad-input/base@s", exist_ok=True)
    yield "bad-input"
    rbdnb.remove_image(cluster, "bad-input/base", confirm=True, purge_snapshots=True,
                       missing_ok=True)
    rbdnb.delete_pool(cluster, "bad-input", confirm=True)


@pytest.mark.parametrize("label, call, error", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_a_typed_one_line_error_and_changes_nothing(
        cluster, bad_input_pool, cluster_state, label, call, error):
    before = cluster_state()
    with pytest.raises(error) as err:
        call(cluster, bad_input_pool)
    message = str(err.value)
    assert message and "\n" not in message and "Traceback" not in message
    assert isinstance(err.value, rbdnb.RbdnbError)
    assert cluster_state() == before


def test_a_full_pool_is_an_immediate_error_not_a_hang(cluster, pool, cli):
    """Quota-full pools block writes like full OSDs do; rbdnb refuses at once."""
    cli("ceph", "osd", "pool", "set-quota", pool, "max_objects", "2")
    rbdnb.create_image(cluster, f"{pool}/fill", "64M")  # header + id objects
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        flags = {p["pool_name"]: p.get("flags_names", "") for p in
                 cli("ceph", "osd", "dump", json_out=True)["pools"]}
        if "full" in flags[pool]:
            break
        time.sleep(1)
    assert "full" in flags[pool], flags[pool]
    t0 = time.monotonic()
    with pytest.raises(rbdnb.ClusterFull, match=f"pool {pool} is full"):
        rbdnb.create_image(cluster, f"{pool}/more", "1M")
    assert time.monotonic() - t0 < 5
    cli("ceph", "osd", "pool", "set-quota", pool, "max_objects", "0")
