"""REST handlers: thin over the run store, the runbooks and the status cache.

Errors are JSON ``{"message": "..."}`` with 400 (bad request or parameters) or 404.
"""

from __future__ import annotations

import asyncio
import json

from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..errors import InvalidArgument, NotFound, RbdnbError


class _Handler(APIHandler):
    def initialize(self, ext):
        self.ext = ext

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"message": message}))

    def body(self) -> dict:
        try:
            data = json.loads(self.request.body or b"{}")
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
        self.set_status(status)
        self.finish(json.dumps(result))

    async def create(self, fn):
        """A POST of ``{"runbook", "parameters"}``: 201 with ``fn(runbook, parameters)``."""
        try:
            data = self.body()
        except InvalidArgument as exc:
            return self.fail(400, str(exc))
        await self.call(fn, data.get("runbook"), data.get("parameters", {}), status=201)


class StatusHandler(_Handler):
    @web.authenticated
    async def get(self):
        self.finish(json.dumps(await self.ext.status.get()))


class RunbooksHandler(_Handler):
    @web.authenticated
    async def get(self):
        await self.call(self.ext.runbooks.all)


class RunsHandler(_Handler):
    @web.authenticated
    async def get(self):
        await self.call(self.ext.runs.all)

    @web.authenticated
    async def post(self):
        await self.create(self.ext.runs.start)


class RunHandler(_Handler):
    @web.authenticated
    async def get(self, run_id):
        await self.call(self.ext.runs.get, run_id)


class CopiesHandler(_Handler):
    @web.authenticated
    async def post(self):
        await self.create(lambda runbook, parameters:
                          {"path": self.ext.runs.copy(runbook, parameters)})
