"""The Jupyter server extension: rbdnb's REST API for the JupyterLab extension.

Enabled by ``rbdnb lab install`` (``scripts/setup.sh`` and ``binder/postBuild`` run it)::

    GET  /rbdnb/api/status        cluster health, fullness, fsid, libvirt, KVM or TCG (cached)
    GET  /rbdnb/api/runbooks      each runbook: title, description, parameters
    POST /rbdnb/api/runs          {"runbook", "parameters"} -> a run in the background
    GET  /rbdnb/api/runs[/ID]     state, progress by cell, links to the notebook and its HTML
    POST /rbdnb/api/copies        {"runbook", "parameters"} -> a new notebook, parameters filled in

Every handler needs Jupyter's own authentication (token or cookie). The settings below
are traitlets: ``jupyter lab --RbdnbServer.conf=/etc/ceph/ceph.conf``, or
``c.RbdnbServer.conf`` in ``jupyter_server_config.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Unicode

from .handlers import CopiesHandler, RunbooksHandler, RunHandler, RunsHandler, StatusHandler
from .runs import Runbooks, RunStore
from .status import StatusCache



class RbdnbServer(ExtensionApp):
    """The Jupyter server extension: runbooks, runs and the cluster status for the lab extension."""
    name = "rbdnb"

    conf = Unicode("", config=True,
                   help="ceph.conf of the cluster to show and run against ('' = the running "
                        "sandbox, else $CEPH_CONF)")
    libvirt_uri = Unicode("", config=True, help="libvirt URI ('' = the sandbox's)")
    runbooks_dir = Unicode("", config=True,
                           help="where the runbooks are ('' = the ones that come with rbdnb)")
    runs_dir = Unicode("", config=True,
                       help="where runs are kept ('' = runs/lab under the Jupyter root)")
    status_ttl = Float(5.0, config=True, help="seconds a cluster status is reused")
    status_timeout = Float(10.0, config=True,
                           help="seconds a status request waits for the cluster at most")

    def initialize_settings(self):
        root = Path(self.serverapp.root_dir).expanduser()
        runs_dir = Path(self.runs_dir).expanduser() if self.runs_dir else root / "runs" / "lab"
        env = dict(os.environ)
        if self.conf:
            env["CEPH_CONF"] = self.conf
        if self.libvirt_uri:
            env["LIBVIRT_DEFAULT_URI"] = self.libvirt_uri
        if not self.runbooks_dir:
            from ..runbooks import bundled
            self.runbooks_dir = str(bundled())
        self.runbooks = Runbooks(self.runbooks_dir)
        self.runs = RunStore(runs_dir, self.runbooks, root, env=env,
                             defaults={"conf": self.conf, "libvirt_uri": self.libvirt_uri})
        self.status = StatusCache(conf=self.conf or None, libvirt_uri=self.libvirt_uri or None,
                                  ttl=self.status_ttl, timeout=self.status_timeout)
        self.log.info("rbdnb: runbooks from %s, runs in %s", self.runbooks_dir, runs_dir)

    async def _start_jupyter_server_extension(self, serverapp):
        # Reap finished runs even when no page asks (no zombie processes, outcome published).
        from tornado.ioloop import PeriodicCallback
        self._reaper = PeriodicCallback(self.runs.reap, 2000)
        self._reaper.start()

    def initialize_handlers(self):
        kw = {"ext": self}
        self.handlers.extend([
            (r"/rbdnb/api/status", StatusHandler, kw),
            (r"/rbdnb/api/runbooks", RunbooksHandler, kw),
            (r"/rbdnb/api/runs", RunsHandler, kw),
            (r"/rbdnb/api/runs/([^/]+)", RunHandler, kw),
            (r"/rbdnb/api/copies", CopiesHandler, kw),
        ])


def _jupyter_server_extension_points():
    return [{"module": "rbdnb.server", "app": RbdnbServer}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "@rbdnb/jupyterlab"}]
