"""Install the Jupyter kernel "Python 3 (rbdnb)": this interpreter (the venv's, which sees
Debian's bindings) running ipykernel with ``--ext=rbdnb`` (the magics and the output guard).

The spec is made here, not read from a file beside the package, so an installed wheel has
it too; it goes into ``sys.prefix`` so the venv's Jupyter finds it, or to the user's kernels
with ``user=True``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

NAME = "rbdnb"


def spec_json(python: str = sys.executable) -> dict:
    """The kernel.json of "Python 3 (rbdnb)" for ``python``."""
    return {"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     "--ext=rbdnb"],
            "display_name": "Python 3 (rbdnb)", "language": "python",
            "metadata": {"debugger": True}}


def _readable_by_all(directory: str) -> None:
    """The spec readable like the venv it belongs to: jupyter_client copies it with the
    mode of the temporary directory it came from (0700), which hides it from other users
    (they get NoSuchKernel)."""
    os.chmod(directory, 0o755)
    for entry in Path(directory).iterdir():
        os.chmod(entry, 0o755 if entry.is_dir() else 0o644)


def install(user: bool = False, *, dry_run: bool = False) -> str:
    """Install (or refresh) the kernel spec; returns where it went. Idempotent.
    With ``dry_run``, says what it would do and changes nothing."""
    from jupyter_client.kernelspec import KernelSpecManager
    manager = KernelSpecManager()
    wanted = spec_json()
    installed = manager.find_kernel_specs().get(NAME)
    if dry_run:
        where = installed or ("the user's kernels" if user else f"{sys.prefix}/share/jupyter")
        return f"plan: install the kernel 'Python 3 (rbdnb)' ({sys.executable}) in {where}"
    if installed:
        try:
            if json.loads((Path(installed) / "kernel.json").read_text()) == wanted:
                _readable_by_all(installed)
                return installed
        except (OSError, ValueError):
            pass  # unreadable: install it again
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        spec = Path(tmp) / "kernel.json"
        spec.write_text(json.dumps(wanted, indent=2) + "\n")
        os.chmod(spec, 0o644)
        where = manager.install_kernel_spec(tmp, NAME, user=user,
                                            prefix=None if user else sys.prefix)
    _readable_by_all(where)
    return where
