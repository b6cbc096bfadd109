"""Install rbdnb's JupyterLab side into this environment (``rbdnb lab install``).

* the prebuilt frontend extension, built by ``scripts/build-frontend.sh`` from
  ``extensions/jupyterlab`` into ``rbdnb/labextension``, is linked into
  ``sys.prefix/share/jupyter/labextensions/@rbdnb/jupyterlab`` (where JupyterLab
  looks for prebuilt extensions);
* the server extension ``rbdnb.server`` is enabled, and jupyter-scheduler told to run
  runbooks as ``rbdnb run`` does, in
  ``sys.prefix/etc/jupyter/jupyter_server_config.d/rbdnb.json``.

Both steps are idempotent; the result says whether anything changed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .errors import MissingTool

NAME = "@rbdnb/jupyterlab"
BUILT = Path(__file__).resolve().parent / "labextension"
# jupyter-scheduler runs runbooks as rbdnb run does (rbdnb.server.scheduler).
SERVER_CONFIG = {"ServerApp": {"jpserver_extensions": {"rbdnb.server": True}},
                 "SchedulerApp": {"scheduler_class": "rbdnb.server.scheduler.RunbookScheduler"}}


def _targets(prefix: str) -> tuple[Path, Path]:
    base = Path(prefix)
    return (base / "share" / "jupyter" / "labextensions" / NAME,
            base / "etc" / "jupyter" / "jupyter_server_config.d" / "rbdnb.json")


def install(prefix: str = sys.prefix, *, dry_run: bool = False) -> list[str]:
    """Link the built frontend and enable the server extension; returns what changed
    (with ``dry_run``, what would change, changing nothing)."""
    if not (BUILT / "package.json").is_file():
        raise MissingTool("the built JupyterLab extension (rbdnb/labextension)",
                          how="build it with scripts/build-frontend.sh (scripts/setup.sh does)")
    link, config = _targets(prefix)
    changed = []
    text = json.dumps(SERVER_CONFIG, indent=2) + "\n"
    if dry_run:
        if not (link.is_symlink() and os.readlink(link) == str(BUILT)):
            changed.append(f"link {link} -> {BUILT}")
        if not config.is_file() or config.read_text() != text:
            changed.append(f"enable the server extension rbdnb.server in {config}")
        return changed
    if not (link.is_symlink() and os.readlink(link) == str(BUILT)):
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            raise FileExistsError(f"{link} is a directory not made by rbdnb: remove it first")
        link.symlink_to(BUILT, target_is_directory=True)
        changed.append(f"linked {link} -> {BUILT}")
    text = json.dumps(SERVER_CONFIG, indent=2) + "\n"
    if not config.is_file() or config.read_text() != text:
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(text)
        changed.append(f"enabled the server extension rbdnb.server in {config}")
    return changed
