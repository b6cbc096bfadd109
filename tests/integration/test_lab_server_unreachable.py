"""The server extension pointed at a cluster that does not answer: it says so, and keeps serving."""
import json
import socket
import time

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (fixtures, for this module only)


@pytest.fixture
def dead_conf(sandbox, tmp_path):
    """The sandbox's conf with its monitor moved to a port that accepts and never answers
    (a refused port fails at once; a silent one is what makes a client wait)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = sandbox.status().mon_host.rsplit(":", 1)[1]
    conf = tmp_path / "dead.conf"
    conf.write_text(sandbox.conf_path.read_text().replace(
        f"127.0.0.1:{port}", f"127.0.0.1:{silent.getsockname()[1]}"))
    yield conf
    silent.close()


@pytest.fixture
def jp_server_config(dead_conf):
    return {"ServerApp": {"jpserver_extensions": {"rbdnb.server": True}},
            "RbdnbServer": {"conf": str(dead_conf), "status_timeout": 4.0}}


def test_an_unreachable_cluster_is_shown_as_such(jp_fetch, jp_asyncio_loop, dead_conf):
    t0 = time.monotonic()
    response = jp_asyncio_loop.run_until_complete(jp_fetch("rbdnb", "api", "status"))
    status = json.loads(response.body)
    assert time.monotonic() - t0 < 4 + 3  # the server's status_timeout bounds it
    assert not status["reachable"] and status["health"] == "UNREACHABLE"
    assert status["level"] == "error" and str(dead_conf) in status["message"]
    # The rest of the API serves as before.
    books = jp_asyncio_loop.run_until_complete(jp_fetch("rbdnb", "api", "runbooks"))
    assert books.code == 200 and len(json.loads(books.body)) >= 6
