"""What other systems rely on: the README's subscriber works, /asyncapi.json is the generated
document, the live page and its files are served under the Content-Security-Policy."""

from __future__ import annotations

import asyncio
import re
import types
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from libs.common.asyncapi import generate
from tests.integration.events.conftest import Bus
from tests.support.console import Console
from tests.support.waiting import eventually

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_subscriber() -> str:
    section = README.read_text().split("## Subscribing from other systems", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README section has no python example"
    return match.group(1)


async def test_the_readme_subscriber_receives_telemetry_facts(
        gateway: Console, bus: Bus, device_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = readme_subscriber()
    assert code.rstrip().endswith("asyncio.run(main())")
    namespace: dict[str, Any] = {}
    exec(code.rstrip().removesuffix("asyncio.run(main())"), namespace)  # noqa: S102 - our README
    connections: list[Any] = []

    async def connect(server: str) -> Any:
        connections.append(await nats.connect(server))
        return connections[-1]

    namespace["nats"] = types.SimpleNamespace(connect=connect, errors=nats.errors)
    task = asyncio.create_task(namespace["main"](root=gateway.bus_root))
    printed: list[str] = []
    try:
        await bus.telemetry(device_id, 42.0)

        async def seen() -> bool:
            printed.append(capsys.readouterr().out)
            return device_id in "".join(printed)

        await eventually(seen, what="the README subscriber printing the fact")
    finally:
        task.cancel()
        for nc in connections:
            await nc.close()
    line = next(line for line in "".join(printed).splitlines() if device_id in line)
    assert line.startswith(bus.subjects.telemetry_received(device_id))
    assert "42.0" in line


async def test_asyncapi_json_is_the_generated_catalogue_of_this_bus(gateway: Console) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        reply = await http.get("/asyncapi.json")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json() == generate(gateway.bus_root)


async def test_the_live_page_is_public_and_under_the_csp(gateway: Console) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        page = await http.get("/")
        script = await http.get("/static/app.js")
        style = await http.get("/static/app.css")
        missing = await http.get("/static/nothing.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js"' in page.text
    assert "<script>" not in page.text  # no inline script: the CSP forbids them
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "EventSource" in script.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404
