"""A command's life against the real console: a fake device on MQTT answers as the firmware
would (or does not), and the HTTP API shows each status with its timestamped history."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.integration.commands.fleet import (
    FakeDevice,
    answer_success,
    bring_online,
    command_status,
    wait_status,
)
from tests.support.console import Console


async def send(api: httpx.AsyncClient, device_id: str, **body: object) -> dict[str, object]:
    reply = await api.post(f"/api/devices/{device_id}/command", json=body)
    assert reply.status_code == 202, reply.text
    result: dict[str, object] = reply.json()
    return result


async def test_success_with_ack_and_data(console: Console, api: httpx.AsyncClient,
                                         device_id: str) -> None:
    async with FakeDevice(console, device_id) as device:
        await bring_online(console, api, device_id)
        sent = await send(api, device_id, command="ping")
        request_id = str(sent["request_id"])
        assert len(request_id) >= 10 and sent["created_by"] == "operator@example.com"
        command = await device.next_command()
        assert command == {"request_id": request_id, "command": "ping", "params": {},
                           "device_id": device_id}
        await wait_status(api, device_id, request_id, "sent")
        await device.answer(request_id, "ack")
        acked = await wait_status(api, device_id, request_id, "ack")
        assert acked["acked_at"] is not None
        await device.answer(request_id, "success", data={"rtt_ms": 42})
        done = await wait_status(api, device_id, request_id, "success")
    assert done["response"] == {"rtt_ms": 42} and done["completed_at"] is not None
    assert [e["status"] for e in done["events"]] == ["pending", "sent", "ack", "success"]
    history = (await api.get(f"/api/devices/{device_id}/commands")).json()
    assert history["total"] == 1 and history["items"][0]["request_id"] == request_id


async def test_error_answer(console: Console, api: httpx.AsyncClient, device_id: str) -> None:
    async with FakeDevice(console, device_id) as device:
        await bring_online(console, api, device_id)
        request_id = str((await send(api, device_id, command="clear_sd"))["request_id"])
        await device.next_command()
        await device.answer(request_id, "error", error="SD card not mounted")
        failed = await wait_status(api, device_id, request_id, "error")
    assert failed["error"] == "SD card not mounted"


async def test_no_answer_times_out_and_a_late_answer_changes_nothing(
        console: Console, api: httpx.AsyncClient, device_id: str) -> None:
    async with FakeDevice(console, device_id) as device:
        await bring_online(console, api, device_id)
        request_id = str((await send(api, device_id, command="sync_time"))["request_id"])
        await device.next_command()
        timed_out = await wait_status(api, device_id, request_id, "timeout", timeout_s=15)
        assert "3 s" in timed_out["error"]
        await device.answer(request_id, "success", data={"late": True})

        async def late_recorded() -> bool:
            command = await command_status(api, device_id, request_id)
            assert command["status"] == "timeout" and command["response"] is None
            return any(e["status"] == "late_answer" for e in command["events"])

        from tests.support.waiting import eventually

        await eventually(late_recorded, what="late answer recorded")


async def test_duplicate_and_foreign_answers(console: Console, api: httpx.AsyncClient,
                                             device_id: str) -> None:
    other = device_id[:-1] + ("0" if device_id[-1] != "0" else "1")
    async with FakeDevice(console, device_id) as device:
        await bring_online(console, api, device_id)
        request_id = str((await send(api, device_id, command="reboot"))["request_id"])
        await device.next_command()
        await device.answer(request_id, "success", device_id=other, data={"forged": True})
        await device.answer(request_id, "ack")
        await device.answer(request_id, "ack")
        await device.answer(request_id, "success", data={"ok": 1})
        await device.answer(request_id, "success", data={"ok": 2})
        await device.answer("feedfacecafe0000", "success")  # a request nobody sent

        async def settled() -> dict[str, object]:
            command = await command_status(api, device_id, request_id)
            kinds = [e["status"] for e in command["events"]]
            assert kinds.count("foreign_answer") == 1 and command["status"] == "success", kinds
            return command

        from tests.support.waiting import eventually

        command = await eventually(settled, what="answers settled")
    assert command["response"] == {"ok": 1}
    statuses = [e["status"] for e in command["events"]]  # type: ignore[attr-defined]
    assert statuses.count("ack") == 1 and statuses.count("success") == 1


async def test_wait_s_holds_until_the_end(console: Console, api: httpx.AsyncClient,
                                          device_id: str) -> None:
    async with FakeDevice(console, device_id, responder=answer_success({"v": 1})):
        await bring_online(console, api, device_id)
        done = await send(api, device_id, command="ping", wait_s=10)
    assert done["status"] == "success" and done["response"] == {"v": 1}


async def test_wait_s_gives_up_with_the_latest_state(console: Console, api: httpx.AsyncClient,
                                                     device_id: str) -> None:
    held = await send(api, device_id, command="ping", wait_s=0.5)
    assert held["status"] == "pending"
    bad = await api.post(f"/api/devices/{device_id}/command", json={"command": "ping",
                                                                  "wait_s": 61})
    assert bad.status_code == 422 and "wait_s" in bad.json()["detail"]


@pytest.mark.parametrize(("body", "field"), [
    ({"command": "format_disk"}, "command"),
    ({"command": "reboot", "params": {"delay": 3}}, "delay"),
    ({"command": "ota_update", "params": {"url": "http://x/fw.bin", "version": "1.3.0",
                                          "checksum": "abc", "size": 10}}, "checksum"),
    ({"command": "ota_update", "params": {"url": "http://x/fw.bin", "version": "1.3.0",
                                          "checksum": "a" * 64, "size": 0}}, "size"),
    ({"command": "set_config", "params": {"modbus": {"baud": 9601}}}, "modbus.baud"),
])
async def test_bad_commands_are_refused(api: httpx.AsyncClient, device_id: str,
                                        body: dict[str, object], field: str) -> None:
    reply = await api.post(f"/api/devices/{device_id}/command", json=body)
    assert reply.status_code == 422, reply.text
    assert field in reply.json()["detail"]


async def test_viewer_cannot_send(console: Console, device_id: str) -> None:
    async with console.client("viewer") as viewer:
        reply = await viewer.post(f"/api/devices/{device_id}/command", json={"command": "ping"})
    assert reply.status_code == 403


async def test_ota_progress_keeps_the_command_open(console: Console, api: httpx.AsyncClient,
                                                   device_id: str) -> None:
    params = {"url": f"{console.base_url}/api/firmware/download/1.3.0", "version": "1.3.0",
              "checksum": "c0" * 32, "size": 1_500_000}
    async with FakeDevice(console, device_id) as device:
        await bring_online(console, api, device_id)
        default = await send(api, device_id, command="ota_update", params=params)
        assert default["timeout_s"] == 1800  # an OTA has its own, longer timeout
        await device.next_command()
        # A 2 s timeout, refreshed by each progress answer: alive after 4 s of progress.
        request_id = str((await send(api, device_id, command="ota_update", params=params,
                                     timeout_s=2))["request_id"])
        await device.next_command()
        for percent in (10, 35, 60, 85):
            await device.answer(request_id, "progress", progress=percent)
            await asyncio.sleep(1.0)  # the device's pace, not a wait for the console
        alive = await command_status(api, device_id, request_id)
        assert alive["status"] == "ack" and alive["progress"] == 85
        timed_out = await wait_status(api, device_id, request_id, "timeout", timeout_s=10)
    assert timed_out["progress"] == 85
    assert [e["status"] for e in timed_out["events"]][-1] == "timeout"
