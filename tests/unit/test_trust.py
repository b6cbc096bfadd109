"""Unit tests of what makes rbdnb trustworthy without a cluster: validation at the true end
of a name, fixes worded per front end, bounded calls, locks, redaction of every message a
kernel sends, parameter values, directory modes, and the dry-run contract's registries."""
import argparse
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rbdnb
from rbdnb.base import proc as _proc, paths; from rbdnb import cli; from rbdnb.ceph import locks
from rbdnb.ceph.clones import check_pattern, expand_names
from rbdnb.errors import ConfirmationRequired, InvalidArgument, Locked, Timeout
from rbdnb.magics.guard import SessionRedactor, redact_deep
from rbdnb.runbooks.run import check_value
from rbdnb.sandbox import new_cephx_key
from rbdnb.base.specs import check_name, parse_client, parse_spec
from rbdnb.virt import check_domain_name, check_target, check_uri, check_uuid

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("bad", ["evil\n", "evil\r", "ev il", "a/b", "-x", ".x", "", "x" * 129,
                                 "évil", "x\x00"])
def test_names_are_checked_to_their_true_end(bad):
    with pytest.raises(InvalidArgument):
        check_name(bad, "pool")


@pytest.mark.parametrize("check, bad", [
    (parse_client, "libvirt\n"), (parse_client, "x y"), (check_domain_name, "vm<x/>"),
    (check_domain_name, "vm\n"), (check_target, "vdb\n"), (check_uri, "qemu:///system\n"),
    (check_uri, "qemu:///system'><x"), (check_uuid, "00000000-0000-0000-0000-000000000000\n"),
    (lambda s: parse_spec(s), "pool/image\n"), (lambda s: parse_spec(s), "pool/img@snap\n")])
def test_every_kind_of_name_is_checked_to_its_true_end(check, bad):
    with pytest.raises(InvalidArgument):
        check(bad)


@pytest.mark.parametrize("pattern", ["vm-{i.real}", "vm-{i[0]}", "vm-{j}", "vm-{}", "vm-{0}",
                                     "vm-{i!r}", "vm-{i:s}", "vm-{i:{w}}", "vm-{i", "vm-i"])
def test_clone_patterns_allow_only_i_with_an_integer_format(pattern):
    with pytest.raises(InvalidArgument):
        check_pattern(pattern)


def test_a_good_pattern_expands():
    parent = parse_spec("p/golden@base", snap="required")
    names = [str(s) for s in expand_names(parent, "p/vm-{i:03d}", 3, 1)]
    assert names == ["p/vm-001", "p/vm-002", "p/vm-003"]
    with pytest.raises(InvalidArgument, match="parent image itself"):
        expand_names(parent, ["p/golden"], None, 1)


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1, 0, True, "5", 10**9])
def test_timeouts_are_finite_seconds(timeout, tmp_path):
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\n")
    with pytest.raises(InvalidArgument, match="timeout"):
        rbdnb.Cluster(str(conf), timeout=timeout)


def test_a_fix_is_worded_in_the_front_ends_terms():
    from rbdnb.magics import magic_words
    from rbdnb.widgets import form_words
    with pytest.raises(ConfirmationRequired) as err:
        rbdnb.errors.require_confirmation(False, "removing image p/x destroys its data")
    assert str(err.value) == "removing image p/x destroys its data: pass confirm=True to do it"
    assert err.value.worded(magic_words).endswith("add --yes to do it")
    assert err.value.worded(form_words).endswith("tick 'confirm' to do it")
    assert "add -p confirm True (rbdnb run)" in err.value.worded(cli.cli_words)
    from rbdnb.ceph.cluster import full_pool_error
    full = full_pool_error("p", ["full"])
    assert "rbdnb.free_space(cluster, ['p/IMAGE', ...], confirm=True)" in str(full)
    assert "%rbd free-space p/IMAGE ... --yes" in full.worded(magic_words)


def test_bounded_gives_up_and_hands_a_late_value_over():
    late = []
    release = threading.Event()

    def slow():
        release.wait(10)
        return "value"

    t0 = time.monotonic()
    with pytest.raises(Timeout, match="no answer within 0.2 s"):
        _proc.bounded(slow, 0.2, "a frozen daemon", on_late=late.append)
    assert time.monotonic() - t0 < 2
    release.set()
    deadline = time.monotonic() + 5
    while not late and time.monotonic() < deadline:
        time.sleep(0.01)
    assert late == ["value"]
    assert _proc.bounded(lambda: 42, 1, "fast") == 42
    with pytest.raises(KeyError):
        _proc.bounded(lambda: {}["x"], 1, "failing")


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("RBDNB_RUNTIME_DIR", str(tmp_path / "run"))
    return tmp_path / "run"


def test_a_lock_is_waited_for_then_refused_naming_its_holder(runtime):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from rbdnb.ceph import locks\n"
        "with locks.held('k', what='import into p/golden'):\n"
        "    print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "RBDNB_RUNTIME_DIR": str(runtime)})
    try:
        assert holder.stdout.readline().strip() == "held"
        told = []
        t0 = time.monotonic()
        with pytest.raises(Locked, match=rf"pid {holder.pid}.*import into p/golden"):
            with locks.held("k", what="second", wait=0.5, on_wait=told.append):
                pass
        assert 0.4 < time.monotonic() - t0 < 5 and told
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait()
    with locks.held("k", what="after the holder died", wait=5):
        pass
    assert stat.S_IMODE(os.stat(runtime / "locks").st_mode) == 0o700


def test_held_lock_is_released_once(runtime):
    lock = locks.Held("r", what="a runbook")
    lock.release()
    lock.release()
    with locks.held("r", what="again", wait=0.5):
        pass


class FakeSession:
    """Records what a kernel would put on the wire."""

    def __init__(self):
        self.sent = []

    def msg(self, msg_type, content, parent=None):
        return {"header": {"msg_type": msg_type, "msg_id": str(len(self.sent))},
                "parent_header": parent or {}, "content": content, "metadata": {}}

    def send(self, stream, msg_or_type, content=None, parent=None, ident=None, buffers=None,
             track=False, header=None, metadata=None):
        if isinstance(msg_or_type, dict):
            self.sent.append(msg_or_type)
        else:
            self.sent.append({"header": {"msg_type": msg_or_type}, "content": content})
        return self.sent[-1]


def test_every_message_a_kernel_sends_is_redacted():
    session = FakeSession()
    SessionRedactor(session).install()
    key = new_cephx_key()
    session.send("iopub", "execute_result", {"data": {"text/plain": repr(key)}})
    session.send("iopub", "error", {"ename": "ValueError", "evalue": key,
                                    "traceback": [f"ValueError: {key}"]})
    session.send("shell", "execute_reply", {"status": "error", "evalue": key})
    # A key split across two stream messages is held back until it is whole.
    session.send("iopub", session.msg("stream", {"name": "stdout", "text": "k=" + key[:17]}))
    session.send("iopub", session.msg("stream", {"name": "stdout", "text": key[17:] + "\n"}))
    # A fragment that never completes is sent when anything else goes out.
    session.send("iopub", session.msg("stream", {"name": "stdout", "text": "AQ"}))
    session.send("iopub", "status", {"execution_state": "idle"})
    wire = json.dumps([m["content"] for m in session.sent])
    assert key not in wire and key[:17] not in wire
    streams = "".join(m["content"]["text"] for m in session.sent
                      if m["header"]["msg_type"] == "stream")
    assert streams == "k=[cephx key redacted]\nAQ"
    assert session.sent[-1]["header"]["msg_type"] == "status"


def test_redact_deep_reaches_nested_values():
    key = new_cephx_key()
    assert key not in json.dumps(redact_deep({"a": [key, {"b": (key,)}], "n": 1}))


@pytest.mark.parametrize("value, problem", [
    (float("nan"), "finite"), (float("inf"), "finite"), ([float("-inf")], "finite"),
    ("x" * 5000, "longer"), (list(range(2000)), "items"),
    ([[[[[["deep"]]]]]], "nested"), ({1: "x"}, "keys"), (object(), "JSON")])
def test_parameter_values_must_be_sane_json(value, problem):
    with pytest.raises(InvalidArgument, match=problem):
        check_value("p", value)


def test_directories_get_their_mode_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        data = paths.ensure_dir(tmp_path / "a" / "data", 0o755)
        keyrings = paths.ensure_dir(data / "keyrings", 0o700)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(keyrings).st_mode) == 0o700
    # An existing directory of rbdnb's own is set right; one the user named is left alone.
    os.chmod(data, 0o700)
    paths.ensure_dir(data, 0o755)
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o755
    os.chmod(data, 0o700)
    paths.ensure_dir(data, 0o755, own=False)
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert paths.closed_to_others(data / "guest") == data


def test_a_closed_guest_dir_is_refused_with_a_path_that_passes(tmp_path, monkeypatch):
    from rbdnb.virt import guest
    monkeypatch.setenv("RBDNB_DATA_DIR", str(tmp_path / "data"))
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o755)
    if os.geteuid() != 0:
        pytest.skip("only qemu:///system (root) runs QEMU as another user")
    with pytest.raises(InvalidArgument) as err:
        guest.check_readable_by_qemu(closed / "g", "qemu:///system")
    suggested = Path(str(err.value).rsplit("e.g. in ", 1)[1])
    assert paths.closed_to_others(suggested) is None, err.value
    guest.check_readable_by_qemu(closed / "g", "qemu:///session")  # QEMU runs as the user


def test_every_cli_command_that_changes_something_has_a_dry_run():
    parser = cli.build_parser()

    def leaves(p, words=()):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield words, p
            return
        for name, child in subs[0].choices.items():
            yield from leaves(child, words + (name,))

    found = dict(leaves(parser))
    assert cli.READ_ONLY <= set(found)
    for words, p in found.items():
        options = {o for a in p._actions for o in a.option_strings}
        if words in cli.READ_ONLY:
            assert "--dry-run" not in options, words
        else:
            assert {"--dry-run", "--no-dry-run"} <= options, f"rbdnb {' '.join(words)}"


def test_every_magic_command_has_an_example_and_mutating_ones_a_dry_run():
    from rbdnb.magics import TABLES
    for table in TABLES:
        for words, (parser, _) in table.commands.items():
            assert table.examples[words], f"%{table.tool} {' '.join(words)} has no example"
            options = {o for a in parser._actions for o in a.option_strings}
            assert ("--dry-run" in options) == (words in table.mutating), words


def test_the_dry_run_default_is_shared_and_followed():
    from rbdnb.base.settings import Settings
    settings = Settings()
    seen = []
    settings.on_dry_run(seen.append)
    settings.dry_run = True
    assert seen == [True] and settings.resolve_dry_run(None) is True
    assert settings.resolve_dry_run(False) is False
    env = {**os.environ, "RBDNB_DRY_RUN": "1"}
    out = subprocess.run([sys.executable, "-c", "from rbdnb.base.settings import settings;"
                          "print(settings.dry_run)"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "True"


RUNBOOKS = sorted((ROOT / "runbooks").glob("[0-9][0-9]-*.ipynb"))


@pytest.mark.parametrize("path", RUNBOOKS, ids=[p.stem for p in RUNBOOKS])
def test_every_runbook_parameter_has_a_kind_rbdnb_checks(path):
    """A parameter cannot be added without a check: its kind is part of its declaration,
    and its default passes it."""
    from rbdnb.runbooks.parameters import check, declared
    parameters = declared(path)  # a parameter without a kind raises
    assert parameters
    check(parameters, {})  # the defaults, each against its kind (an unknown kind raises)


def test_a_runbook_lock_taken_again_by_its_own_process_is_handed_over(runtime):
    first = locks.Held("rb", what="a runbook whose step failed")
    second = locks.Held("rb", what="its first cell run again", wait=1)  # no self-deadlock
    assert not first.active and second.active
    second.release()
    with locks.held("rb", what="free", wait=1):
        pass


def test_a_wrapped_error_keeps_its_fixes_for_every_front_end():
    from rbdnb.ceph.cluster import full_pool_error
    from rbdnb.errors import Timeout
    from rbdnb.magics import magic_words
    inner = full_pool_error("p", ["full"])
    outer = Timeout(f"clones stopped because {inner.template}; re-run and "
                    f"{{fix:exist_ok=True}}")
    assert "rbdnb.free_space(cluster, ['p/IMAGE'" in str(outer)
    assert "pass exist_ok=True" in str(outer)
    worded = outer.worded(magic_words)
    assert "%rbd free-space p/IMAGE ... --yes" in worded and "add --exist-ok" in worded


def test_a_form_that_is_gone_is_not_kept_by_the_default():
    import gc

    from rbdnb.base.settings import Settings

    class Form:
        seen = []

        def follow(self, value):
            self.seen.append(value)

    settings, form = Settings(), Form()
    settings.on_dry_run(form.follow)
    settings.dry_run = True
    del form
    gc.collect()
    settings.dry_run = False
    assert Form.seen == [True] and settings._listeners == []


def test_clone_pattern_widths_are_bounded():
    with pytest.raises(InvalidArgument, match="wider than 32"):
        check_pattern("vm-{i:0999999999d}")
    check_pattern("vm-{i:032d}")


def test_an_intents_writer_is_known_alive_or_gone():
    from rbdnb.ceph import journal
    from rbdnb.ceph.staging import writer_gone
    mine = journal.owner()
    assert journal.owner_alive(mine) is True
    assert writer_gone(mine) is True  # this process: its earlier call is over
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        other = {**mine, "pid": proc.pid, "started": _proc.start_time(proc.pid)}
        assert writer_gone(other) is False
    finally:
        proc.kill()
        proc.wait()
    assert writer_gone(other) is True
    assert writer_gone({**mine, "host": "elsewhere"}) is None
    assert writer_gone({**mine, "boot": "another-boot"}) is True
