"""The dry-run contract: in every front end, a dry run changes nothing.

Every command registered in the magic tables, every widget form, every ``rbdnb`` CLI
command that changes something, and every runbook is run as a dry run -- by its flag and
by the shared default -- against a world that has something of everything (a pool, an
image with snapshots, a clone, a cephx user with its libvirt secret, a libvirt rbd pool,
a defined VM). The cluster and libvirt are compared before and after with the real CLIs:
``rbd ls``, ``rbd snap ls``, ``ceph auth ls``, ``ceph osd pool ls``, ``virsh list --all``,
``virsh secret-list``, ``virsh pool-list --all``. A command or form added without an
example here fails the test, so nothing new escapes the contract.
"""
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import rbdnb
from rbdnb import cli as rbdnb_cli, virt, widgets
from rbdnb.magics import TABLES
from rbdnb.base.plan import Plan
from rbdnb.base.settings import settings

ROOT = Path(__file__).resolve().parents[2]
RUN = uuid.uuid4().hex[:6]
POOL = f"dry-{RUN}"
USER = f"dry{RUN}"
LVPOOL = f"dry-lp-{RUN}"
VM = f"rbdnb-dry-{RUN}"


@pytest.fixture(scope="module")
def world(sandbox, cluster, tmp_path_factory):
    """Something of everything, for the examples to act on."""
    files = tmp_path_factory.mktemp("dry")
    raw = files / "disk.raw"
    raw.write_bytes(os.urandom(1 << 20))
    rbdnb.create_pool(cluster, POOL, 8)
    rbdnb.create_image(cluster, f"{POOL}/img", "16M")
    rbdnb.create_snapshot(cluster, f"{POOL}/img@snap")
    rbdnb.create_snapshot(cluster, f"{POOL}/img@prot")
    rbdnb.protect_snapshot(cluster, f"{POOL}/img@prot")
    rbdnb.create_image(cluster, f"{POOL}/lone", "8M")
    rbdnb.clone(cluster, f"{POOL}/img@prot", f"{POOL}/cl")
    rbdnb.create_user(cluster, USER, [POOL])
    conn = virt.connect_libvirt(sandbox.libvirt_uri)
    # The secret and the pool on both hosts of the sandbox (one UUID): a VM may move.
    uri2 = sandbox.host_uris()[1]
    fleet = virt.apply_fleet(cluster, [sandbox.libvirt_uri, uri2], POOL, libvirt_pool=LVPOOL,
                             client=USER)
    assert fleet.value.ok.all(), fleet.value
    secret = fleet.value.secret[0]
    # Its console is logged (nothing boots it here: %virsh console says it checked nothing).
    virt.define_vm(conn, VM, [f"{POOL}/cl"], cluster=cluster,
                   console_log=str(files / "console.log"))
    fields = {"pool": POOL, "image": "img", "snap": "snap", "protected": "prot",
              "lone": "lone", "clone": "cl", "file": str(raw), "outfile": str(files / "out.raw"),
              "vm": VM, "lvpool": LVPOOL, "user": USER, "conf": str(sandbox.conf_path),
              "uri": sandbox.libvirt_uri, "uri2": uri2, "secret": secret,
              "peer_conf": sandbox.site_confs()["b"]}
    yield fields
    try:
        virt.undefine_vm(conn, VM, missing_ok=True)
        for c in (conn, conn2 := virt.connect_libvirt(uri2)):
            virt.delete_rbd_pool(c, LVPOOL)
            virt.undefine_secret(c, secret)
        conn2.close()
    finally:
        conn.close()
    rbdnb.delete_user(cluster, USER, confirm=True, missing_ok=True)
    rbdnb.delete_pool(cluster, POOL, confirm=True)


@pytest.fixture
def state(cli, sandbox):
    """The cluster and libvirt (every host) as the real CLIs see them."""
    uris = sandbox.host_uris()

    def take():
        pools = sorted(cli("ceph", "osd", "pool", "ls", json_out=True))
        images = {p: sorted(cli("rbd", "ls", p, json_out=True)) for p in pools
                  if p != "device_health_metrics"}
        snaps = {f"{p}/{i}": sorted(s["name"] for s in cli("rbd", "snap", "ls", f"{p}/{i}",
                                                           json_out=True))
                 for p, names in images.items() for i in names}
        users = sorted(e["entity"] for e in cli("ceph", "auth", "ls", json_out=True)["auth_dump"])
        virsh = {(uri, what): cli("virsh", "-c", uri, *argv).stdout for uri in uris
                 for what, argv in {"domains": ["list", "--all"], "secrets": ["secret-list"],
                                    "pools": ["pool-list", "--all"]}.items()}
        running = [cli("virsh", "-c", uri, "list", "--name").stdout for uri in uris]
        return {"pools": pools, "images": images, "snapshots": snaps, "users": users,
                "libvirt": virsh, "running": running}
    return take


@pytest.fixture(scope="module")
def ip(sandbox, world):
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext rbdnb", store_history=False)
    result = shell.run_cell(f"%rbdnb connect --conf {sandbox.conf_path} "
                            f"--uri {sandbox.libvirt_uri}")
    assert result.success, result.error_in_exec
    yield shell


def run_cell(ip, cell):
    result = ip.run_cell(cell, store_history=False)
    error = result.error_in_exec or result.error_before_exec
    if error is not None:
        raise error
    return result.result


COMMANDS = [(table, words) for table in TABLES for words in table.commands]


@pytest.mark.parametrize("table, words", COMMANDS,
                         ids=[f"{t.tool} {' '.join(w)}" for t, w in COMMANDS])
def test_every_magic_command_changes_nothing_as_a_dry_run(ip, world, state, table, words):
    example = table.examples[words].format(**world)
    line = f"%{table.tool} {example}"
    mutating = words in table.mutating
    before = state()
    if mutating:
        shown = run_cell(ip, f"{line} --dry-run")  # the flag
        assert isinstance(shown, (Plan, str)), (line, type(shown))
        run_cell(ip, "%config RbdnbMagics.dry_run = True")  # the shared default
        try:
            by_default = run_cell(ip, line)
            assert isinstance(by_default, (Plan, str)), (line, type(by_default))
        finally:
            run_cell(ip, "%config RbdnbMagics.dry_run = False")
    else:
        run_cell(ip, line)  # a command that only reads: run for real
    assert state() == before, line
    assert not Path(world["outfile"]).exists()


FORMS = {
    "create_image_form": (lambda c, conn, w: widgets.create_image_form(c, pool=w["pool"]),
                          {"name": "from-form", "size": "8M"}),
    "clone_form": (lambda c, conn, w: widgets.clone_form(c), {
        "parent": "{pool}/{image}@{protected}", "pattern": "{pool}/form-{{i}}", "count": 3}),
    "attach_form": (lambda c, conn, w: widgets.attach_form(c, conn, domain=w["vm"]),
                    {"image": "{pool}/{lone}", "target": "vdc"}),
    "bench_form": (lambda c, conn, w: widgets.bench_form(c, "{pool}/{lone}".format(**w)),
                   {"engines": ("native",), "total": "4M", "io_type": "write"}),
}


def test_every_form_is_covered():
    made = {n for n in dir(widgets) if n.endswith("_form") and callable(getattr(widgets, n))}
    assert made == set(FORMS), f"forms without a dry-run case here: {made ^ set(FORMS)}"


@pytest.mark.parametrize("name", sorted(FORMS))
def test_every_form_changes_nothing_as_a_dry_run(cluster, sandbox, world, state, name):
    make, values = FORMS[name]
    conn = virt.connect_libvirt(sandbox.libvirt_uri)
    try:
        before = state()
        for flag, default in ((True, False), (None, True)):
            settings.dry_run = default  # the shared default (what %config sets)
            form = make(cluster, conn, world)
            for field, value in values.items():
                form.fields[field].value = value.format(**world) if isinstance(value, str) \
                    else value
            if flag is not None:
                form.dry_run.value = flag  # the form's own box
            assert form.dry_run.value is True
            assert not form.run_button.disabled, form.status.value
            form.run_button.click()
            assert form.error is None, form.error
            assert isinstance(form.result, Plan), (name, form.result)
        assert state() == before, name
    finally:
        settings.dry_run = False
        conn.close()


def books(tmp):
    """Two runbooks, one that changes things and teardown, for `docs build` (every runbook's
    own dry run is tested below)."""
    import shutil
    where = tmp / "books"
    where.mkdir(exist_ok=True)
    for name in ("01-qemu-rbd", "99-teardown"):
        shutil.copy(ROOT / "runbooks" / f"{name}.ipynb", where)
    return where


def cli_examples(world, sandbox, tmp):
    conf = ["--conf", world["conf"]]
    return {
        ("sandbox", "up"): ["sandbox", "up", "--dir", str(tmp / "never")],
        ("sandbox", "down"): ["sandbox", "down", "--dir", str(sandbox.dir)],
        ("sandbox", "smoke"): ["sandbox", "smoke", "--dir", str(sandbox.dir)],
        ("guest", "build"): ["guest", "build", str(tmp / "g" / "guest.qcow2")],
        ("kernel", "install"): ["kernel", "install"],
        ("lab", "install"): ["lab", "install"],
        ("run",): ["run", str(ROOT / "runbooks" / "01-qemu-rbd.ipynb"), "-p", "conf",
                   world["conf"], "-p", "pool", world["pool"], "-o", str(tmp / "r.ipynb")],
        ("docs", "build"): ["docs", "build", str(tmp / "site"), "--runbooks", str(books(tmp)),
                            "-p", "conf", world["conf"], "-p", "libvirt_uri", world["uri"]],
        ("bench", "run"): ["bench", "run", f"{world['pool']}/{world['lone']}", *conf],
        ("bench", "matrix"): ["bench", "matrix", f"{world['pool']}/{world['lone']}", *conf],
        ("bench", "compare"): ["bench", "compare"],
        ("bench", "scale"): ["bench", "scale", "--conf", world["conf"], "--sizes", "10,20"],
    }


def test_every_cli_command_changes_nothing_as_a_dry_run(world, sandbox, state, tmp_path):
    examples = cli_examples(world, sandbox, tmp_path)
    parser_leaves = set()

    def walk(p, words=()):
        import argparse
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            parser_leaves.add(words)
        for name, child in (subs[0].choices.items() if subs else ()):
            walk(child, words + (name,))
    walk(rbdnb_cli.build_parser())
    assert parser_leaves - rbdnb_cli.READ_ONLY == set(examples), "a CLI command has no case"
    spec_mtime = os.stat(Path(sys.prefix) / "share/jupyter/kernels/rbdnb/kernel.json").st_mtime
    before = state()
    for words, argv in examples.items():
        # The flag, and for two of them the shared default ($RBDNB_DRY_RUN).
        runs = [(argv + ["--dry-run"], {})]
        if words in (("sandbox", "down"), ("run",)):
            runs.append((argv, {"RBDNB_DRY_RUN": "1"}))
        for args, extra in runs:
            proc = subprocess.run([sys.executable, "-m", "rbdnb", *args], cwd=ROOT,
                                  capture_output=True, text=True, timeout=900,
                                  env={**os.environ, **extra})
            assert proc.returncode == 0, (args, proc.stderr[-800:])
    assert state() == before
    assert sandbox.is_running()
    assert not (tmp_path / "never").exists() and not (tmp_path / "g").exists()
    assert os.stat(Path(sys.prefix) / "share/jupyter/kernels/rbdnb/kernel.json").st_mtime == \
        spec_mtime


RUNBOOKS = sorted(p.stem for p in (ROOT / "runbooks").glob("[0-9][0-9]-*.ipynb"))


@pytest.mark.parametrize("name", RUNBOOKS)
def test_every_runbook_changes_nothing_as_a_dry_run(sandbox, world, state, tmp_path, name):
    from rbdnb.runbooks.run import run_runbook, runbook_parameters
    declared = runbook_parameters(ROOT / "runbooks" / f"{name}.ipynb")
    params = {"conf": str(sandbox.conf_path), "libvirt_uri": sandbox.libvirt_uri,
              "dry_run": True}
    if "confirm" in declared:
        params["confirm"] = True
    if "dest_uri" in declared:
        params["dest_uri"] = world["uri2"]
    if "peer_conf" in declared:
        params["peer_conf"] = sandbox.site_confs()["b"]
        params["peer_uri"] = world["uri2"]
    if "pools" in declared:
        params["pools"] = [world["pool"]]  # teardown would remove it, but not in a dry run
        params["users"] = [world["user"]]
        params["vm_prefix"] = "rbdnb-dry-"
    guest_dir = tmp_path / "guests"
    if "guest_dir" in declared:
        params["guest_dir"] = str(guest_dir)
    before = state()
    outcome = run_runbook(ROOT / "runbooks" / f"{name}.ipynb", params,
                          output=tmp_path / f"{name}.ipynb")
    assert outcome.exit_code == 0, outcome.message
    assert outcome.summary["dry_run"] is True and outcome.summary["changed"] == 0
    assert state() == before
    assert not guest_dir.exists(), "a dry run built the guest"


TOOL_COMMANDS = [(table, words) for table in TABLES if table.real is not None
                 for words, sub in table.real.subs.items()
                 if sub.kind in ("change", "destroy") and table.lookup(list(words)) is None]


def test_every_real_tool_command_changes_nothing_as_a_dry_run(ip, world, state):
    """The long tail the real tools run (rbdnb.base.passthrough): as a dry run, by flag and by
    the shared default, each of them is only its command line. (The state is read once
    before and once after all of them: a dry run runs no program at all.)"""
    before = state()
    for table, words in TOOL_COMMANDS:
        line = f"%{table.tool} {' '.join(words)} {world['pool']}/{world['image']}"
        assert isinstance(run_cell(ip, f"{line} --dry-run"), Plan), line
        run_cell(ip, "%config RbdnbMagics.dry_run = True")
        try:
            assert isinstance(run_cell(ip, line), Plan), line
        finally:
            run_cell(ip, "%config RbdnbMagics.dry_run = False")
    assert len(TOOL_COMMANDS) > 100
    assert state() == before
