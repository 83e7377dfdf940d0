"""Live events (`GET /api/events`, server-sent events), the live fleet page (`/`, `/static/*`)
and the bus catalogue (`/asyncapi.json`)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.response import Stream

from libs.common.asyncapi import generate
from libs.common.codec import encode
from libs.common.errors import BadRequest, Unauthorized
from libs.common.facts import LIVE_EVENT_NAMES
from services.gateway.api.forward import DEVICE_ID
from services.gateway.auth.guard import viewer
from services.gateway.auth.tokens import Principal
from services.gateway.events.model import EventFilter
from services.gateway.events.registry import hub_of
from services.gateway.events.stream import StreamRequest, live_stream

STATIC = Path(__file__).resolve().parents[1] / "static"
STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
MAX_FILTER_DEVICES = 1000
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
EVENT_ID = re.compile(r"^[0-9]{1,19}$")


class EventsController(Controller):
    path = "/api/events"
    tags = ["events"]

    @get("/", guards=[viewer], media_type="text/event-stream",
         summary="Live events (server-sent events); filters device_id (repeatable) and types "
                 "(comma-separated); resume with Last-Event-ID; token also as access_token")
    async def events(self, request: Request[Any, Any, Any]) -> Stream:
        principal = request.scope.get("user")
        if not isinstance(principal, Principal):
            raise Unauthorized("a bearer token is required")
        stream_request = StreamRequest(event_filter=event_filter(request),
                                       last_event_id=last_event_id(request),
                                       expires_at=principal.expires_at)
        hub = await hub_of(request.app)
        return Stream(live_stream(hub, stream_request), media_type="text/event-stream",
                      headers=SSE_HEADERS)


def event_filter(request: Request[Any, Any, Any]) -> EventFilter:
    devices = [d for value in request.query_params.getall("device_id", [])
               for d in value.split(",") if d]
    bad = [d for d in devices if not DEVICE_ID.match(d)]
    if bad or len(devices) > MAX_FILTER_DEVICES:
        raise BadRequest(f"device_id: not a device id: {bad[0]!r}" if bad
                         else f"device_id: at most {MAX_FILTER_DEVICES}")
    names = {n.strip() for value in request.query_params.getall("types", [])
             for n in value.split(",") if n.strip()}
    unknown = sorted(names - LIVE_EVENT_NAMES)
    if unknown:
        raise BadRequest(f"types: unknown event {unknown[0]!r}; known: "
                         + ", ".join(sorted(LIVE_EVENT_NAMES)))
    return EventFilter(device_ids=frozenset(devices), names=frozenset(names))


def last_event_id(request: Request[Any, Any, Any]) -> int | None:
    """The Last-Event-ID header (EventSource reconnecting), else `last_event_id` (by hand)."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw.strip() == "":
        return None
    if not EVENT_ID.match(raw.strip()):
        raise BadRequest("Last-Event-ID: not an event id")
    return int(raw.strip())


class LivePageController(Controller):
    """Public: the page signs in itself (POST /api/auth/login) and the catalogue is public."""

    path = "/"
    include_in_schema = False
    opt = {"public": True}

    @get("/", media_type="text/html", sync_to_thread=False)
    def index(self) -> Response[bytes]:
        return _file("index.html", "text/html; charset=utf-8")

    @get("/static/{name:str}", sync_to_thread=False)
    def static(self, name: str) -> Response[bytes]:
        if name not in STATIC_FILES:
            return Response(b"not found", status_code=404, media_type="text/plain")
        return _file(name, STATIC_FILES[name])

    @get("/asyncapi.json", sync_to_thread=False)
    def asyncapi(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        return Response(_asyncapi(request.app.state.gateway.subjects.root),
                        media_type="application/json")


@functools.cache
def _asyncapi(root: str) -> bytes:
    return encode(generate(root))


def _file(name: str, media_type: str) -> Response[bytes]:
    return Response((STATIC / name).read_bytes(), media_type=media_type,
                    headers={"Cache-Control": "no-cache"})
