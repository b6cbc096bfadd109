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
              "99-teardown.users": [f"dl{run}", f"dg{run}"],
              "99-teardown.pools": ["rdb_1", "libvirt-pool", f"dgold-{run}", f"dbench-{run}"]}
    argv = [sys.executable, "-m", "rbdnb", "docs", "build", str(site), "--runbooks", str(RUNBOOKS)]
    for key, value in params.items():
        argv += ["-p", key, json.dumps(value) if isinstance(value, list) else str(value)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(guest_dir, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    names = ["00-preflight", "01-qemu-rbd", "02-libvirt-rbd", "03-golden-image-clones",
             "04-benchmark", "99-teardown"]
    for name in names:
        assert (site / f"{name}.html").stat().st_size > 10_000
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
            page.click("text=02-libvirt-rbd")
            page.wait_for_load_state()
            page.screenshot(path=str(ARTIFACTS / "docs-02-libvirt-rbd.png"))
            runbook = page.inner_text("body")
        finally:
            browser.close()
    for name in names:
        assert name in index, index
    assert index.count("pass") >= len(names) and "step failed" not in index, index
    assert "libvirt with Ceph RBD" in runbook and "virsh" in runbook, runbook[:2000]
    assert "RBDNB-GUEST-READY" in runbook, proc.stdout
