"""Commands for a device that is offline: queued, sent in order when it comes online, expired
after their TTL, cancelled by an operator while they wait."""

from __future__ import annotations

import httpx

from tests.integration.commands.fleet import FakeDevice, bring_online, wait_status
from tests.support.console import Console


async def queue(api: httpx.AsyncClient, device_id: str, command: str, **body: object) -> str:
    reply = await api.post(f"/api/devices/{device_id}/command", json={"command": command,
                                                                      **body})
    assert reply.status_code == 202, reply.text
    assert reply.json()["status"] == "pending"
    return str(reply.json()["request_id"])


async def test_offline_commands_wait_and_leave_in_order(console: Console,
                                                        api: httpx.AsyncClient,
                                                        device_id: str) -> None:
    order = ["sync_time", "get_config", "ping", "wifi_scan", "reboot"]
    request_ids = [await queue(api, device_id, command) for command in order]
    listed = (await api.get(f"/api/devices/{device_id}/commands",
                            params={"status": "pending"})).json()
    assert listed["total"] == 5
    assert [c["request_id"] for c in listed["items"]] == request_ids[::-1]  # newest first
    async with FakeDevice(console, device_id) as device:
        await bring_online(console, api, device_id)
        received = [await device.next_command() for _ in order]
    assert [c["command"] for c in received] == order
    assert [c["request_id"] for c in received] == request_ids
    for request_id in request_ids:
        await wait_status(api, device_id, request_id, "sent")


async def test_a_queued_command_expires_after_its_ttl(api: httpx.AsyncClient,
                                                      device_id: str) -> None:
    request_id = await queue(api, device_id, "reboot", ttl_s=1)
    expired = await wait_status(api, device_id, request_id, "expired", timeout_s=10)
    assert [e["status"] for e in expired["events"]] == ["pending", "expired"]
    assert expired["ttl_s"] == 1


async def test_cancel_a_pending_command_only(console: Console, api: httpx.AsyncClient,
                                             device_id: str) -> None:
    request_id = await queue(api, device_id, "clear_sd")
    cancelled = await api.delete(f"/api/devices/{device_id}/commands/{request_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await api.delete(f"/api/devices/{device_id}/commands/{request_id}")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    elsewhere = await api.delete(f"/api/devices/ACV-000000000000/commands/{request_id}")
    assert elsewhere.status_code == 404
    async with FakeDevice(console, device_id) as device:
        await bring_online(console, api, device_id)
        sent_id = (await api.post(f"/api/devices/{device_id}/command",
                                  json={"command": "ping"})).json()["request_id"]
        command = await device.next_command()
    assert command["request_id"] == sent_id  # the cancelled one never reached the device
    await wait_status(api, device_id, sent_id, "sent")
    late = await api.delete(f"/api/devices/{device_id}/commands/{sent_id}")
    assert late.status_code == 409


async def test_filters_and_unknown_commands(api: httpx.AsyncClient, device_id: str) -> None:
    await queue(api, device_id, "ping")
    await queue(api, device_id, "reboot")
    only = (await api.get(f"/api/devices/{device_id}/commands",
                          params={"command": "reboot"})).json()
    assert only["total"] == 1 and only["items"][0]["command"] == "reboot"
    future = (await api.get(f"/api/devices/{device_id}/commands",
                            params={"from": "2999-01-01T00:00:00Z"})).json()
    assert future["total"] == 0
    bad = await api.get(f"/api/devices/{device_id}/commands", params={"status": "lost"})
    assert bad.status_code in (400, 422)
    missing = await api.get(f"/api/devices/{device_id}/commands/0000000000")
    assert missing.status_code == 404
