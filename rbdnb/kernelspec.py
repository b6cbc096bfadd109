"""Install the Jupyter kernel "Python 3 (rbdnb)" from ``extensions/kernelspec/rbdnb``.

The template's ``@PYTHON@`` becomes this interpreter (the venv's, which sees
Debian's bindings); the spec is installed into ``sys.prefix`` so the venv's
Jupyter finds it, or for the user with ``user=True``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

NAME = "rbdnb"
TEMPLATE = Path(__file__).resolve().parent.parent / "extensions" / "kernelspec" / NAME


def spec_json(python: str = sys.executable) -> dict:
    text = (TEMPLATE / "kernel.json").read_text()
    return json.loads(text.replace("@PYTHON@", python))


def install(user: bool = False) -> str:
    """Install (or refresh) the kernel spec; returns where it went. Idempotent."""
    from jupyter_client.kernelspec import KernelSpecManager
    manager = KernelSpecManager()
    wanted = spec_json()
    installed = manager.find_kernel_specs().get(NAME)
    if installed:
        try:
            if json.loads((Path(installed) / "kernel.json").read_text()) == wanted:
                return installed
        except (OSError, ValueError):
            pass  # unreadable: install it again
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernel.json").write_text(json.dumps(wanted, indent=2) + "\n")
        return manager.install_kernel_spec(tmp, NAME, user=user,
                                           prefix=None if user else sys.prefix)
