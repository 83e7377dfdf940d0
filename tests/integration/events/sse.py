"""A server-sent events client for tests: reads a stream in the background into a list."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class Event:
    name: str
    data: Any
    id: int | None


@dataclass
class Reader:
    status: int = 0
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: bool = False  # the server ended the stream
    # Set at the first frame (`retry:`): the server has attached the client to its hub.
    attached: asyncio.Event = field(default_factory=asyncio.Event)

    def named(self, *names: str) -> list[Event]:
        return [e for e in self.events if e.name in names]

    def ids(self, *names: str) -> list[int]:
        return [e.id for e in self.events if e.id is not None and (not names or e.name in names)]

    async def read(self, reply: httpx.Response) -> None:
        self.status = reply.status_code
        fields: dict[str, str] = {}
        async for line in reply.aiter_lines():
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line == "":
                self.attached.set()
                if "event" in fields or "data" in fields:
                    self.events.append(Event(
                        name=fields.get("event", "message"),
                        data=orjson.loads(fields["data"]) if fields.get("data") else None,
                        id=int(fields["id"]) if "id" in fields else None))
                fields = {}
            else:
                key, _, value = line.partition(":")
                fields[key] = value[1:] if value.startswith(" ") else value
        self.ended = True


@contextlib.asynccontextmanager
async def sse(base_url: str, *, token: str | None = None, params: Any = None,
              headers: dict[str, str] | None = None) -> AsyncIterator[Reader]:
    """Open /api/events; yields once the response headers arrived (the client is attached)."""
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    reader = Reader()
    timeout = httpx.Timeout(10, read=60)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as http, \
            http.stream("GET", "/api/events", params=params, headers=all_headers) as reply:
        reader.status = reply.status_code
        if reply.status_code != 200:
            await reply.aread()
            yield reader
            return
        task = asyncio.create_task(reader.read(reply))
        try:
            await asyncio.wait_for(reader.attached.wait(), timeout=10)
            yield reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task
