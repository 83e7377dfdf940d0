"""Telemetry of one device (owned by the telemetry service).

The CSV export never travels as one message: the gateway pages through `telemetry.export.page`
(keyset pagination, each answer well under 1 MB, CSV text written by PostgreSQL) and streams
the pages to the client as they are, one page ahead, so its memory stays constant for any
range. The first page is fetched before the response starts, so
a bad range is still a problem document (400), not a broken download.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.response import Stream

from libs.common.rpc import RpcClient
from services.gateway.api.forward import checked_device_id, query_dict, rpc_of
from services.gateway.auth.guard import viewer
from services.telemetry.schemas import ExportPage

# Readings asked for the first page; later pages ask what the service suggests
# (`next_limit`: what fills an answer of about 400 KiB).
EXPORT_PAGE_ROWS = 1000
# A page can take a while on a cold cache; the whole export has no overall limit.
EXPORT_PAGE_TIMEOUT_S = 30.0


class TelemetryController(Controller):
    path = "/api/devices/{device_id:str}/telemetry"
    tags = ["telemetry"]

    @get("/", guards=[viewer], summary="Latest reading and when it arrived")
    async def latest(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {"device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("telemetry", "latest", payload)

    @get("/history", guards=[viewer],
         summary="Readings in a range (from, to, fields, order, limit, offset), "
                 "or buckets with interval (1m, 5m, 15m, 1h, 1d)")
    async def history(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {**query_dict(request, lists=("fields",)),
                   "device_id": checked_device_id(device_id)}
        # Forwarded as the service wrote it (up to ~400 KiB of readings): no decode, no encode.
        return await rpc_of(request).call("telemetry", "history", payload, into=msgspec.Raw)

    @get("/export", guards=[viewer], summary="CSV export of a range (from, to, fields), streamed")
    async def export(self, request: Request[Any, Any, Any], device_id: str) -> Stream:
        query = query_dict(request, ints=(), lists=("fields",))
        payload = {"device_id": checked_device_id(device_id), "from": query.get("from"),
                   "to": query.get("to"), "fields": query.get("fields"),
                   "limit": EXPORT_PAGE_ROWS}
        rpc = rpc_of(request)
        first = await _page(rpc, payload)
        filename = f"{device_id}-telemetry.csv"
        return Stream(_csv(rpc, payload, first), media_type="text/csv; charset=utf-8",
                      headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def _page(rpc: RpcClient, payload: dict[str, Any]) -> ExportPage:
    return await rpc.call("telemetry", "export.page", payload, into=ExportPage,
                          timeout_s=EXPORT_PAGE_TIMEOUT_S)


async def _csv(rpc: RpcClient, payload: dict[str, Any],
               page: ExportPage) -> AsyncIterator[bytes]:
    """Header, then page after page; the columns of the first page hold for the whole file.
    The next page is asked for before this one is written, so the database works while the
    client reads."""
    yield page.header.encode()
    request = {**payload, "fields": page.fields}
    while True:
        following = None
        if page.next_after_ts is not None:
            following = asyncio.ensure_future(_page(rpc, {
                **request, "after_ts": page.next_after_ts,
                "limit": page.next_limit or request["limit"]}))
        try:
            if page.csv:
                yield page.csv.encode()
        except BaseException:  # the client went away: the page asked for is not needed
            if following is not None:
                following.cancel()
            raise
        if following is None:
            return
        page = await following
