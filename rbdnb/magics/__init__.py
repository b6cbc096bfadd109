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


from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display
from traitlets import Bool, Unicode, observe

from .. import virt
from ..base.passthrough import REFUSED, check_line, parse_line, split_shell
from ..base.plan import Plan, Result
from ..base.secret import redact
from ..base.settings import settings
from ..ceph.cluster import Cluster
from ..errors import NotFound, RbdnbError
from .ceph import CEPH
from .qemu_img import QEMU_IMG
from .rbd import RBD
from .session import RBDNB
from .virsh import VIRSH
from .table import HelpShown, Table, magic_words, shown_output

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
        self._fleet: list[str] | None = None
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
        result, recorded = None, False
        for index, text in enumerate(lines):
            if index and result is not None and not recorded:
                display(result)  # each command's outcome, in order; the last is returned
            result = self._run_one(table, text)
            # Inside a runbook, a result is one of its steps: shown (once) and recorded.
            recorded = isinstance(result, (Plan, Result)) and settings.record(result)
        return result

    def fleet(self) -> list[str]:
        """The libvirt hosts ``--fleet`` names: a runbook's ``libvirt_uris``, else the fleet
        (``$RBDNB_LIBVIRT_URIS``, the sandbox's hosts) when it holds this notebook's URI."""
        return virt.fleet_of(self._uri, self._fleet)

    def join(self, cluster: Cluster, uri: str | None, dry_run: bool,
             fleet: list[str] | None = None) -> None:
        """A runbook's first cell: the magics act on its connection, with its dry run."""
        if self._cluster is not None and self._cluster is not cluster:
            self._cluster.close()
        self._cluster = cluster
        if self._libvirt is not None and uri != self._uri:
            virt.close_quietly(self._libvirt)
            self._libvirt = None
        self._uri = uri
        self._fleet = list(fleet) if fleet else None
        self.dry_run = bool(dry_run)

    def _run_one(self, table: Table, line: str):
        try:
            tokens = split_shell(line)
        except RbdnbError as exc:
            raise UsageError(f"%{table.tool}: {exc}") from None
        rough = [text for text, op in tokens if not op]
        if not rough or rough in (["-h"], ["--help"], ["help"]):
            print(table.usage())
            return None
        if rough[0] == "help" and table.real is not None:  # `%rbd help trash mv`
            return self._tool_help(table, rough[1:])
        tool_cmd = table.tool_command(rough)
        refused = tool_cmd is not None and tool_cmd[1].kind == REFUSED

        def refusal():
            return UsageError(f"%{table.tool} {' '.join(tool_cmd[0])}: {tool_cmd[1].why}")
        try:
            # Only the one command's `> FILE`, `| tee FILE`, `< FILE`; no other shell syntax,
            # no key on the line.
            argv, redirect = parse_line(f"%{table.tool}", line)
            check_line(f"%{table.tool}", argv)
        except RbdnbError as exc:
            raise (refusal() if refused else UsageError(redact(str(exc)))) from None
        given = {}
        native_argv = argv
        if table.extract is not None:
            native_argv, given = table.extract(argv)
        found = table.lookup(native_argv)
        if found is not None and redirect and tool_cmd is None:
            raise UsageError(f"%{table.tool} {' '.join(found[2])}: only the real tools' output "
                             f"goes to a file (> FILE); rbdnb's own result is a Python value "
                             f"(df.to_csv(FILE))")
        if found is not None and not redirect and not (
                tool_cmd and table.defer and table.defer(found[2], argv)):
            (parser, handler), rest, words = found
            if table.normalise is not None:
                rest = table.normalise(words, parser, rest, given)
            try:
                args = parser.parse_args(rest)
            except HelpShown:
                return None
            except UsageError:
                # A form only the real tool reads (rbd create --stripe-unit, rbd import
                # --image NAME FILE): the tool runs it, unless the line has rbdnb's own
                # options (--count, --exist-ok), whose error is the one to show.
                if refused:
                    raise refusal() from None
                if not (tool_cmd and not table.own_options(argv)):
                    raise
            else:
                try:
                    return handler(self, args)
                except NotFound as exc:
                    if self.dry(args) and words not in table.mutating and \
                            settings.recorder is not None:
                        # A dry run of a whole runbook made nothing: what a later step
                        # would show is not there yet. Not an error; a real run shows it.
                        return Plan(f"{table.tool} {' '.join(words)}: {exc} (yet)").add(
                            table.tool, *argv).note("a dry run made nothing: the real "
                                                   "run's earlier steps make it")
                    raise UsageError(redact(exc.worded(magic_words))) from None
                except RbdnbError as exc:
                    raise UsageError(redact(exc.worded(magic_words))) from None
        if tool_cmd is not None:
            if "-h" in argv or "--help" in argv:
                return self._tool_help(table, list(tool_cmd[0]))
            return self._run_tool(table, argv, redirect)
        table.unknown(native_argv)

    def _tool_help(self, table: Table, words: list[str]):
        from ..ceph.tools import tool_help
        try:
            cluster = self.cluster if table.real.name == "ceph" else None
            print(redact(tool_help(table.real.name, words, cluster)))
        except RbdnbError as exc:
            raise UsageError(redact(exc.worded(magic_words))) from None
        return None

    def _run_tool(self, table: Table, argv: list[str], redirect=None):
        """The real tool runs the line (rbdnb.base.passthrough): ``--yes`` confirms a
        destructive one, ``--dry-run`` (or the default) shows the command instead."""
        from ..base.passthrough import Output
        yes = "--yes" in argv
        flag = None
        rest = []
        for token in argv:
            if token == "--dry-run":
                flag = True
            elif token == "--no-dry-run":
                flag = False
            elif token != "--yes":
                rest.append(token)
        dry = self.dry_run if flag is None else flag
        try:
            result = table.run_tool(self, rest, confirm=yes, dry_run=dry, redirect=redirect)
        except RbdnbError as exc:
            text = redact(exc.worded(magic_words))
            if text.startswith(f"{table.real.name} "):
                text = "%" + text  # in the words of the magic the line was typed into
            raise UsageError(text) from None
        if isinstance(result, Output):
            return shown_output(result, asked_format=any(
                t.partition("=")[0] in ("--format", "-f", "--pretty-format") for t in rest))
        return result

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
