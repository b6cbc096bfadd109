"""An installed wheel is complete: it reaches nothing beside the package.

The wheel is built from this checkout and installed (without dependencies, which the venv
has) into a directory of its own; then, from a directory outside the repository and with
that directory first on the path, `rbdnb run` runs a runbook that came with it, `rbdnb lab install` finds the built JupyterLab extension, the kernel spec is made, and
`%load_ext rbdnb` gives the magics.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = {"00-preflight.ipynb", "01-qemu-rbd.ipynb", "02-libvirt-rbd.ipynb",
            "03-golden-image-clones.ipynb", "04-benchmark.ipynb", "05-live-migration.ipynb",
            "06-disaster-recovery.ipynb", "99-teardown.ipynb"}

CHECK = r'''
import json, sys
from pathlib import Path
import rbdnb
from rbdnb.runbooks import bundled, kernelspec
from rbdnb import labext
from IPython.core.interactiveshell import InteractiveShell
books = bundled()
shell = InteractiveShell.instance()
shell.run_cell("%load_ext rbdnb", store_history=False)
print(json.dumps({
    "package": rbdnb.__file__,
    "runbooks": sorted(p.name for p in books.glob("*.ipynb")),
    "links": [p.name for p in books.iterdir() if p.is_symlink()],
    "kernel": kernelspec.spec_json()["argv"][-1],
    "lab": labext.install(prefix=sys.argv[1], dry_run=True),
    "magics": sorted(m for m in ("rbd", "ceph", "virsh", "rbdnb")
                     if shell.find_line_magic(m) is not None),
}))
'''


def test_the_installed_wheel_has_its_runbooks_kernel_spec_lab_extension_and_magics(sandbox,
                                                                                   tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(wheels), str(ROOT)], capture_output=True, text=True,
                           timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = list(wheels.glob("rbdnb-*.whl"))
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                              "--target", str(site), str(wheel)], capture_output=True,
                             text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    check = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "prefix")], cwd=away,
                           env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr[-2000:]
    seen = json.loads(check.stdout.strip().splitlines()[-1])
    assert seen["package"].startswith(str(site)), seen["package"]
    assert set(seen["runbooks"]) == RUNBOOKS and seen["links"] == []
    assert seen["kernel"] == "--ext=rbdnb"
    assert any("rbdnb.server" in step for step in seen["lab"]), seen["lab"]
    assert seen["magics"] == ["ceph", "rbd", "rbdnb", "virsh"]
    # `rbdnb run` of a runbook that came with the wheel (its kernel imports the wheel too).
    book = site / "rbdnb" / "runbooks" / "notebooks" / "00-preflight.ipynb"
    out = tmp_path / "out.ipynb"
    run = subprocess.run([sys.executable, "-m", "rbdnb", "run", str(book), "-p", "conf",
                          str(sandbox.conf_path), "-o", str(out), "--json"], cwd=away,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["status"] == "ok", run.stdout
