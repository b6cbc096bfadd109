"""Every REST handler of rbdnb asks Jupyter Server's Authorizer, as Jupyter's own do: under
an authorizer that allows reading only, status and listings work, runs and copies are refused."""
import json
from pathlib import Path

import pytest
from jupyter_server.auth.authorizer import Authorizer
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (fixtures, for this module only)
from tornado.httpclient import HTTPClientError

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


class ReadOnly(Authorizer):
    def is_authorized(self, handler, user, action, resource):
        return action == "read"


@pytest.fixture
def jp_server_config(sandbox):
    return {"ServerApp": {"jpserver_extensions": {"rbdnb.server": True},
                          "authorizer_class": ReadOnly},
            "RbdnbServer": {"conf": str(sandbox.conf_path), "libvirt_uri": sandbox.libvirt_uri,
                            "runbooks_dir": str(RUNBOOKS)}}


def test_a_read_only_user_can_look_but_not_run(jp_fetch, jp_asyncio_loop, jp_root_dir):
    def fetch(*path, **kw):
        return jp_asyncio_loop.run_until_complete(jp_fetch("rbdnb", "api", *path, **kw))

    assert json.loads(fetch("runbooks").body)
    assert json.loads(fetch("status").body)["fsid"]
    assert json.loads(fetch("runs").body) == []
    for path in ("runs", "copies"):
        with pytest.raises(HTTPClientError) as err:
            fetch(path, method="POST", body=json.dumps({"runbook": "00-preflight",
                                                        "parameters": {}}))
        assert err.value.code == 403, path
    # Jupyter's own contents API is refused the same way: our handlers follow its rule.
    with pytest.raises(HTTPClientError) as err:
        jp_asyncio_loop.run_until_complete(jp_fetch("api", "contents", "x.txt", method="PUT",
                                                    body=json.dumps({"type": "file",
                                                                     "format": "text",
                                                                     "content": "x"})))
    assert err.value.code == 403
    assert not (jp_root_dir / "runs").exists()
