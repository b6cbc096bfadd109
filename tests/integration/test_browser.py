"""A real browser: JupyterLab on loopback, headless Chromium (Debian's) driven by Playwright.

Opens a notebook on the rbdnb kernel, runs `%rbd ls`, renders the clone form, clicks
Run, and checks the page and the cluster. Then rbdnb's JupyterLab extension: the
Runbooks cards in the Launcher, the cluster health in the status bar, a runbook run
from its dialog to the end, and the run's HTML and notebook opened from the runs panel.
Screenshots go to tests/artifacts/.
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

import rbdnb
from rbdnb.runbooks import kernelspec
from rbdnb.sandbox import pick_free_port
from tests.conftest import require_services

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
CHROMIUM = "/usr/bin/chromium"
POOL = "br-pool"


@pytest.fixture(scope="module")
def lab(sandbox, tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        require_services("Debian's chromium is not installed (binder/apt.txt lists it)")
    root = tmp_path_factory.mktemp("lab")
    port, token = pick_free_port(), secrets.token_hex(16)
    kernelspec.install()
    env = {**os.environ, **sandbox.env(), "JUPYTER_PLATFORM_DIRS": "1"}
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
         # Loopback only: no update checks, no PyPI extension manager.
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly",
         # Its own workspaces: no layout or dialog restored from an earlier run.
         f"--LabApp.workspaces_dir={root / 'workspaces'}"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("JupyterLab did not start: " + (root / "lab.log").read_text()[-2000:])
            time.sleep(0.5)
    yield {"base": base, "token": token, "root": root}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def accept_kernel_dialog(page) -> None:
    """On a loaded machine JupyterLab may open the notebook before it has the list of
    kernels, and ask which to start: pick the notebook's own."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count():
        dialog.locator("select").select_option(label="Python 3 (rbdnb)")
        dialog.locator(".jp-Dialog-button", has_text="Select").click()
        dialog.wait_for(state="detached")


def notebook(cells: list[str]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "rbdnb", "display_name": "Python 3 (rbdnb)",
                                        "language": "python"}},
            "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src,
                       "outputs": [], "execution_count": None} for i, src in enumerate(cells)]}


def test_notebook_magics_and_clone_form_in_jupyterlab(lab, sandbox, cluster, cli):
    from playwright.sync_api import sync_playwright
    rbdnb.create_pool(cluster, POOL, 8, exist_ok=True)
    rbdnb.create_image(cluster, f"{POOL}/br-img", "64M", exist_ok=True)
    rbdnb.create_snapshot(cluster, f"{POOL}/br-img@base", exist_ok=True)
    conf = sandbox.conf_path
    (lab["root"] / "demo.ipynb").write_text(json.dumps(notebook([
        "%load_ext rbdnb",
        f"%rbdnb connect --conf {conf}",
        f"%rbd ls -l {POOL}",
        "import rbdnb\nfrom rbdnb import widgets\n"
        f"form = widgets.clone_form(rbdnb.connect('{conf}'), parent='{POOL}/br-img@base', "
        f"pattern='{POOL}/web-{{i:02d}}')\nform",
    ])))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # A busy 2-core machine: every wait is on a condition, with a generous bound.
            page.set_default_timeout(120_000)
            page.goto(f"{lab['base']}/lab/tree/demo.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=120_000)
            # The idle indicator can show before the kernel session is connected, and a
            # Run All given then is lost: give it a second go (every cell is safe to re-run).
            for attempt in (1, 2):
                accept_kernel_dialog(page)
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
                try:
                    page.wait_for_selector(".jp-RenderedHTMLCommon table", timeout=90_000)
                    break
                except Exception:
                    page.screenshot(path=str(ARTIFACTS / f"browser-attempt{attempt}.png"),
                                    full_page=True)
                    if attempt == 2:
                        raise
            run = page.locator(".widget-button", has_text="Run")
            run.wait_for(timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "browser-form.png"), full_page=True)
            listing = page.locator(".jp-RenderedHTMLCommon table", has_text="br-img")
            assert listing.count() == 1 and "features" in listing.inner_text()  # %rbd ls -l
            run.click()
            page.wait_for_selector("text=10 created", timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "browser-clone-done.png"), full_page=True)
            text = page.inner_text(".jp-Notebook")
        finally:
            browser.close()
    assert "Clone a golden image" in text and "✓ ready" in text
    kids = sorted(k["image"] for k in cli("rbd", "children", f"{POOL}/br-img@base", json_out=True))
    assert kids == [f"web-{i:02d}" for i in range(1, 11)]
    assert (ARTIFACTS / "browser-clone-done.png").stat().st_size > 10_000


def test_lab_extension_launcher_status_and_a_run(lab, sandbox, cluster, cli):
    """The Runbooks section of the Launcher, the status bar, a run from the dialog, its links."""
    from playwright.sync_api import sync_playwright
    runbooks = sorted(p.stem for p in RUNBOOKS.glob("[0-9][0-9]-*.ipynb"))
    pool = f"ui-{secrets.token_hex(3)}"
    guest_dir = tempfile.mkdtemp(prefix="rbdnb-it-ui-", dir="/var/tmp")
    os.chmod(guest_dir, 0o755)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                # A busy 2-core machine: every wait is on a condition, with a generous bound.
                page.set_default_timeout(120_000)
                # A workspace of its own, reset: the default layout, with a Launcher.
                page.goto(f"{lab['base']}/lab/workspaces/rbdnb-ui?reset&token={lab['token']}")
                section = page.locator(".jp-Launcher-section", has=page.locator(
                    ".jp-Launcher-sectionTitle", has_text="Runbooks"))
                section.wait_for(timeout=120_000)
                cards = section.locator(".jp-LauncherCard")
                titles = [cards.nth(i).inner_text().replace("\n", " ")
                          for i in range(cards.count())]
                assert [t[:2] for t in titles] == [r[:2] for r in runbooks], titles
                assert "01 — QEMU and RBD" in titles[1], titles
                # The status bar shows the sandbox's health, in colour.
                status = page.locator(".rbdnb-Status[data-level='ok']")
                status.wait_for(timeout=120_000)
                text = status.inner_text()
                assert "HEALTH_OK" in text and ("TCG" in text or "KVM" in text), text
                # Every host and site of the sandbox's topology (--hosts 2 --sites 2).
                assert "2 hosts" in text and "2 sites" in text, text
                assert cli("ceph", "health").stdout.strip() == "HEALTH_OK"
                page.screenshot(path=str(ARTIFACTS / "lab-launcher.png"))
                # A card opens the runbook's form; Run goes through the server.
                cards.nth(1).click()
                page.locator(".rbdnb-RunbookForm").wait_for(timeout=90_000)
                assert page.locator(".rbdnb-RunbookForm input[name='pool']").input_value() \
                    == "rdb_1"
                page.fill(".rbdnb-RunbookForm input[name='pool']", pool)
                page.fill(".rbdnb-RunbookForm input[name='guest_dir']", guest_dir)
                page.screenshot(path=str(ARTIFACTS / "lab-dialog.png"))
                page.get_by_role("button", name="Run", exact=True).click()
                run = page.locator(".rbdnb-Run", has_text="01-qemu-rbd")
                run.wait_for(timeout=90_000)
                page.locator(".rbdnb-Run[data-state='ok']").wait_for(timeout=300_000)
                page.screenshot(path=str(ARTIFACTS / "lab-runs-panel.png"))
                assert "steps changed something" in run.inner_text()
                # Its HTML opens in a new tab, its notebook in JupyterLab.
                with page.context.expect_page() as opened:
                    run.locator(".rbdnb-Run-html").click()
                html = opened.value
                html.wait_for_load_state()
                assert "QEMU and RBD" in html.inner_text("body")
                html.screenshot(path=str(ARTIFACTS / "lab-run-html.png"))
                html.close()
                run.locator(".rbdnb-Run-notebook").click()
                page.locator(".jp-NotebookPanel .jp-Notebook", has_text=pool).wait_for(
                    timeout=120_000)
                page.locator(".lm-TabBar-tabLabel", has_text="01-qemu-rbd.ipynb").wait_for(
                    timeout=90_000)
                page.screenshot(path=str(ARTIFACTS / "lab-run-notebook.png"))
                # The run outlives a page reload.
                page.reload()
                page.locator(".rbdnb-Status[data-level='ok']").wait_for(timeout=120_000)
                page.wait_for_timeout(1000)  # the layout restorer reopens the panel if it was open
                if not page.locator("#rbdnb-runs").is_visible():
                    page.locator(".lm-TabBar-tab[data-id='rbdnb-runs']").click()
                page.locator(".rbdnb-Run[data-state='ok']", has_text="01-qemu-rbd").wait_for(
                    timeout=120_000)
                # A bad parameter is refused with one line, and the form comes back as filled.
                page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
                page.locator(".lm-Menu-itemLabel", has_text="New Launcher").first.click()
                # The new Launcher is the visible one: the first may still be open behind it.
                page.locator(".jp-Launcher-section:visible", has=page.locator(
                    ".jp-Launcher-sectionTitle", has_text="Runbooks")).locator(
                    ".jp-LauncherCard", has_text="03").click()
                page.fill(".rbdnb-RunbookForm input[name='vm_count']", "0")
                page.get_by_role("button", name="Run", exact=True).click()
                error = page.locator(".jp-Dialog", has_text="not started")
                error.wait_for(timeout=90_000)
                assert "vm_count: 0 is not valid: expected a whole number from 1 to 10000" in error.inner_text()
                page.screenshot(path=str(ARTIFACTS / "lab-bad-parameter.png"))
                error.get_by_role("button").last.click()
                assert page.locator(".rbdnb-RunbookForm input[name='vm_count']").input_value(
                    timeout=90_000) == "0"
                # "Open a copy": a new notebook with the parameters filled in, opened here.
                page.fill(".rbdnb-RunbookForm input[name='vm_count']", "3")
                page.get_by_role("button", name="Open a copy", exact=True).click()
                page.locator(".lm-TabBar-tabLabel", has_text="03-golden-image-clones-").wait_for(
                    timeout=120_000)
                page.locator(".jp-NotebookPanel:visible .jp-Cell", has_text="vm_count = 3").first \
                    .wait_for(timeout=120_000)
                page.screenshot(path=str(ARTIFACTS / "lab-open-a-copy.png"))
            finally:
                browser.close()
        assert sorted(cli("rbd", "ls", pool, json_out=True)) == ["image3", "vm-image"]
        runs = list((lab["root"] / "runs" / "lab").iterdir())  # the refused one made none
        assert len(runs) == 1 and (runs[0] / "01-qemu-rbd.html").is_file()
        copies = list((lab["root"] / "runs" / "copies").glob("03-golden-image-clones-*.ipynb"))
        assert len(copies) == 1 and "vm_count = 3" in copies[0].read_text()
    finally:
        rbdnb.delete_pool(cluster, pool, confirm=True, missing_ok=True)
        shutil.rmtree(guest_dir, ignore_errors=True)
