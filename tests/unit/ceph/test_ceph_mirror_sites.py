"""Which sites a runbook mirrors to when none is named, and how a fleet's table is shown."""
import pandas as pd
import pytest

from rbdnb.base.plan import Plan, Result
from rbdnb.ceph import mirror
from rbdnb.errors import InvalidArgument


def test_the_second_site_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RBDNB_SITES", "a=/s/a.conf b=/s/b.conf")
    assert mirror.site_confs() == {"a": "/s/a.conf", "b": "/s/b.conf"}
    assert mirror.peer_conf(None) == "/s/b.conf"
    assert mirror.peer_conf("/x.conf") == "/x.conf"


def test_no_second_site_is_said_in_one_line(monkeypatch):
    monkeypatch.setenv("RBDNB_SITES", "a=/s/a.conf")
    with pytest.raises(InvalidArgument, match="--sites 2"):
        mirror.peer_conf(None)


def test_bad_names_are_refused_before_a_cluster_is_asked():
    for call in (lambda: mirror.enable_pool(None, "a/b", "a"),
                 lambda: mirror.enable_pool(None, "pool", "bad site"),
                 lambda: mirror.bootstrap_peers(None, None, "x y")):
        with pytest.raises(InvalidArgument):
            call()


def test_a_result_can_show_its_table():
    frame = pd.DataFrame([{"host": "host1", "ok": True, "outcome": "a|b"}])
    shown = Result("fleet", True, "applied", Plan("fleet"), value=frame, show_value=True)
    text = shown._repr_markdown_()
    assert "| host | ok | outcome |" in text and "a\\|b" in text
    assert "| host |" not in Result("x", True, "m", Plan("x"), value=frame)._repr_markdown_()
