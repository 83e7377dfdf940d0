"""Telemetry of one device (owned by the telemetry service).

The CSV export never travels as one message: the gateway asks `telemetry.export.plan` for the
range cut into chunks of readings, then `telemetry.export.page` for the chunks, PAGES_IN_FLIGHT
at a time (each answer well under 1 MB, CSV text written by PostgreSQL), and streams the pages
to the client in order as they are, so its memory stays constant for any range. The plan is
asked for before the response starts, so a bad range is still a problem document (400), not a
broken download.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.response import Stream

from libs.common.rpc import RpcClient
from services.gateway.api.forward import checked_device_id, query_dict, rpc_of
from services.gateway.auth.guard import viewer
from services.telemetry.schemas import ExportPage, ExportPlan

# Readings per chunk of an export plan: a page of ~200 KiB for 50 registers (a page of wider
# readings is cut at ~400 KiB and the chunk finished with more pages).
CHUNK_ROWS = 500
# Pages asked for at once: writing CSV is CPU-bound in PostgreSQL, so this many backends work
# on one export (and the service's replicas share them).
PAGES_IN_FLIGHT = 3
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
                   "to": query.get("to"), "fields": query.get("fields")}
        rpc = rpc_of(request)
        plan = await _plan(rpc, payload)
        filename = f"{device_id}-telemetry.csv"
        return Stream(_csv(rpc, payload, plan), media_type="text/csv; charset=utf-8",
                      headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def _plan(rpc: RpcClient, payload: dict[str, Any]) -> ExportPlan:
    return await rpc.call("telemetry", "export.plan", {**payload, "chunk_rows": CHUNK_ROWS},
                          into=ExportPlan, timeout_s=EXPORT_PAGE_TIMEOUT_S)


async def _page(rpc: RpcClient, payload: dict[str, Any]) -> ExportPage:
    return await rpc.call("telemetry", "export.page", payload, into=ExportPage,
                          timeout_s=EXPORT_PAGE_TIMEOUT_S)


async def _chunks(rpc: RpcClient, payload: dict[str, Any],
                  plan: ExportPlan) -> AsyncGenerator[tuple[str | None, str | None], None]:
    """(after_ts, until_ts) of each chunk in order, the last one open-ended; the plan's
    continuations are asked for as they are needed."""
    after: str | None = None
    while True:
        for end in plan.ends:
            yield after, end
            after = end
        if plan.next_after_ts is None:
            yield after, None
            return
        plan = await _plan(rpc, {**payload, "fields": plan.fields,
                                 "after_ts": plan.next_after_ts})


async def _csv(rpc: RpcClient, payload: dict[str, Any],
               plan: ExportPlan) -> AsyncIterator[bytes]:
    """Header, then the chunks in order, PAGES_IN_FLIGHT of them asked for at once; a chunk
    whose page was cut by the answer budget is finished before the next one is written. The
    columns of the plan hold for the whole file."""
    yield plan.header.encode()
    request = {**payload, "fields": plan.fields, "limit": CHUNK_ROWS + 1}
    chunks = _chunks(rpc, payload, plan)
    asked: deque[tuple[str | None, asyncio.Future[ExportPage]]] = deque()

    async def ask() -> None:
        while len(asked) < PAGES_IN_FLIGHT:
            chunk = await anext(chunks, None)
            if chunk is None:
                return
            after, until = chunk
            asked.append((until, asyncio.ensure_future(_page(rpc, {
                **request, "after_ts": after, "until_ts": until}))))

    try:
        await ask()
        while asked:
            until, future = asked.popleft()
            page = await future
            await ask()
            if page.csv:
                yield page.csv.encode()
            while page.next_after_ts is not None:
                page = await _page(rpc, {**request, "after_ts": page.next_after_ts,
                                         "until_ts": until})
                if page.csv:
                    yield page.csv.encode()
    finally:  # also when the client went away: the pages asked for are not needed
        for _, future in asked:
            future.cancel()
        await chunks.aclose()
