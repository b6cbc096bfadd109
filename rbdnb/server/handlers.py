"""REST handlers: thin over the run store, the runbooks and the status cache.

Errors are JSON ``{"message": "..."}`` with 400 (bad request or parameters) or 404.
"""

from __future__ import annotations

import asyncio
import json
import math

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..errors import InvalidArgument, NotFound, RbdnbError
from ..base.secret import redact

AUTH_RESOURCE = "rbdnb"
MAX_BODY = 64 * 1024


def _reject_constant(name: str):
    raise InvalidArgument(f"the request body holds {name}, which is not a JSON number")


def dumps(value) -> str:
    """JSON that every browser parses: non-finite numbers (from a run stored before they
    were refused) become null rather than the invalid ``NaN``."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(value), allow_nan=False)


class _Handler(APIHandler):
    # Jupyter Server's Authorizer decides, as for its own handlers: GET is "read" on the
    # resource "rbdnb", POST "write" (starting runs, making copies).
    auth_resource = AUTH_RESOURCE

    def initialize(self, ext):
        self.ext = ext

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"message": redact(message)}))

    def body(self) -> dict:
        raw = self.request.body or b"{}"
        if len(raw) > MAX_BODY:
            raise InvalidArgument(f"the request body is larger than {MAX_BODY} bytes")
        try:
            data = json.loads(raw, parse_constant=_reject_constant)
        except InvalidArgument:
            raise
        except RecursionError:
            raise InvalidArgument("the request body is nested too deeply") from None
        except ValueError:
            raise InvalidArgument("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidArgument("the request body must be a JSON object")
        return data

    async def call(self, fn, *args, status: int = 200):
        """Run ``fn`` off the event loop (it reads notebooks) and answer with its result."""
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        except NotFound as exc:
            return self.fail(404, str(exc))
        except (InvalidArgument, RbdnbError) as exc:
            return self.fail(400, str(exc))
        except RecursionError:
            return self.fail(400, "the parameters are nested too deeply")
        self.set_status(status)
        self.finish(dumps(result))

    async def create(self, fn):
        """A POST of ``{"runbook", "parameters"}``: 201 with ``fn(runbook, parameters)``."""
        try:
            data = self.body()
        except InvalidArgument as exc:
            return self.fail(400, str(exc))
        await self.call(fn, data.get("runbook"), data.get("parameters", {}), status=201)


class StatusHandler(_Handler):
    """GET the cluster and libvirt status (cached for ``status_ttl`` s, never a 500)."""

    @web.authenticated
    @authorized
    async def get(self):
        self.finish(dumps(await self.ext.status.get()))


class RunbooksHandler(_Handler):
    """GET the runbooks with their parameters."""

    @web.authenticated
    @authorized
    async def get(self):
        await self.call(self.ext.runbooks.all)


class RunsHandler(_Handler):
    """GET the runs; POST starts one (parameters checked before anything runs)."""

    @web.authenticated
    @authorized
    async def get(self):
        await self.call(self.ext.runs.all)

    @web.authenticated
    @authorized
    async def post(self):
        await self.create(self.ext.runs.start)


class RunHandler(_Handler):
    """GET one run's state and progress."""

    @web.authenticated
    @authorized
    async def get(self, run_id):
        await self.call(self.ext.runs.get, run_id)


class CopiesHandler(_Handler):
    """POST a private copy of a runbook into the user's directory, to edit."""

    @web.authenticated
    @authorized
    async def post(self):
        await self.create(lambda runbook, parameters:
                          {"path": self.ext.runs.copy(runbook, parameters)})
