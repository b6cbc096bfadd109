"""Conformance: command lines from Ceph's and libvirt's own docs and QA scripts, pasted into
the magics, do what the real tools do (tests/integration/conformance/: the corpus and the
runner).

Each scenario runs on a sandbox of its own twice, from nothing: first each line with the
real CLI (as a shell runs it), then each line as ``%rbd``, ``%ceph``, ``%virsh`` or
``%qemu-img``. After every line the two states are compared (read with the bindings, see
runner.World.state); a line that only reads must also show what the real tool prints with
``--format json``. A magic that asks for ``--yes`` must have changed nothing; the line is
then run again with it. Outcomes:

- correct: the same effect (and, for a read, the same facts); where the tool fails, the
  magic fails too or reports an unchanged no-op, with the same state;
- refused: the magic said no in one line (its alternative named) where the tool ran; the
  real tool then runs on the magic's side, so the next lines start from the same state;
- wrong: a different effect; traceback: anything but a one-line error.

Wrong and traceback must be none, correct at least 95%, and every refusal one we chose
(REFUSED below, each with its reason). The counts and the refused lines go to
tests/artifacts/conformance.md and the end of the test session's output.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from conformance import runner
from rbdnb.base.plan import Result
from tests.conftest import start_sandbox

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = runner.load()
OUTCOMES: list[dict] = []
REPORT = ROOT / "tests" / "artifacts" / "conformance.md"

# The lines rbdnb refuses on purpose (a fragment of each), with the reason.
REFUSED = {
    "| ssh ": "a pipe into ssh runs on another host; rbdnb writes the keyring locally "
              "(-o FILE, mode 0600) for you to copy",
    "secret-set-value": "the key would be on the command line and in the notebook: "
                        "%virsh secret-set-value --secret UUID --client NAME sets it from Ceph",
    "merge-diff first second - |": "a pipeline of two rbd commands; run them one by one "
                                   "with files",
    "virsh edit": "an interactive editor; %virsh dumpxml, then %virsh define FILE",
    "ceph daemon": "an admin socket of a daemon on its own host; run it there",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    box = start_sandbox(tmp_path_factory.mktemp("conformance") / "sandbox", osd_size="4G")
    env = {**os.environ, **box.env()}
    # Clone format 2 (no protection needed), as on any cluster since Mimic: the docs' lines
    # clone unprotected snapshots where they say so.
    subprocess.run(["ceph", "osd", "set-require-min-compat-client", "mimic"], env=env,
                   check=True, capture_output=True, timeout=60)
    w = runner.World(box, box.libvirt_uri)
    yield w
    try:
        w.reset()
        w.close()
    finally:
        box.down()


@pytest.fixture(scope="module")
def shell(world):
    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext rbdnb", store_history=False)
    done = ip.run_cell(f"%rbdnb connect --conf {world.box.conf_path} --uri {world.uri}",
                       store_history=False)
    assert done.success, done.error_in_exec
    yield ip


def is_read(tool: str, text: str) -> bool:
    """Whether rbdnb treats the line as one that only reads."""
    from rbdnb.base.passthrough import READ, parse_line
    from rbdnb.magics import TABLES
    table = next(t for t in TABLES if t.tool == tool)
    try:
        words, redirect = parse_line(tool, text)
    except Exception:
        return False
    if redirect.output:
        return False
    argv = table.extract(words)[0] if table.extract else words
    native = table.lookup(argv)
    if native is not None:
        return native[2] not in table.mutating
    found = table.tool_command(words)
    return found is not None and found[1].kind_for(words) == READ


def with_yes(text: str) -> str:
    for mark in (" > ", " | ", " < "):
        if mark in text:
            head, _, tail = text.partition(mark)
            return f"{head} --yes{mark}{tail}"
    return f"{text} --yes"


def play_cli(world, scenario, cwd: Path) -> list[dict]:
    world.reset()
    cwd.mkdir(parents=True)
    records = []
    for step in scenario.steps:
        if step[0] == "setup":
            world.setup(step[1], step[2], cwd)
            continue
        line = step[1]
        text = world.fill(line.text, cwd)
        done = world.cli(f"{line.tool} {text}", cwd)
        record = {"line": line, "rc": done.returncode,
                  "error": (done.stderr.strip().splitlines() or [""])[-1], "facts": None}
        variant = runner.json_variant(line.tool, text)
        if done.returncode == 0 and variant and is_read(line.tool, text):
            shown = world.cli(variant, cwd)
            if shown.returncode == 0 and shown.stdout.strip():
                try:
                    record["facts"] = runner.facts(json.loads(shown.stdout))
                except ValueError:
                    pass
        elif done.returncode == 0 and line.tool == "virsh" and is_read(line.tool, text):
            from rbdnb.virt.tools import table_rows
            rows = table_rows(done.stdout) or []  # virsh's tables: every cell must show
            record["facts"] = {v for r in rows for v in r.values() if runner.usable(v)}
        record["state"] = world.state(cwd)
        records.append(record)
    return records


def run_magic(shell, tool: str, text: str):
    """(value, error): what the cell returned, or what it raised."""
    result = shell.run_cell(f"%{tool} {text}", store_history=False)
    error = result.error_in_exec or result.error_before_exec
    return result.result, error


def normalised(state: dict) -> dict:
    """The state without what rbdnb does on purpose beyond the tool: a pool it creates is
    initialised for RBD (the application "rbd", librbd's pool flag)."""
    out = json.loads(json.dumps(state, default=str))
    for pool in out["pools"].values():
        apps = pool.get("applications") or {}
        if apps.get("rbd") == {}:
            apps.pop("rbd")
        # "creating" passes in a moment; "selfmanaged_snaps" is librbd's business once a pool
        # is RBD's (rbdnb initialises the pools it creates).
        flags = [f for f in (pool.get("flags") or "").split(",")
                 if f not in ("creating", "selfmanaged_snaps")]
        pool["flags"] = ",".join(flags)
    return out


def first_difference(a, b, path="") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{path}/{key}")
        return ""
    return f"{path}: magic {json.dumps(a, default=str)[:200]} vs cli " \
           f"{json.dumps(b, default=str)[:200]}"


def play_magic(world, shell, scenario, cwd: Path, reference: list[dict]) -> list[dict]:
    world.reset()
    # A new connection, as a new notebook has: an idle client may still map a pool name the
    # reset deleted to the old pool's id.
    done = shell.run_cell(f"%rbdnb connect --conf {world.box.conf_path} --uri {world.uri}",
                          store_history=False)
    assert done.success, done.error_in_exec
    cwd.mkdir(parents=True)
    here = os.getcwd()
    os.chdir(cwd)
    outcomes = []
    try:
        index = 0
        state = world.state(cwd)
        for step in scenario.steps:
            if step[0] == "setup":
                world.setup(step[1], step[2], cwd)
                state = world.state(cwd)
                continue
            line, ref = step[1], reference[index]
            index += 1
            text = world.fill(line.text, cwd)
            outcome = judge(world, shell, line, text, ref, state, cwd)
            state = outcome.pop("state", None) or world.state(cwd)  # read once per line
            outcomes.append(outcome)
    finally:
        os.chdir(here)
    return outcomes


def judge(world, shell, line, text, ref, before, cwd) -> dict:
    out = {"scenario": line.scenario, "tool": line.tool, "line": f"{line.tool} {line.text}",
           "source": line.source, "where": line.where, "cli_rc": ref["rc"], "yes": False}
    value, error = run_magic(shell, line.tool, text)
    if isinstance(error, UsageError) and "add --yes" in str(error):
        after = world.state(cwd)
        if normalised(after) != normalised(before):
            return {**out, "outcome": "wrong", "detail": "asked for --yes but changed "
                    + first_difference(normalised(after), normalised(before))}
        out["yes"] = True
        value, error = run_magic(shell, line.tool, with_yes(text))
    if runner.KEY.search(runner.shown(value) + str(error or "")):
        return {**out, "outcome": "wrong", "detail": "a cephx key in what the magic showed"}
    if error is not None and not isinstance(error, UsageError):
        return {**out, "outcome": "traceback", "detail": f"{type(error).__name__}: {error}"}
    message = str(error) if error is not None else ""
    if error is not None and "\n" in message:
        return {**out, "outcome": "traceback", "detail": f"a message of several lines: {message}"}
    if error is not None and (ref["rc"] == 0 or reason(out) is not None):
        # Refused where the tool ran: the tool runs here too, so that the next line starts
        # from the same state.
        world.cli(f"{line.tool} {text}", cwd)
        out.update(outcome="refused", detail=message)
    else:
        out.update(outcome="correct", detail=message or "")
        if error is None and ref["rc"] != 0:
            if not isinstance(value, Result) or value.changed:
                out.update(outcome="wrong", detail=f"the tool failed ({ref['error']}) but the "
                                                   f"magic answered {type(value).__name__}")
            else:
                out["detail"] = f"the tool failed ({ref['error']}); the magic: unchanged"
    open_keys = [f.name for f in cwd.iterdir() if f.is_file() and f.stat().st_mode & 0o077
                 and f.stat().st_size < (1 << 20)  # a keyring, not an exported image
                 and runner.KEY.search(f.read_text(errors="replace"))]
    if open_keys:
        return {**out, "outcome": "wrong", "detail": f"a key in a file others can read: "
                                                     f"{open_keys}"}
    out["state"] = world.state(cwd)
    mine, theirs = normalised(out["state"]), normalised(ref["state"])
    if mine != theirs:
        out.update(outcome="wrong", detail=(out["detail"] + "; " if out["detail"] else "")
                   + first_difference(mine, theirs))
    elif out["outcome"] == "correct" and error is None and ref["facts"]:
        seen = runner.shown(value)
        missing = sorted(f for f in ref["facts"] if f not in seen)
        if missing:
            out.update(outcome="wrong", detail=f"shows less than the tool: {missing[:5]}")
    return out


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(world, shell, scenario, tmp_path):
    reference = play_cli(world, scenario, tmp_path / "cli")
    outcomes = play_magic(world, shell, scenario, tmp_path / "magic", reference)
    OUTCOMES.extend(outcomes)
    bad = [o for o in outcomes if o["outcome"] in ("wrong", "traceback")]
    unexpected = [o for o in outcomes if o["outcome"] == "refused" and reason(o) is None]
    assert not bad and not unexpected, "\n".join(
        f"{o['where']} {o['outcome']}: {o['line']} -- {o['detail']}" for o in bad + unexpected)


def reason(outcome: dict) -> str | None:
    return next((why for fragment, why in REFUSED.items() if fragment in outcome["line"]), None)


def test_counts_and_report():
    total = sum(len(s.lines) for s in SCENARIOS)
    if len(OUTCOMES) != total:
        pytest.skip("the counts need every scenario of this module")
    counts = {k: sum(o["outcome"] == k for o in OUTCOMES)
              for k in ("correct", "refused", "wrong", "traceback")}
    lines = [f"# Conformance: {total} command lines from the docs and QA scripts", "",
             "| outcome | lines |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()]
    failed_too = sum(o["outcome"] == "correct" and o["cli_rc"] != 0 for o in OUTCOMES)
    lines += ["", f"correct: {counts['correct'] / total:.1%} ({failed_too} of them lines the "
              f"real tool refuses or fails on, as the magic does, with the same state); "
              f"needed --yes: {sum(o['yes'] for o in OUTCOMES)}", "", "## Refused", ""]
    lines += [f"- `{o['line']}` ({o['source']}): {reason(o)}" for o in OUTCOMES
              if o["outcome"] == "refused"]
    by_tool = {}
    for o in OUTCOMES:
        by_tool.setdefault(o["tool"], []).append(o["outcome"] == "correct")
    lines += ["", "## By tool", ""] + [f"- {t}: {sum(v)} of {len(v)} correct"
                                       for t, v in sorted(by_tool.items())]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    runner.SUMMARY[:] = lines
    assert counts["wrong"] == 0 and counts["traceback"] == 0, counts
    assert counts["correct"] >= 0.95 * total, counts
    # Nothing a line showed or kept holds a key (the magics redact, files are checked apart).
    assert not any(runner.KEY.search(o["detail"]) for o in OUTCOMES)
