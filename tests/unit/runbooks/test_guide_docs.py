"""The docs site's front page is the guide regenerated: each guide step has its runbook cell
(tagged guide-ID), the page shows steps in the guide's order, a cell once, outputs rendered,
the real tool's check, the build's metadata; and no key, whatever a cell printed."""
import html
import json
from pathlib import Path

import pytest

from rbdnb.base.plan import Plan, Result, merged
from rbdnb.base.secret import KEY_PATTERN
from rbdnb.runbooks import docs
from rbdnb.runbooks.guide import STEPS

ROOT = Path(__file__).resolve().parents[3]


def test_every_guide_step_has_a_cell_in_its_runbook_and_every_tag_a_step():
    ids = [s.id for s in STEPS]
    assert len(set(ids)) == len(ids)
    tags = {}
    for book in (ROOT / "runbooks").glob("[0-9][0-9]-*.ipynb"):
        for tag in docs.tagged_cells(book):
            tags.setdefault(tag, set()).add(book.stem)
    for step in STEPS:
        assert tags.get(step.tag) == {step.runbook}, f"step {step.id}: cells in {tags.get(step.tag)}"
    assert set(tags) == {s.tag for s in STEPS}


def test_check_lines_are_the_real_tools_with_the_runs_connection():
    from rbdnb.runbooks.run import runbook_parameters
    lines = {}
    for s in STEPS:  # each with its runbook's own defaults
        values = {k: v["value"] for k, v in
                  runbook_parameters(ROOT / "runbooks" / f"{s.runbook}.ipynb").items()}
        conn = docs.Connection(values, ["--conf", "/c/ceph.conf", "--id", "admin"],
                               ":conf=/c/ceph.conf:id=admin", "qemu:///system", "f-s-i-d")
        lines[s.id] = [docs.check_line(t, conn) for t in s.check]
    assert lines["1.3"] == ["rbd --conf /c/ceph.conf --id admin info rdb_1/image3 --format json"]
    assert lines["1.4"] == ["qemu-img info --output=json rbd:rdb_1/image3:conf=/c/ceph.conf:id=admin"]
    assert lines["2.3"] == ["ceph --conf /c/ceph.conf --id admin auth get client.libvirt --format json"]


def test_a_check_output_is_redacted_and_a_failure_said(tmp_path):
    key = "AQ" + "B" * 36 + "=="
    script = tmp_path / "tool"
    script.write_text(f"#!/bin/sh\necho '{{\"key\": \"{key}\"}}'\nexit 3\n")
    script.chmod(0o755)
    check = docs.run_check(str(script))
    assert not check.ok and key not in check.output and '"key"' in check.output
    missing = docs.run_check("/nonexistent/tool --x")
    assert not missing.ok and "/nonexistent/tool" in missing.output


def cell(tags, source, outputs, id_):
    return {"cell_type": "code", "id": id_, "metadata": {"tags": tags}, "source": source,
            "outputs": outputs}


def test_the_page_follows_the_guide_shows_a_cell_once_and_holds_no_key():
    key = "AQ" + "C" * 36 + "=="
    md = {"output_type": "display_data", "data": {
        "text/markdown": "**create pool rdb_1**: created\n\n```sh\nceph osd pool create rdb_1\n```",
        "text/plain": "Result(...)"}}
    leak = {"output_type": "stream", "name": "stdout", "text": f"key = {key}\n"}
    widget = {"output_type": "display_data", "data": {
        "application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "HBox()"}}
    shared = cell(["guide-2.3", "guide-2.4"], "%ceph auth get-or-create client.{user} -o {f}",
                  [md, leak, widget], "c1")
    cells = {"guide-1.2": [("01-qemu-rbd", cell(["guide-1.2"], "%qemu-img create ...", [md], "c0"))],
             "guide-2.3": [("02-libvirt-rbd", shared)], "guide-2.4": [("02-libvirt-rbd", shared)]}
    checks = {"1.3": [docs.Check("rbd info rdb_1/image3", '{"size": 10737418240}', True)],
              "2.3": [docs.Check("ceph auth get client.x", "Error ENOENT", False)]}
    meta = {"built": "2026-12-02T20:00:00+00:00", "rbdnb": "0.1.0", "cluster fsid": "f-s-i-d"}
    page = docs.guide_page(cells, checks, meta, "<table></table>")
    assert not KEY_PATTERN.search(page)
    at = [page.find(html.escape(f"{s.id} {s.title}")) for s in STEPS]
    assert -1 not in at and at == sorted(at)
    assert page.count("%ceph auth get-or-create") == 1  # under 2.3, not again under 2.4
    assert "<strong>create pool rdb_1</strong>" in page and "HBox" not in page
    assert "rbfad:" in page and "typo" in page
    assert "Checked with the real tool <span class='fail'>failed</span>" in page
    assert "f-s-i-d" in page and "rbdnb-build" in page


def test_stamp_puts_the_metadata_on_a_rendered_page(tmp_path):
    page = tmp_path / "01.html"
    page.write_text("<html><body class='jp'><p>x</p></body></html>")
    docs.stamp(page, {"cluster fsid": "f-s-i-d"})
    text = page.read_text()
    assert text.index("rbdnb-build") > text.index("<body") and text.index("f-s-i-d") < text.index("<p>x")


@pytest.mark.parametrize("dry", [False, True])
def test_merged_steps_are_one_result_or_one_plan(dry):
    a, b = Plan("create user client.x").add("ceph", "auth"), Plan("keyring").add("ceph", "get")
    if dry:
        got = merged("create user client.x", a, b)
        assert isinstance(got, Plan) and len(got.commands) == 2
        return
    got = merged("create user client.x", Result("u", False, "unchanged: exists", a),
                 Result("k", True, "written to /k (mode 0600)", b))
    assert got.changed and got.message == "written to /k (mode 0600)" and len(got.plan.commands) == 2
    same = merged("u", Result("u", False, "unchanged: exists", a), Result("k", False, "unchanged: /k", b))
    assert not same.changed and same.message == "unchanged: exists; /k"
    json.dumps(same.plan.lines)


def test_a_key_cut_by_the_length_limit_is_still_redacted(tmp_path, monkeypatch):
    key = "AQ" + "D" * 36 + "=="
    monkeypatch.setattr(docs, "MOST_OUTPUT", 30)
    script = tmp_path / "tool"
    script.write_text(f"#!/bin/sh\necho 'xxxxxxxxxxxxxxxxxxxxxx{key}'\n")
    script.chmod(0o755)
    check = docs.run_check(str(script))
    assert "DDDD" not in check.output and check.ok


def test_checks_of_a_dry_run_or_an_unreachable_cluster(monkeypatch):
    assert docs.run_checks("01-qemu-rbd", {"dry_run": True}) == ({}, "")

    def gone(values):
        raise RuntimeError("cannot reach the cluster")
    monkeypatch.setattr(docs, "connection_for", gone)
    found, fsid = docs.run_checks("01-qemu-rbd", {"pool": "p", "image": "i", "imported": "m"})
    assert fsid == "" and found and all(not c.ok and "not run: cannot reach" in c.output
                                        for checks in found.values() for c in checks)
