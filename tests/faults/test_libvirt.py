"""libvirtd killed under a running VM, and libvirtd frozen.

A killed libvirtd: ``sandbox status`` says so, ``sandbox up`` brings it back, the VM kept
running (QEMU is its own process), and attach, detach and dumpxml work again. A frozen
libvirtd: connecting, calls on an open connection, ``status`` and ``down`` all answer
within their bounds, and it is reported as not reachable.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid


import rbdnb
from rbdnb.virt import guest; from rbdnb.base import paths; from rbdnb import virt
from tests.faults.conftest import ROOT, answer, fill_image, frozen, within

RBDNB = [sys.executable, "-m", "rbdnb"]


def libvirtd_pid(uri: str) -> int:
    pid = rbdnb.base.proc.read_pidfile(paths.libvirt_daemons(uri).libvirtd_pidfile)
    assert pid and rbdnb.base.proc.start_time(pid) is not None, "no libvirtd runs"
    return pid



def status_json(box) -> dict:
    proc = subprocess.run(RBDNB + ["sandbox", "status", "--dir", str(box.dir), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    return json.loads(proc.stdout)


def test_libvirtd_killed_under_a_running_vm(fresh, guest_dir, record):
    box, uri = fresh, fresh.libvirt_uri
    vm = f"rbdnb-fault-{uuid.uuid4().hex[:6]}"
    boot = guest.build(os.path.join(guest_dir, "guest.qcow2"))
    console = os.path.join(guest_dir, f"{vm}.console.log")
    with rbdnb.connect(str(box.conf_path)) as cluster:
        rbdnb.create_pool(cluster, "f", 8)
        rbdnb.import_image(cluster, boot.image, "f/golden")
        rbdnb.create_snapshot(cluster, "f/golden@base")
        rbdnb.clone(cluster, "f/golden@base", "f/vm")
        rbdnb.create_image(cluster, "f/data", "16M")
        fill_image(cluster, "f/data", 1 << 20, seed=5)
        conn = virt.connect_libvirt(uri)
        secret = virt.ensure_secret(conn, cluster, "admin")
        virt.ensure_rbd_pool(conn, f"lp-{vm}", "f", cluster, "admin", secret)
        virt.define_vm(conn, vm, ["f/vm"], boot=boot, console_log=console, cluster=cluster)
        virt.start_vm(conn, vm)
        guest.wait_console(console, lambda s: s["booted"] and "vda" in s["disks"], timeout=180)
        qemu_pid = int(open(f"/run/libvirt/qemu/{vm}.pid").read())
        conn.close()

        os.kill(libvirtd_pid(uri), signal.SIGKILL)
        t0 = time.monotonic()
        status = status_json(box)
        assert not status["libvirt_reachable"], status
        up = subprocess.run(RBDNB + ["sandbox", "up", "--dir", str(box.dir)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0 and "brought back: libvirtd" in up.stdout, up.stdout
        seconds = time.monotonic() - t0
        assert status_json(box)["libvirt_reachable"]

        conn = virt.connect_libvirt(uri)
        try:
            assert conn.lookupByName(vm).isActive(), "the VM did not survive libvirtd's death"
            assert rbdnb.base.proc.start_time(qemu_pid) is not None, "QEMU was restarted"
            virt.attach_rbd(conn, vm, "f/data", target="vdb", cluster=cluster)
            exported = subprocess.run(["rbd", "export", "--no-progress", "f/data", "-"],
                                      env={**os.environ, **box.env()}, capture_output=True,
                                      timeout=60, check=True).stdout
            want = hashlib.sha256(exported[:1 << 20]).hexdigest()
            seen = guest.wait_console(
                console, lambda s: s["disks"].get("vdb", {}).get("sha256") == want, timeout=120)
            assert seen["disks"]["vdb"]["sha256"] == want
            assert "f/data" in virt.dump_xml(conn, vm)
            virt.detach_rbd(conn, vm, "f/data")
            assert "f/data" not in virt.dump_xml(conn, vm)
        finally:
            conn.close()
    record(seconds, "status said not reachable; sandbox up restarted libvirtd; the VM kept "
                    "running (same QEMU pid); attach (guest saw the bytes), dumpxml, detach "
                    "worked")


def test_libvirtd_frozen(fresh, record):
    uri = fresh.libvirt_uri
    conn = virt.connect_libvirt(uri)
    rows = []
    try:
        with frozen(libvirtd_pid(uri)):
            error, seconds = answer(60, lambda: virt.connect_libvirt(uri, timeout=5), "connect")
            assert isinstance(error, rbdnb.Timeout), error
            rows.append(("connect", seconds))
            reachable, seconds = within(30, lambda: virt.reachable(uri, timeout=3), "reachable")
            assert reachable is False
            rows.append(("reachable", seconds))
            # A call on a connection opened before: keepalive gives up on the daemon.
            error, seconds = answer(60, lambda: virt.list_secrets(conn), "call on open conn")
            rows.append(("call", seconds))
            t0 = time.monotonic()
            status = status_json(fresh)
            rows.append(("sandbox status", time.monotonic() - t0))
            assert rows[-1][1] < 15 and not status["libvirt_reachable"], status
            t0 = time.monotonic()
            down = subprocess.run(RBDNB + ["sandbox", "down", "--dir", str(fresh.dir)],
                                  cwd=ROOT, capture_output=True, text=True, timeout=120)
            rows.append(("sandbox down", time.monotonic() - t0))
            assert down.returncode == 0, down.stderr
            assert rows[-1][1] < 60
    finally:
        virt.close_quietly(conn)
    worst = max(s for _, s in rows)
    record(worst, "; ".join(f"{w} {s:.1f}s" for w, s in rows) + " (Timeout / not reachable)")
