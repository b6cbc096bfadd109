"""Inside a runbook, a magic is a step: ``%ceph osd pool create {pool}`` acts on the
runbook's connection with its dry run, is shown once and recorded in the summary."""
import rbdnb
from IPython.utils.capture import capture_output

from rbdnb.base.plan import Plan, Result
from rbdnb.base.settings import settings
from rbdnb.runbooks.runbook import Runbook, _join_magics, _show_once

from conftest import run


def joined(shell, cluster, dry_run=False) -> Runbook:
    rb = Runbook("10-test", dry_run)
    _show_once(rb)
    _join_magics(shell, rb, cluster, "test:///default")
    return rb


def test_magics_in_a_runbook_are_its_steps_shown_once(shell, fake_ceph, cluster):
    rb = joined(shell, cluster)
    try:
        shell.user_ns.update(pool="made", size="4M")
        with capture_output() as seen:
            run(shell, "%ceph osd pool create {pool}\n%rbd create {pool}/disk {size}")
        assert "made" in fake_ceph.store.pools and "disk" in fake_ceph.store.pools["made"].images
        assert [r["step"] for r in rb.rows] == ["create pool made", "create image made/disk"]
        assert all(r["changed"] for r in rb.rows)
        shown = [o.data["text/markdown"] for o in seen.outputs if "text/markdown" in o.data]
        assert len(shown) == 2 and "Result(" not in seen.stdout
        run(shell, "%ceph osd pool create {pool}")  # a second run: unchanged, recorded so
        assert rb.rows[-1]["changed"] is False
        frame = run(shell, "%rbd ls {pool}")     # a read is not a step
        assert list(frame["name"]) == ["disk"] and len(rb.rows) == 3
    finally:
        rb.summary()
    assert settings.recorder is None  # after the summary, the magics are a user's again


def test_a_dry_run_runbook_makes_its_magics_plan(shell, fake_ceph, cluster):
    rb = joined(shell, cluster, dry_run=True)
    try:
        value = run(shell, "%ceph osd pool create planned")
        assert isinstance(value, Plan) and "planned" not in fake_ceph.store.pools
        assert rb.rows[0]["result"] == "dry run: nothing changed"
    finally:
        rb.summary()
        run(shell, "%config RbdnbMagics.dry_run = False")


def test_after_its_summary_a_runbook_records_no_more(shell, fake_ceph, cluster):
    rb = joined(shell, cluster)
    rb.summary()
    assert settings.recorder is None
    rbdnb.create_pool(cluster, "p")
    value = run(shell, "%rbd create p/lone 4M")
    assert isinstance(value, Result) and value.changed and rb.rows == []
