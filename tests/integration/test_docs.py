"""`rbdnb docs build`: every runbook executed, a static site, opened in headless Chromium."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from rbdnb.base.secret import KEY_PATTERN
from tests.conftest import require_services

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def test_docs_site_is_built_and_reads_well_in_a_browser(sandbox, tmp_path, cli):
    if not os.path.exists("/usr/bin/chromium"):
        require_services("Debian's chromium is not installed (binder/apt.txt lists it)")
    run = uuid.uuid4().hex[:6]
    guest_dir = tempfile.mkdtemp(prefix="rbdnb-it-docs-", dir="/var/tmp")
    os.chmod(guest_dir, 0o755)
    site = tmp_path / "site"
    params = {"conf": str(sandbox.conf_path), "libvirt_uri": sandbox.libvirt_uri,
              "guest_dir": guest_dir,
              "02-libvirt-rbd.user": f"dl{run}", "02-libvirt-rbd.libvirt_pool": f"docs-{run}",
              "02-libvirt-rbd.vm": f"rbdnb-docs-{run}", "02-libvirt-rbd.edited_vm": f"rbdnb-de-{run}",
              "02-libvirt-rbd.keyring_dir": str(tmp_path),
              "03-golden-image-clones.pool": f"dgold-{run}", "03-golden-image-clones.user": f"dg{run}",
              "03-golden-image-clones.vm_count": 4, "03-golden-image-clones.measure_count": 4,
              "04-benchmark.pool": f"dbench-{run}", "04-benchmark.image_size": "256M",
              "04-benchmark.io_sizes": ["4K"], "04-benchmark.queue_depths": [16],
              "04-benchmark.total": "8M", "04-benchmark.results_dir": str(tmp_path / "bench"),
              # Live migration to the sandbox's second host; disaster recovery to its site b.
              "05-live-migration.dest_uri": sandbox.host_uris()[1],
              "05-live-migration.pool": f"dmig-{run}", "05-live-migration.user": f"dm{run}",
              "05-live-migration.libvirt_pool": f"dmlp-{run}",
              "05-live-migration.vm": f"rbdnb-dmig-{run}", "05-live-migration.round_trips": 1,
              "05-live-migration.keyring_dir": str(tmp_path),
              "06-disaster-recovery.peer_conf": sandbox.site_confs()["b"],
              "06-disaster-recovery.peer_uri": sandbox.host_uris()[1],
              "06-disaster-recovery.pool": f"ddr-{run}", "06-disaster-recovery.user": f"dd{run}",
              "06-disaster-recovery.libvirt_pool": f"ddlp-{run}",
              "06-disaster-recovery.vm": f"rbdnb-ddr-{run}", "06-disaster-recovery.lost_mib": 1,
              "99-teardown.users": [f"dl{run}", f"dg{run}", f"dm{run}", f"dd{run}"],
              "99-teardown.pools": ["rdb_1", "libvirt-pool", f"dgold-{run}", f"dbench-{run}",
                                    f"dmig-{run}", f"ddr-{run}"]}
    # The scale page: a small run of the scale benchmark on the session's cluster.
    scale = subprocess.run([sys.executable, "-m", "rbdnb", "bench", "scale", "--conf",
                            str(sandbox.conf_path), "--sizes", "10,30", "--repeat", "1",
                            "--output", str(tmp_path / "scale.csv")],
                           capture_output=True, text=True, timeout=900)
    assert scale.returncode == 0, scale.stdout + scale.stderr[-2000:]
    assert "long listing" in scale.stdout and "children" in scale.stdout
    argv = [sys.executable, "-m", "rbdnb", "docs", "build", str(site), "--runbooks", str(RUNBOOKS),
            "--scale", str(tmp_path / "scale.csv")]
    for key, value in params.items():
        argv += ["-p", key, json.dumps(value) if isinstance(value, list) else str(value)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(guest_dir, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    names = ["00-preflight", "01-qemu-rbd", "02-libvirt-rbd", "03-golden-image-clones",
             "04-benchmark", "05-live-migration", "06-disaster-recovery", "99-teardown"]
    for name in names:
        assert (site / f"{name}.html").stat().st_size > 10_000
    assert (site / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scale_page = (site / "scale.html").read_text()
    assert "scale.png" in scale_page and "long listing" in scale_page and "<td>30</td>" in scale_page
    assert "href='scale.html'" in (site / "index.html").read_text()
    keys = [line.split("=", 1)[1].strip() for p in sandbox.dir.glob("*.keyring")
            for line in p.read_text().splitlines() if "key =" in line]
    for path in site.iterdir():
        text = path.read_text(errors="replace")
        assert not KEY_PATTERN.search(text) and not any(k in text for k in keys), path

    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto((site / "index.html").as_uri())
            page.screenshot(path=str(ARTIFACTS / "docs-index.png"), full_page=True)
            index = page.inner_text("body")
            page.click("a[href='02-libvirt-rbd.html']")
            page.wait_for_load_state()
            page.screenshot(path=str(ARTIFACTS / "docs-02-libvirt-rbd.png"))
            runbook = page.inner_text("body")
        finally:
            browser.close()
    for name in names:
        assert name in index, index
    assert index.count("pass") >= len(names) and "step failed" not in index, index
    # The front page is the guide regenerated: every step in the guide's order, the guide's
    # command and mistakes, the cell that did it with its output, the real tool's check.
    from rbdnb.runbooks.guide import STEPS
    at = [index.find(f"{s.id} {s.title}") for s in STEPS]
    assert -1 not in at and at == sorted(at), [s.id for s, i in zip(STEPS, at) if i == -1]
    assert "qemu-img info rbfad:rdb_1/image3" in index and "typo" in index
    assert "virsh dump centos7" in index and "dumpxml" in index
    assert "%qemu-img create -f raw rbd:{pool}/{image} {size} --exist-ok" in index
    assert "%virsh secret-define --client {user}" in index
    checks = index.count("Checked with the real tool")
    assert checks >= 12 and "Checked with the real tool failed" not in index, index[:3000]
    assert '"name": "os-data"' in index, 'rbd info of os-data is not on the page'
    fsid = cli("ceph", "fsid").stdout.strip()
    for path in site.glob("*.html"):
        text = path.read_text()
        assert "rbdnb-build" in text and fsid in text, f"{path.name}: no build metadata"
    assert "libvirt with Ceph RBD" in runbook and "virsh" in runbook, runbook[:2000]
    assert "RBDNB-GUEST-READY" in runbook, proc.stdout
