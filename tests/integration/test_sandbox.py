"""The sandbox on the real daemons, cross-checked with the real ceph, rbd and virsh CLIs."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rbdnb.base import proc as _proc, paths
from rbdnb.errors import PortInUse, SandboxError, Timeout
from rbdnb.sandbox import Sandbox, libvirt_reachable

RBDNB = [sys.executable, "-m", "rbdnb"]


def our_processes(box: Sandbox) -> list[_proc.ProcessRef]:
    state = json.loads(box.state_path.read_text())
    return [_proc.ProcessRef.from_json(d) for d in state["daemons"]]


def processes_using(directory: Path) -> list[int]:
    """Every live process whose command line names ``directory`` (ceph-* -c DIR/ceph.conf)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(directory) in cmdline and _proc.start_time(int(entry.name)) is not None:
                pids.append(int(entry.name))
    return pids


def settled_health(box: Sandbox, timeout: float = 60):
    """The sandbox's status once healthy; load from another cluster on 2 cores can make
    the monitor warn for a moment (slow ops, PG stats being re-reported)."""
    deadline = time.monotonic() + timeout
    while True:
        status = box.status()
        if status.healthy or time.monotonic() > deadline:
            return status
        time.sleep(1)


def test_ceph_health_through_the_real_cli(sandbox, cli):
    health = cli("ceph", "health", json_out=True)
    assert health["status"] == "HEALTH_OK"
    status = cli("ceph", "status", json_out=True)
    assert status["fsid"] == sandbox.status().fsid
    assert status["osdmap"]["num_up_osds"] == 1


def test_every_daemon_is_on_loopback(sandbox, cli):
    monmap = cli("ceph", "mon", "dump", json_out=True)
    addrs = [a["addr"] for mon in monmap["mons"] for a in mon["public_addrs"]["addrvec"]]
    osd = cli("ceph", "osd", "dump", json_out=True)["osds"][0]
    addrs += [a["addr"] for key in ("public_addrs", "cluster_addrs")
              for a in osd[key]["addrvec"]]
    mgr = cli("ceph", "mgr", "dump", json_out=True)
    addrs += [a["addr"] for a in mgr["active_addrs"]["addrvec"]]
    assert addrs and all(a.startswith("127.0.0.1:") for a in addrs), addrs


def test_cephx_is_on_and_the_keyring_is_private(sandbox, cli):
    conf = sandbox.conf_path.read_text()
    assert "auth_client_required = cephx" in conf
    assert sandbox.keyring_path.stat().st_mode & 0o777 == 0o600
    assert sandbox.dir.stat().st_mode & 0o077 == 0
    # A client without the key is refused: cephx is enforced, not merely configured.
    proc = cli("ceph", "health", "--keyring", "/dev/null", "--connect-timeout", "5", check=False)
    assert proc.returncode != 0


def test_pool_and_image_with_the_real_rbd_cli(sandbox, cli):
    cli("ceph", "osd", "pool", "create", "it-pool", "8")
    cli("rbd", "pool", "init", "it-pool")
    cli("rbd", "create", "it-pool/disk1", "--size", "64M")
    assert "disk1" in cli("rbd", "ls", "it-pool", json_out=True)
    info = cli("rbd", "info", "it-pool/disk1", json_out=True)
    assert info["size"] == 64 * 1024**2 and info["format"] == 2


def test_virsh_talks_to_the_sandbox_libvirt(sandbox, cli):
    proc = cli("virsh", "-c", sandbox.libvirt_uri, "version")
    assert "Running hypervisor: QEMU" in proc.stdout
    assert sandbox.status().libvirt_reachable


def test_up_again_reports_the_running_sandbox_and_changes_nothing(sandbox):
    before = our_processes(sandbox)
    conf = sandbox.conf_path.read_text()
    status = sandbox.up()
    assert status.changed is False and status.healthy
    assert our_processes(sandbox) == before
    assert sandbox.conf_path.read_text() == conf
    out = subprocess.run(RBDNB + ["sandbox", "up", "--dir", str(sandbox.dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "already running" in out.stdout


def test_status_json_and_env_from_the_cli(sandbox):
    # Health is a reading at one moment: load from other work on 2 cores can make the
    # monitor warn for a while (slow ops), so read again until it settles.
    deadline = time.monotonic() + 90
    while True:
        t0 = time.monotonic()
        out = subprocess.run(RBDNB + ["sandbox", "status", "--json", "--dir", str(sandbox.dir)],
                             capture_output=True, text=True, timeout=60)
        assert time.monotonic() - t0 < 30  # documented: ~10 s at most, whatever the daemons do
        data = json.loads(out.stdout)
        if data["healthy"] or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert data["running"] and data["healthy"], data["health"]
    assert {d["name"] for d in data["daemons"]} == {"mon.a", "mgr.x", "osd.0"}
    assert all(d["pid"] > 1 for d in data["daemons"])
    assert data["conf"] == str(sandbox.conf_path) and data["fsid"]
    assert data["libvirt_uri"] == sandbox.libvirt_uri
    script = (f'eval "$({sys.executable} -m rbdnb sandbox env --dir {sandbox.dir})"; '
              'ceph health && virsh version >/dev/null && echo "$LIBVIRT_DEFAULT_URI"')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items()
                               if k not in ("CEPH_CONF", "LIBVIRT_DEFAULT_URI")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["HEALTH_OK", sandbox.libvirt_uri]


def test_no_key_in_any_output_or_non_keyring_file(sandbox):
    keys = [line.split("=", 1)[1].strip() for line in sandbox.keyring_path.read_text().splitlines()
            if line.strip().startswith("key")]
    assert keys
    outputs = [subprocess.run(RBDNB + ["sandbox", *args, "--dir", str(sandbox.dir)],
                              capture_output=True, text=True, timeout=60)
               for args in (["up"], ["status"], ["status", "--json"], ["env"])]
    text = "".join(o.stdout + o.stderr for o in outputs)
    # The monitor's auth database holds every key by design; the sandbox directory (0700)
    # keeps it, like the keyrings, from everyone but its owner.
    assert sandbox.dir.stat().st_mode & 0o077 == 0
    mon_store = sandbox.dir / "mon" / "ceph-a" / "store.db"
    for path in sandbox.dir.rglob("*"):
        # A root host's namespace is bound to hosts/NAME/ns/mnt (a namespace, not a file).
        if (path.is_file() and "keyring" not in path.name and mon_store not in path.parents
                and path.parent.name != "ns" and path.stat().st_size < 1_000_000):
            text += path.read_text(errors="replace")
    for key in keys:
        assert key not in text


def test_port_taken_by_something_else_is_refused_and_starts_nothing(sandbox, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        box = Sandbox(tmp_path / "taken", port=port)
        with pytest.raises(PortInUse, match=f"127.0.0.1:{port} is already in use"):
            box.up()
    assert processes_using(tmp_path / "taken") == []
    assert not (tmp_path / "taken").exists()


def test_second_sandbox_beside_the_first_and_down_leaves_no_process(sandbox, tmp_path, cli):
    other = Sandbox(tmp_path / "second", osd_size="1G")
    status = other.up()
    try:
        assert status.healthy and status.changed
        assert status.mon_host != sandbox.status().mon_host
        assert status.fsid != sandbox.status().fsid
        refs = our_processes(other)
        assert len(refs) == 3 and all(r.alive() for r in refs)
        first_daemons = our_processes(sandbox)
        # Both clusters answer at once.
        assert cli("ceph", "health", json_out=True)["status"] == "HEALTH_OK"
        env = {**os.environ, **other.env()}
        out = subprocess.run(["ceph", "health"], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.stdout.strip() == "HEALTH_OK"
    finally:
        stopped = other.down()
    assert set(stopped) >= {"mon.a", "mgr.x", "osd.0"}
    assert not any(r.alive() for r in refs)
    assert processes_using(tmp_path / "second") == []
    assert not (tmp_path / "second").exists()
    # The first sandbox is undisturbed: same daemons, libvirtd still serving, healthy.
    assert libvirt_reachable(sandbox.libvirt_uri)
    assert our_processes(sandbox) == first_daemons and all(r.alive() for r in first_daemons)
    status = settled_health(sandbox)
    assert status.healthy, status.health.describe()


def test_down_keep_then_up_restarts_with_the_data(tmp_path):
    box = Sandbox(tmp_path / "kept", osd_size="1G")
    box.up()
    try:
        env = {**os.environ, **box.env()}
        for argv in (["ceph", "osd", "pool", "create", "keep", "8"], ["rbd", "pool", "init", "keep"],
                     ["rbd", "create", "keep/survivor", "--size", "16M"]):
            subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)
        fsid = box.status().fsid
        box.down(keep=True)
        assert processes_using(box.dir) == []
        assert box.conf_path.exists() and box.keyring_path.exists()
        status = box.up()
        assert status.healthy and status.changed and status.fsid == fsid
        out = subprocess.run(["rbd", "ls", "keep", "--format", "json"], env=env,
                             capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(out.stdout) == ["survivor"]
    finally:
        box.down()
    assert processes_using(tmp_path / "kept") == []


def test_full_osd_is_never_reported_healthy_and_clients_do_not_hang(sandbox, tmp_path):
    """A full memstore OSD blocks writes; the sandbox must say so and clients must time out."""
    import rados

    box = Sandbox(tmp_path / "full", osd_size="256M")
    box.up()
    try:
        cluster = rados.Rados(conffile=str(box.conf_path), rados_id="admin",
                              conf={"keyring": str(box.keyring_path), "rados_osd_op_timeout": "5"})
        cluster.connect(timeout=10)
        try:
            cluster.create_pool("fill")
            chunk = os.urandom(4 * 1024**2)
            t0 = time.monotonic()
            with cluster.open_ioctx("fill") as ioctx:
                failure = None
                # memstore does not enforce its size: writes go on until the OSD's next
                # stats report makes the monitor flag it full, then they block.
                for i in range(512):  # 2 GiB at most into 256 MiB
                    try:
                        ioctx.write_full(f"obj{i}", chunk)
                    except (rados.Error, OSError) as exc:
                        failure = exc
                        break
            assert failure is not None, "a 256M OSD took 2G without an error"
            assert time.monotonic() - t0 < 120
        finally:
            cluster.shutdown()
        deadline = time.monotonic() + 60
        while True:
            status = box.status()
            if status.health.full or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert status.health.nearfull and status.health.full, status.health
        assert not status.healthy
        assert "HEALTH_OK" not in status.health.status
        with pytest.raises(Timeout):
            box._wait_healthy(deadline=time.monotonic() + 3)
    finally:
        box.down()
    assert processes_using(tmp_path / "full") == []


def test_libvirt_record_lists_live_users_only(sandbox):
    record = json.loads((paths.runtime_dir() / "libvirtd.json").read_text())
    assert str(sandbox.dir) in record["users"]


def test_a_crashed_memstore_sandbox_is_refused_with_what_to_do(tmp_path):
    """After a crash or reboot memstore has lost its data: say so at once, never wait."""
    box = Sandbox(tmp_path / "crashed", osd_size="1G")
    box.up()
    for ref in our_processes(box):
        ref.stop(timeout=0)  # SIGKILL, as a reboot or an OOM kill would
    t0 = time.monotonic()
    with pytest.raises(SandboxError, match="not stopped cleanly.*rbdnb sandbox down"):
        box.up()
    assert time.monotonic() - t0 < 5
    assert processes_using(box.dir) == []
    box.down()
    assert not box.dir.exists()
    assert box.up().healthy
    box.down()
    assert processes_using(tmp_path / "crashed") == []


def test_a_failed_up_leaves_no_daemon_and_no_state(tmp_path):
    """Every daemon is started, then health does not come in time: all of it is undone."""
    box = Sandbox(tmp_path / "late", osd_size="1G", timeout=0.5)
    with pytest.raises(Timeout, match="not healthy after 0.5 s"):
        box.up()
    assert processes_using(tmp_path / "late") == []
    assert not (tmp_path / "late").exists()
    out = subprocess.run(RBDNB + ["sandbox", "up", "--dir", str(tmp_path / "late2"),
                                  "--timeout", "0.5"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "not healthy" in out.stderr
    assert processes_using(tmp_path / "late2") == []


def test_down_removes_the_libvirt_objects_on_its_cluster_only(sandbox, tmp_path):
    import rbdnb
    from rbdnb import virt
    import uuid
    run = uuid.uuid4().hex[:6]  # libvirt names are machine-wide
    box = Sandbox(tmp_path / "lv", osd_size="1G")
    box.up()
    conn = virt.connect_libvirt(box.libvirt_uri)
    try:
        with rbdnb.connect(str(box.conf_path)) as cluster:
            rbdnb.create_pool(cluster, "lvp", 8)
            rbdnb.create_user(cluster, f"lv{run}", ["lvp"])
            rbdnb.create_image(cluster, "lvp/disk", "8M")
            secret = virt.ensure_secret(conn, cluster, f"lv{run}")
            virt.ensure_rbd_pool(conn, f"rbdnb-it-down-{run}", "lvp", cluster, f"lv{run}", secret)
            virt.define_vm(conn, f"rbdnb-it-down-vm-{run}", ["lvp/disk"])
        removed = box.down()
        assert f"domain rbdnb-it-down-vm-{run}" in removed
        assert f"libvirt pool rbdnb-it-down-{run}" in removed
        assert f"secret {secret}" in removed
        virsh = lambda *a: subprocess.run(["virsh", "-c", box.libvirt_uri, *a],  # noqa: E731
                                          capture_output=True, text=True, timeout=60).stdout
        assert f"rbdnb-it-down-vm-{run}" not in virsh("list", "--all", "--name")
        assert f"rbdnb-it-down-{run}" not in virsh("pool-list", "--all")
        assert secret not in virsh("secret-list")
    finally:
        conn.close()
        box.down()
    status = settled_health(sandbox)
    assert status.healthy and libvirt_reachable(sandbox.libvirt_uri), status.health.describe()
