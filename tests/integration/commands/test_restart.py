"""A commands service killed (-9) in the middle of a command loses nothing: the device's answer
waits in DEVICE_IN for the durable consumer, and the restarted service ends the command.
Its metrics count the answers that changed nothing (unknown request ids, repeats)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.commands.fleet import FakeDevice, bring_online, wait_status
from tests.support.console import Console, free_port
from tests.support.waiting import eventually

SERVICES = ("ingest", "health", "commands", "gateway")


@pytest.fixture(scope="module")
async def own_console(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    async with Console.running(Path(tmp_path_factory.mktemp("commands-restart")), SERVICES,
                               ACUVIM_COMMAND_TIMEOUT_S="60",
                               ACUVIM_HEALTH_CHECK_INTERVAL_S="1") as c:
        yield c


async def metric(port: int, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_restart_in_the_middle_loses_nothing(own_console: Console,
                                                   device_id: str) -> None:
    c = own_console
    async with c.client("operator") as api, FakeDevice(c, device_id) as device:
        await bring_online(c, api, device_id)
        sent = await api.post(f"/api/devices/{device_id}/command", json={"command": "reboot"})
        request_id = sent.json()["request_id"]
        assert (await device.next_command())["request_id"] == request_id
        c.kill("commands")
        await device.answer(request_id, "ack")
        await device.answer(request_id, "success", data={"rebooting": True})
        await device.answer("0123456789abcdef", "success")  # nobody sent this one
        metrics_port = free_port()
        c.start("commands", ACUVIM_METRICS_PORT=str(metrics_port))
        await c.wait_healthy(SERVICES, timeout_s=30)
        done = await wait_status(api, device_id, request_id, "success", timeout_s=20)
        assert done["response"] == {"rebooting": True}
        assert [e["status"] for e in done["events"]] == ["pending", "sent", "ack", "success"]

        async def counted() -> bool:
            return await metric(
                metrics_port, 'acuvim_commands_answers_total{outcome="unknown"}') >= 1

        await eventually(counted, what="unknown answer counted")
        await device.answer(request_id, "success", data={"again": True})

        async def repeat_counted() -> bool:
            return await metric(
                metrics_port, 'acuvim_commands_answers_total{outcome="duplicate"}') >= 1

        await eventually(repeat_counted, what="repeated answer counted")
        again = await wait_status(api, device_id, request_id, "success")
        assert again["response"] == {"rebooting": True}
