"""The frame of the console: all services start, answer health, and the API is locked."""

from __future__ import annotations

from libs.common.subjects import SERVICES
from tests.support.console import Console


async def test_health_answers_ok_when_every_service_runs(console: Console) -> None:
    async with console.client(role=None) as http:
        reply = await http.get("/api/health")
    assert reply.status_code == 200, reply.text
    assert set(reply.json()["services"]) == {*SERVICES, "gateway"}
    assert set(reply.json()["services"].values()) == {"ok"}


async def test_api_needs_a_token(console: Console) -> None:
    async with console.client(role=None) as http:
        reply = await http.get("/api/devices")
    assert reply.status_code == 401
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["status"] == 401
