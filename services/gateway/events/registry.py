"""The one hub of a gateway process, started on first use (no SSE client: no subscription)."""

from __future__ import annotations

import asyncio
from typing import Any

from services.gateway.events.hub import Hub


async def hub_of(app: Any) -> Hub:
    state = app.state
    lock: asyncio.Lock = state.setdefault("events_hub_lock", asyncio.Lock())
    async with lock:
        hub: Hub | None = state.get("events_hub")
        if hub is None:
            gateway = state.gateway
            hub = Hub(gateway.js, gateway.subjects)
            await hub.start()
            state.events_hub = hub
        return hub


async def close_live_events(app: Any) -> None:
    """End every open stream at shutdown: the HTTP server waits for open responses to finish,
    and an event stream never finishes on its own (clients reconnect to another replica)."""
    hub: Hub | None = app.state.get("events_hub")
    if hub is not None:
        await hub.stop()
