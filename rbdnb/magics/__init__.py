"""IPython magics: ``%rbd``, ``%ceph``, ``%qemu-img``, ``%virsh`` and ``%rbdnb``.

A thin front end: each line is parsed with the tool's own sub-command words,
the core library does the work, and the result is displayed and returned (so
``df = %rbd ls pool`` works). User errors show one line (IPython's
``UsageError``), not a traceback. ``--dry-run`` on a mutating command shows
the plan and changes nothing; ``%config RbdnbMagics.dry_run = True`` makes that
the default. Every magic also works as a cell magic, one command a line, stopping
at the first error.

One module per tool (:mod:`~rbdnb.magics.rbd`, ``ceph``, ``qemu_img``, ``virsh``,
``session`` for ``%rbdnb``) holds its table of sub-commands; :mod:`~rbdnb.magics.table` what
they are made of; :mod:`~rbdnb.magics.guard` keeps cephx keys out of every kernel output.
"""

from __future__ import annotations

import shlex

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display
from traitlets import Bool, Unicode, observe

from .. import virt
from ..base.secret import redact
from ..base.settings import settings
from ..ceph.cluster import Cluster
from ..errors import RbdnbError
from .ceph import CEPH
from .qemu_img import QEMU_IMG
from .rbd import RBD
from .session import RBDNB
from .virsh import VIRSH
from .table import HelpShown, Table, magic_words

TABLES = (RBD, CEPH, QEMU_IMG, VIRSH, RBDNB)
__all__ = ["RbdnbMagics", "TABLES", "install_output_guard", "load_ipython_extension",
           "magic_words"]


@magics_class
class RbdnbMagics(Magics):
    """``%rbd``, ``%ceph``, ``%qemu-img`` (also ``%qemu_img``), ``%virsh``, ``%rbdnb``."""

    dry_run = Bool(False, help="show plans instead of acting, unless a command says "
                   "otherwise (--no-dry-run); the widget forms follow it too").tag(config=True)
    conf = Unicode("", help="Ceph conf to connect with (default: the sandbox)").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._cluster: Cluster | None = None
        self._libvirt = None
        self._uri: str | None = None
        if settings.dry_run and not self.dry_run:
            self.dry_run = True  # $RBDNB_DRY_RUN

    @observe("dry_run")
    def _dry_run_changed(self, change):
        settings.dry_run = bool(change["new"])  # the forms follow the magics' default

    # -- connections ------------------------------------------------------------------------
    def connect(self, conf=None, client="admin", keyring=None, uri=None) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        try:
            self._cluster = Cluster(conf or self.conf or None, client=client,
                                    keyring=keyring).connect()
        except RbdnbError as exc:
            raise UsageError(redact(exc.worded(magic_words))) from None
        if self._libvirt is not None:
            self._libvirt.close()
            self._libvirt = None
        self._uri = uri

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self.connect()
        return self._cluster

    def cluster_for(self, *targets) -> Cluster | None:
        return self.cluster if any(str(t).startswith("rbd:") for t in targets) else None

    @property
    def libvirt(self):
        if self._libvirt is not None and not self._libvirt_alive():
            virt.close_quietly(self._libvirt)  # the daemon restarted: connect again
            self._libvirt = None
        if self._libvirt is None:
            self._libvirt = virt.connect_libvirt(self._uri)
        return self._libvirt

    def _libvirt_alive(self) -> bool:
        try:
            return bool(self._libvirt.isAlive())
        except Exception:
            return False

    def status(self):
        import pandas as pd
        c = self._cluster
        rows = {"ceph conf": c.conffile if c else "(not connected)",
                "client": f"client.{c.client}" if c else "",
                "fsid": c.fsid if c else "",
                "libvirt": self._uri or virt.default_uri(),
                "dry_run default": self.dry_run}
        return pd.Series(rows, name="rbdnb").to_frame()

    def dry(self, args) -> bool:
        """--dry-run / --no-dry-run when given, else the default (%config RbdnbMagics.dry_run)."""
        flag = getattr(args, "dry_run", None)
        return self.dry_run if flag is None else bool(flag)

    def progress(self, description: str, total: int):
        """A progress callback that drives an ipywidgets bar (or nothing, outside a notebook)."""
        try:
            import ipywidgets as widgets
            bar = widgets.IntProgress(min=0, max=max(1, total), description="",
                                      layout=widgets.Layout(width="60%"))
            label = widgets.Label(description)
            display(widgets.HBox([bar, label]))
        except Exception:
            return None

        def update(done: int, all_: int) -> None:
            bar.max = max(1, all_)
            bar.value = min(done, all_)
            label.value = f"{description}: {done}/{all_}" if all_ < 10_000 else \
                f"{description}: {done / max(1, all_):.0%}"
        return update

    # -- running ----------------------------------------------------------------------------
    def _run(self, table: Table, line: str, cell: str | None):
        lines = [line] if cell is None else [ln for ln in cell.splitlines()
                                             if ln.strip() and not ln.strip().startswith("#")]
        result = None
        for index, text in enumerate(lines):
            if index and result is not None:
                display(result)  # each command's outcome, in order; the last is returned
            result = self._run_one(table, text)
        return result

    def _run_one(self, table: Table, line: str):
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%{table.tool}: {exc}") from None
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(table.usage())
            return None
        given = {}
        if table.extract is not None:
            argv, given = table.extract(argv)
        (parser, handler), rest, words = table.find(argv)
        if table.normalise is not None:
            rest = table.normalise(words, parser, rest, given)
        try:
            args = parser.parse_args(rest)
        except HelpShown:
            return None
        try:
            return handler(self, args)
        except RbdnbError as exc:
            raise UsageError(redact(exc.worded(magic_words))) from None

    @line_cell_magic
    def rbd(self, line, cell=None):
        """RBD images, snapshots and clones: `%rbd ls POOL`, `%rbd create POOL/IMG 10G`, ...

        `%rbd --help` lists the commands; `%rbd COMMAND --help` describes one.
        """
        return self._run(RBD, line, cell)

    @line_cell_magic
    def ceph(self, line, cell=None):
        """Pools, users, health: `%ceph osd pool create P`, `%ceph auth get-or-create ...`."""
        return self._run(CEPH, line, cell)

    @line_cell_magic
    def qemu_img(self, line, cell=None):
        """qemu-img on files and rbd:pool/image: create, resize, info, convert."""
        return self._run(QEMU_IMG, line, cell)

    @line_cell_magic
    def virsh(self, line, cell=None):
        """libvirt with RBD: secret-define, pool-define-rbd, define, attach-rbd, ..."""
        return self._run(VIRSH, line, cell)

    @line_cell_magic
    def rbdnb(self, line, cell=None):
        """`%rbdnb connect [--conf PATH] [--id NAME] [--keyring PATH] [--uri URI]`, `%rbdnb status`."""
        return self._run(RBDNB, line, cell)


def install_output_guard(shell) -> None:
    """Redact anything shaped like a cephx key from every output of the kernel (rbdnb.magics.guard)."""
    from .guard import install
    install(shell)


def load_ipython_extension(shell) -> None:
    """``%load_ext rbdnb``: register the magics and install the output guard."""
    magics = RbdnbMagics(shell=shell)
    shell.register_magics(magics)
    # IPython reads `%qemu-img` up to the space: register the tool's own name too.
    shell.register_magic_function(magics.qemu_img, "line_cell", "qemu-img")
    install_output_guard(shell)
