"""The real tools' long tail in the magics (rbdnb.base.passthrough, rbdnb.ceph.tools,
rbdnb.virt.tools): what runs, with which connection, what a dry run and a missing --yes
do, what is refused -- with the programs replaced at the one runner (proc.watch), so
nothing runs. tests/integration/test_conformance.py runs the real programs."""
import json
import os
import stat

import pytest
from IPython.core.error import UsageError

from rbdnb.base import proc
from rbdnb.base.passthrough import CHANGE, DESTROY, REFUSED
from rbdnb.base.plan import Plan, Result
from rbdnb.magics import TABLES
from rbdnb.sandbox import new_cephx_key
from tests.unit.magics.conftest import run

KEY = new_cephx_key()  # a fresh key of the real shape, made here: none is committed


class Programs:
    """Stands in for every program the magics run: records argv, answers ``stdout``."""

    def __init__(self):
        self.ran: list[list[str]] = []
        self.stdout = ""

    def watch(self, argv, on_tick, *, env=None, interval=0.05, what=None, stdin=None,
              stdout=None):
        self.ran.append([str(a) for a in argv])
        if "-o" in argv:  # ceph writes the file itself (keeping the mode it finds)
            with open(argv[argv.index("-o") + 1], "w") as fh:
                fh.write(self.stdout)
            return "", ""
        if stdout is not None:
            stdout.write(self.stdout.encode())
            return "", ""
        return self.stdout, ""


@pytest.fixture
def programs(monkeypatch):
    fake = Programs()
    monkeypatch.setattr(proc, "watch", fake.watch)
    return fake


@pytest.fixture
def ip(shell, cluster):
    import rbdnb
    rbdnb.create_pool(cluster, "p")
    return shell


def tool_only(table):
    """The real tool's sub-commands that rbdnb has no command of its own for."""
    return [(table, words, sub) for words, sub in table.real.subs.items()
            if table.lookup(list(words)) is None]


TOOL_TABLES = [t for t in TABLES if t.real is not None]
CASES = [case for t in TOOL_TABLES for case in tool_only(t)]


@pytest.mark.parametrize("table, words, sub", CASES,
                         ids=[f"{t.tool} {' '.join(w)}" for t, w, _ in CASES])
def test_every_tool_command_is_planned_by_a_dry_run_and_refusals_say_why(ip, programs, table,
                                                                          words, sub):
    line = f"%{table.tool} {' '.join(words)} p/img"
    if sub.kind == REFUSED:
        with pytest.raises(UsageError) as refused:
            run(ip, line)
        text = str(refused.value)
        assert "\n" not in text and text.startswith(f"%{table.tool} ") and (
            "%" in text[1:] or "terminal" in text), text  # names what to use instead
    elif sub.kind in (CHANGE, DESTROY):
        assert isinstance(run(ip, f"{line} --dry-run"), Plan), line
        run(ip, "%config RbdnbMagics.dry_run = True")
        assert isinstance(run(ip, line), Plan), line
        run(ip, "%config RbdnbMagics.dry_run = False")
    else:
        return
    assert programs.ran == [], line  # a dry run or a refusal ran nothing


def test_destructive_needs_yes_and_then_runs_with_this_connection(ip, programs, cluster):
    with pytest.raises(UsageError, match=r"^%rbd trash remove destroys data: add --yes"):
        run(ip, "%rbd trash rm p/1234abcd")
    assert programs.ran == []
    done = run(ip, "%rbd trash rm p/1234abcd --yes")
    assert isinstance(done, Result) and done.changed
    argv = programs.ran[-1]
    assert argv[0] == "rbd" and argv[-2:] == ["rm", "p/1234abcd"][-2:]
    assert ["--conf", cluster.conffile] == argv[1:3] and "--id" in argv and "--yes" not in argv
    assert "--client-mount-timeout" in argv and "--rados-osd-op-timeout" in argv
    assert not any(KEY in a or a.startswith("AQ") for a in argv)


def test_a_line_that_names_its_own_client_keeps_it(ip, programs):
    run(ip, "%rbd --id libvirt --keyring /etc/ceph/k trash ls p")
    argv = programs.ran[-1]
    assert argv.count("--id") == 1 and argv[argv.index("--id") + 1] == "libvirt"
    assert argv.count("--keyring") == 1 and "/etc/ceph/k" in argv


def test_listings_come_back_as_tables_or_as_the_json_asked_for(ip, programs):
    programs.stdout = json.dumps([{"id": "10ab", "name": "bar"}])
    frame = run(ip, "%rbd trash ls p")
    assert list(frame["name"]) == ["bar"] and programs.ran[-1][-2:] == ["--format", "json"]
    asked = run(ip, "%rbd trash ls p --format json")
    assert asked == [{"id": "10ab", "name": "bar"}]
    programs.stdout = json.dumps({"pool": "p", "size": 3})
    frame = run(ip, "%ceph osd pool get p size")
    assert frame.loc["size"].iloc[0] == 3


@pytest.mark.parametrize("line", [
    f"%rbd ls p --key {KEY}",
    f"%ceph auth import --key={KEY}",
    f"%virsh secret-set-value --secret 6dd3e4a5-1d76-44ce-961f-f119f5aad935 --base64 {KEY}",
    "%virsh secret-set-value --secret 6dd3e4a5-1d76-44ce-961f-f119f5aad935 --base64 "
    "$(cat client.libvirt.key)",
    "%virsh secret-set-value --interactive 6dd3e4a5-1d76-44ce-961f-f119f5aad935",
])
def test_a_key_on_the_line_is_refused_and_never_repeated(ip, programs, line):
    with pytest.raises(UsageError) as refused:
        run(ip, line)
    assert KEY not in str(refused.value) and "\n" not in str(refused.value)
    assert programs.ran == []
    if "secret-set-value" in line:
        assert "--secret UUID --client NAME" in str(refused.value)


@pytest.mark.parametrize("line", [
    "%ceph auth get client.glance | ssh glance-host sudo tee /etc/ceph/k",
    "%rbd merge-diff first second - | rbd merge-diff - third result",
    "%rbd export p/img -",
    "%rbd import - p/img",
    "%rbd ls p && rm -rf /",
])
def test_shell_syntax_and_stdio_are_refused_in_one_line(ip, programs, line):
    with pytest.raises(UsageError) as refused:
        run(ip, line)
    assert "\n" not in str(refused.value)
    assert programs.ran == []


def test_output_to_a_file_is_private_and_not_shown(ip, programs, tmp_path):
    programs.stdout = f"[client.x]\n\tkey = {KEY}\n"
    for line in (f"%ceph auth get client.x -o {tmp_path}/a.keyring",
                 f"%ceph auth get client.x > {tmp_path}/b.keyring",
                 f"%ceph auth get-key client.x | sudo tee {tmp_path}/c.key"):
        shown = run(ip, line)
        assert KEY not in str(shown) and "mode 0600" in str(shown)
    for name in ("a.keyring", "b.keyring", "c.key"):
        path = tmp_path / name
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert KEY in path.read_text()
    assert all(">" not in argv and "|" not in argv for argv in programs.ran)


def test_keys_in_what_a_tool_prints_are_redacted(ip, programs):
    programs.stdout = f"[client.x]\n\tkey = {KEY}\n\tcaps mon = \"profile rbd\"\n"
    shown = run(ip, "%ceph auth get client.x")
    assert KEY not in str(shown) and "[cephx key redacted]" in str(shown)
    assert "profile rbd" in str(shown)


def test_a_native_command_gives_way_to_the_tool_for_what_only_the_tool_does(ip, programs,
                                                                            fake_ceph):
    run(ip, "%rbd create p/striped --size 64 --stripe-unit 65536B --stripe-count 16")
    assert programs.ran[-1][-7:] == ["create", "p/striped", "--size", "64", "--stripe-unit",
                                     "65536B", "--stripe-count", "16"][-7:]
    assert "striped" not in fake_ceph.store.pools["p"].images  # the real rbd made it
    with pytest.raises(UsageError, match="count"):  # rbdnb's own option: rbdnb's error
        run(ip, "%rbd clone p/img@s p/vm-{i} --count x")
    run(ip, "%rbd create p/native 8M")
    assert "native" in fake_ceph.store.pools["p"].images


def test_virsh_tables_become_frames(ip, programs):
    programs.stdout = (" Type      Device   Target   Source\n"
                       "------------------------------------------------\n"
                       " network   disk     vda      libvirt-pool/vm\n")
    frame = run(ip, "%virsh domblklist vm --details")
    assert frame.to_dict("records") == [{"type": "network", "device": "disk", "target": "vda",
                                         "source": "libvirt-pool/vm"}]
    assert programs.ran[-1][:3] == ["virsh", "-c", "test:///default"]


def test_unknown_commands_name_the_closest_one_of_either_kind(ip, programs):
    with pytest.raises(UsageError, match="did you mean %rbd trash"):
        run(ip, "%rbd trsh ls p")
    assert programs.ran == []


def test_ceph_s_is_ceph_status(ip, programs):
    programs.stdout = json.dumps({"health": {"status": "HEALTH_OK"}})
    run(ip, "%ceph -s")
    assert "status" in programs.ran[-1] and "-s" not in programs.ran[-1]


class Failing(Programs):
    """A program that writes some output, then fails."""

    def watch(self, argv, on_tick, **kw):
        super().watch(argv, on_tick, **kw)
        from rbdnb.errors import CommandFailed
        raise CommandFailed("ceph failed: Error EINVAL: no", returncode=22, stderr="no")


def test_a_dry_run_that_would_write_a_file_writes_nothing(ip, programs, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    run(ip, "%config RbdnbMagics.dry_run = True")
    try:
        for line in (f"%ceph auth get client.x -o {tmp_path}/a", f"%rbd ls p > {tmp_path}/b",
                     f"%ceph auth get-key client.x | tee {tmp_path}/c"):
            assert isinstance(run(ip, line), Plan), line
    finally:
        run(ip, "%config RbdnbMagics.dry_run = False")
    assert programs.ran == [] and list(tmp_path.iterdir()) == []


def test_a_file_is_replaced_only_when_the_command_succeeded(ip, monkeypatch, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    keep = tmp_path / "keep"
    keep.write_text("before\n")
    with pytest.raises(UsageError, match="add --yes"):  # not confirmed: nothing touched
        run(ip, f"%ceph auth del client.x -o {keep}")
    monkeypatch.setattr(proc, "watch", Failing().watch)
    with pytest.raises(UsageError, match="EINVAL"):
        run(ip, f"%ceph auth get client.x > {keep}")
    assert keep.read_text() == "before\n" and sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


def test_tee_a_appends_and_a_directory_is_a_one_line_error(ip, programs, tmp_path):
    log = tmp_path / "log"
    log.write_text("first\n")
    programs.stdout = "second\n"
    run(ip, f"%rbd ls p | tee -a {log}")
    assert log.read_text() == "first\nsecond\n"
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    with pytest.raises(UsageError, match="cannot write it") as error:
        run(ip, f"%rbd ls p > {tmp_path}")  # a directory
    assert "\n" not in str(error.value)


def test_a_quoted_operator_is_an_argument(ip, programs):
    run(ip, "%rbd image-meta set p/img '>' v")
    assert programs.ran[-1][-4:] == ["set", "p/img", ">", "v"]
    with pytest.raises(UsageError, match="shell syntax"):
        run(ip, "%rbd ls p 2>/dev/null")


@pytest.mark.parametrize("line", [
    "%virsh -q undefine list",                 # an option before the command takes no word
    "%virsh vol-resize vol 1G --pool p --shrink",
    "%qemu-img snapshot -d snap1 disk.qcow2",
    "%qemu-img convert -n -O raw a.qcow2 rbd:p/img",
    "%ceph config-key rm k --yes-i-really-really-mean-it",  # that flag confirms pool deletion only
    "%ceph osd pool mksnap p s1",
])
def test_what_destroys_data_needs_yes(ip, programs, line):
    with pytest.raises(UsageError, match="add --yes"):
        run(ip, line)
    assert programs.ran == []


def test_what_repairs_is_a_change_not_a_read(ip, programs):
    assert isinstance(run(ip, "%qemu-img check -r all rbd:p/img --dry-run"), Plan)
    run(ip, "%qemu-img check rbd:p/img")  # a plain check reads
    assert len(programs.ran) == 1
