"""The real ``virsh`` on a libvirt URI: the sub-commands rbdnb has no function for.

As :mod:`rbdnb.ceph.tools` does for rbd and ceph (:mod:`rbdnb.base.passthrough`): the line is
checked against virsh's sub-commands, ``-c URI`` is added unless the line names its own, a
change is only planned on a dry run, a destroy (undefine, vol-delete, ...) needs
confirmation. What would show a cephx key is refused with the safe form: the secret's value
goes from Ceph to libvirt through the API (``%virsh secret-set-value --secret UUID --client
NAME``), never typed and never read back.
"""

from __future__ import annotations

from ..base import passthrough
from ..base.passthrough import (CHANGE, DESTROY, READ, REFUSED, Output, Redirect, Sub,
                                Tool, has_option)
from ..base.plan import Plan, Result

__all__ = ["VIRSH_TOOL", "run_virsh"]

_EDIT = ("opens an editor, which a notebook cell cannot drive: %virsh dumpxml NAME, change the "
         "XML, then %virsh define FILE (for a disk: %virsh replace-disk VM TARGET POOL/IMAGE)")


def _subs(kind: str, names: str, **kw) -> dict[tuple[str, ...], Sub]:
    return {(name,): Sub(kind, **kw) for name in names.split()}


_VIRSH = {
    **_subs(READ, """list dumpxml domblklist domblkinfo domblkstat domstate dominfo domuuid domid
            domname domiflist domifaddr domifstat domstats domjobinfo domcapabilities
            domdisplay capabilities version uri hostname nodeinfo sysinfo
            pool-list pool-info pool-dumpxml pool-uuid pool-name pool-capabilities
            find-storage-pool-sources find-storage-pool-sources-as
            vol-list vol-info vol-dumpxml vol-path vol-key vol-name vol-pool
            secret-list secret-dumpxml net-list net-info net-dumpxml iface-list
            snapshot-list snapshot-info snapshot-dumpxml
            checkpoint-list nodedev-list nodedev-dumpxml"""),
    **_subs(CHANGE, """secret-define pool-define pool-define-as pool-create pool-create-as
            pool-start pool-autostart pool-refresh pool-destroy
            vol-create vol-create-as vol-create-from vol-clone
            vol-download define create start shutdown reboot reset suspend resume destroy
            attach-device detach-device attach-disk detach-disk update-device autostart
            setmem setmaxmem setvcpus domrename desc snapshot-create snapshot-create-as
            snapshot-current domtime managedsave qemu-monitor-command
            migrate blockcopy blockpull blockresize"""),
    ("pool-build",): Sub(CHANGE, escalate=(("--overwrite", DESTROY),)),
    ("vol-resize",): Sub(CHANGE, escalate=(("--shrink", DESTROY),)),
    ("blockcommit",): Sub(CHANGE, escalate=(("--delete", DESTROY),)),
    **_subs(DESTROY, """undefine vol-delete vol-wipe vol-upload pool-undefine pool-delete
            secret-undefine snapshot-delete snapshot-revert managedsave-remove
            checkpoint-delete"""),
    **_subs(REFUSED, "edit pool-edit net-edit iface-edit snapshot-edit nwfilter-edit "
            "checkpoint-edit", why=_EDIT),
    ("secret-get-value",): Sub(REFUSED, why="would show the key in the notebook; libvirt "
                               "keeps rbdnb's ceph secrets private, and Ceph has the key "
                               "(%ceph auth get-key CLIENT -o FILE writes it 0600)"),
    ("console",): Sub(REFUSED, why="is interactive: the VM's console goes to its log "
                      "(--console-log of %virsh define), which a cell can read"),
    ("connect",): Sub(REFUSED, why="the magic's connection is set with %rbdnb connect --uri URI"),
    **_subs(REFUSED, "cd echo exit quit pwd", why="belongs to virsh's interactive shell; in a "
            "notebook IPython's own do it (%cd, %pwd, print)"),
}
SAFE_SECRET = ("%virsh secret-set-value --secret UUID --client NAME (rbdnb reads client.NAME's "
               "key from Ceph and gives it to libvirt through its API)")
# secret-set-value is rbdnb's own (the value from Ceph, through the API): virsh's forms, which
# take the key on the line or from a file, are refused with that form.
_VIRSH[("secret-set-value",)] = Sub(REFUSED, why=f"with the key on the command line (or in a "
                                    f"file a cell wrote) puts the key into the notebook and "
                                    f"the process list: use {SAFE_SECRET}")
_VIRSH_VALUED = frozenset("-c --connect -d --debug -l --log -e --escape -k --keepalive-interval "
                          "-K --keepalive-count".split())
_VIRSH_FLAGS = frozenset("-q --quiet -r --readonly -t --timing -v -V --version -h --help".split())
VIRSH_TOOL = Tool("virsh", _VIRSH, {}, _VIRSH_VALUED, _VIRSH_FLAGS)
# virsh has no client timeouts of its own: what moves a guest or its disks gets a long bound.
_SLOW = {("migrate",), ("blockcopy",), ("blockpull",), ("blockcommit",)}

def run_virsh(uri: str, argv: list[str], *, confirm: bool = False, dry_run: bool = False,
              timeout: float = 60, redirect: Redirect | None = None) -> Result | Plan | Output:
    """Run ``virsh -c URI ARGV`` (see :mod:`rbdnb.virt.tools`): an Output for a read, a
    Result (or its Plan on a dry run) for a change; a destroy needs ``confirm=True``.
    Raises InvalidArgument (shell syntax, a key on the line, a refused sub-command),
    ConfirmationRequired, Timeout, CommandFailed (virsh's own error line)."""
    program = ["virsh", *([] if has_option(argv, "-c", "--connect") else ["-c", uri]), *argv]
    found = VIRSH_TOOL.find(argv)
    if found is not None and found[0] in _SLOW:
        timeout = max(timeout, 1800)
    result = passthrough.run(VIRSH_TOOL, argv, program, confirm=confirm, dry_run=dry_run,
                             timeout=timeout, redirect=redirect)
    if isinstance(result, Output) and found and found[0][0] in _TABLES:
        result.value = table_rows(result.text)
    return result


# virsh sub-commands that print a table: a header, a line of dashes, rows.
_TABLES = {"list", "pool-list", "vol-list", "secret-list", "domblklist", "domiflist",
           "net-list", "iface-list", "snapshot-list", "checkpoint-list"}


def table_rows(text: str) -> list[dict] | None:
    """virsh's table output (``list``, ``vol-list``, ``domblklist``...) as records, or None
    for text of another shape (``--name``, ``--uuid``)."""
    import re
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or not set(lines[1].strip()) <= {"-"}:
        return None
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = [header[a:b].strip().lower().replace(" ", "_")
             for a, b in zip(starts, starts[1:] + [None])]
    rows = []
    for line in lines[2:]:
        cells = [line[a:b].strip() if a < len(line) else ""
                 for a, b in zip(starts, starts[1:] + [None])]
        rows.append(dict(zip(names, cells)))
    return rows
