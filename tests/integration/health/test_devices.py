"""Devices through the whole console: real MQTT in, the API out (registration, heartbeats,
health states, status topic, list filters, delete)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

from tests.integration.health.helpers import (
    alerts_of,
    device_where,
    facts,
    heartbeat,
    register,
    status,
)
from tests.support.console import Console
from tests.support.waiting import eventually

FULL_HEARTBEAT: dict[str, Any] = {
    "uptime_s": 86400, "firmware_version": "1.2.0", "connection_type": "gsm",
    "signal_strength": -71, "ip_address": "10.45.3.2", "boot_count": 17, "free_heap": 145320,
    "min_free_heap": 98000, "reset_reason": "power_on", "modbus_ok": True, "modbus_errors": 3,
    "sd_buffered": 0,
}


async def test_registration_keeps_operator_fields(console: Console, device_id: str) -> None:
    await register(console, device_id, hardware="TTGO T-Call v1.4", firmware_version="1.2.0",
                   capabilities=["wifi", "gsm"], heartbeat_interval=30,
                   meter={"model": "Acuvim II"})
    async with console.client("operator") as http:
        device = await device_where(http, device_id, firmware_version="1.2.0")
        assert device["hardware"] == "TTGO T-Call v1.4"
        assert device["heartbeat_interval"] == 30
        assert device["meter"] == {"model": "Acuvim II"}
        assert device["status"] == "offline"
        reply = await http.put(f"/api/devices/{device_id}", json={
            "name": "Plant 1", "description": "main feeder", "tags": ["plant", "north"]})
        assert reply.status_code == 200, reply.text
        async with facts(f"{console.bus_root}.device.registered.{device_id}") as seen:
            await register(console, device_id, firmware_version="1.3.0")
            device = await device_where(http, device_id, firmware_version="1.3.0")
            await eventually(lambda: _async(seen.on("registered")), what="registered fact")
        assert seen.on("registered")[0]["first_seen"] is False
        assert device["name"] == "Plant 1" and device["description"] == "main feeder"
        assert device["tags"] == ["north", "plant"]
        assert device["hardware"] == "TTGO T-Call v1.4"  # not in the new registration: kept
        assert device["heartbeat_interval"] == 60  # absent: the contract's default


async def test_heartbeat_sets_online_with_fields(console: Console, device_id: str) -> None:
    await register(console, device_id)
    async with console.client("viewer") as http:
        await device_where(http, device_id)
        await heartbeat(console, device_id, **FULL_HEARTBEAT)
        device = await device_where(http, device_id, status="online")
        for key in ("firmware_version", "connection_type", "signal_strength", "ip_address",
                    "boot_count", "free_heap", "modbus_errors"):
            assert device[key] == FULL_HEARTBEAT[key], key
        reply = await http.get(f"/api/devices/{device_id}/status")
        assert reply.status_code == 200
        state = reply.json()
        assert state["status"] == "online"
        assert 0 <= state["seconds_since_heartbeat"] < 30
        assert state["health"]["min_free_heap"] == 98000
        assert state["health"]["reset_reason"] == "power_on"
        assert state["open_alerts"] == 0


async def test_heartbeat_of_unknown_device_registers_it(console: Console,
                                                        device_id: str) -> None:
    await heartbeat(console, device_id, firmware_version="0.9.1")
    async with console.client("viewer") as http:
        device = await device_where(http, device_id, status="online")
        assert device["firmware_version"] == "0.9.1"
        assert device["heartbeat_interval"] == 60


async def test_silence_degraded_offline_then_online(console: Console, device_id: str) -> None:
    await register(console, device_id, heartbeat_interval=1)
    async with console.client("viewer") as http, \
            facts(f"{console.bus_root}.device.status.{device_id}") as seen:
        await device_where(http, device_id)
        await heartbeat(console, device_id)
        await device_where(http, device_id, status="online")
        await device_where(http, device_id, status="degraded")
        await device_where(http, device_id, status="offline")
        [offline] = await alerts_of(http, device_id, alert_type="device_offline", state="open")
        assert offline["source"] == "console"
        await heartbeat(console, device_id)
        await device_where(http, device_id, status="online")
        assert await alerts_of(http, device_id, alert_type="device_offline", state="open") == []
        changes = [(f["old_status"], f["new_status"], f["reason"]) for f in seen.on("status")]
        assert changes == [("offline", "online", "heartbeat"), ("online", "degraded", "sweep"),
                           ("degraded", "offline", "sweep"), ("offline", "online", "heartbeat")]


async def test_status_topic_changes_state_at_once(console: Console, device_id: str) -> None:
    await register(console, device_id)
    async with console.client("viewer") as http:
        await device_where(http, device_id)
        await heartbeat(console, device_id)
        await device_where(http, device_id, status="online")
        await status(console, device_id, "offline")  # the last will
        await device_where(http, device_id, status="offline")
        await status(console, device_id, {"status": "online", "connection_type": "wifi"})
        device = await device_where(http, device_id, status="online")
        assert device["connection_type"] == "wifi"


async def test_list_filters_and_paging(console: Console) -> None:
    run = uuid.uuid4().hex[:6].upper()
    ids = [f"LST-{run}-{n}" for n in range(3)]
    async with console.client("operator") as http:
        group = (await http.post("/api/groups", json={"name": f"list-{run}"})).json()
        for n, device_id in enumerate(ids):
            await register(console, device_id, firmware_version=f"9.{run[:2]}.{n % 2}")
        for device_id in ids:
            await device_where(http, device_id)
        await heartbeat(console, ids[0])
        await device_where(http, ids[0], status="online")
        await http.put(f"/api/devices/{ids[1]}",
                       json={"name": f"Feeder {run}", "tags": [f"t{run}"],
                             "group_id": group["id"]})

        async def listed(**query: Any) -> list[str]:
            reply = await http.get("/api/devices", params=query)
            assert reply.status_code == 200, reply.text
            return [d["device_id"] for d in reply.json()["items"]]

        assert await listed(q=f"lst-{run.lower()}") == ids
        assert await listed(q=f"feeder {run.lower()}") == [ids[1]]
        assert await listed(q=f"lst-{run}", status="online") == [ids[0]]
        assert await listed(tag=f"t{run}") == [ids[1]]
        assert await listed(group_id=group["id"]) == [ids[1]]
        assert await listed(firmware_version=f"9.{run[:2]}.0") == [ids[0], ids[2]]
        page = (await http.get("/api/devices", params={"q": f"LST-{run}", "limit": 2,
                                                       "offset": 1})).json()
        assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 1
        assert [d["device_id"] for d in page["items"]] == ids[1:]


async def test_delete_publishes_fact_and_device_is_gone(console: Console,
                                                         device_id: str) -> None:
    await register(console, device_id)
    async with console.client("operator") as http, \
            facts(f"{console.bus_root}.device.deleted.{device_id}") as seen:
        await device_where(http, device_id)
        reply = await http.delete(f"/api/devices/{device_id}")
        assert reply.status_code == 204, reply.text
        await eventually(lambda: _async(seen.on("deleted")), what="DeviceDeleted fact")
        assert seen.on("deleted")[0]["device_id"] == device_id
        assert (await http.get(f"/api/devices/{device_id}")).status_code == 404
        assert (await http.delete(f"/api/devices/{device_id}")).status_code == 404


async def test_bad_requests(console: Console, device_id: str) -> None:
    await register(console, device_id)
    async with console.client("operator") as http:
        await device_where(http, device_id)
        missing = await http.get("/api/devices/ACV-NOSUCHDEVICE")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert (await http.get("/api/devices/ACV-NOSUCHDEVICE/status")).status_code == 404
        for body, field in (({"tags": "plant"}, "tags"), ({"name": 5}, "name"),
                            ({"tags": ["x" * 40]}, "tags"), ({"colour": "red"}, "colour"),
                            ({"group_id": str(uuid.uuid4())}, "group_id")):
            reply = await http.put(f"/api/devices/{device_id}", json=body)
            assert reply.status_code == 422, (body, reply.text)
            assert field in reply.json()["detail"], (body, reply.text)
        for query, field in (({"status": "sleeping"}, "status"), ({"limit": 0}, "limit"),
                             ({"group_id": "nope"}, "group_id")):
            reply = await http.get("/api/devices", params=query)
            assert reply.status_code in (400, 422), reply.text
            assert field in reply.json()["detail"], reply.text
    async with console.client("viewer") as http:
        reply = await http.put(f"/api/devices/{device_id}", json={"name": "x"})
        assert reply.status_code == 403


async def test_replayed_old_heartbeat_does_not_go_backwards(console: Console,
                                                            device_id: str) -> None:
    now = time.time()
    await heartbeat(console, device_id, ts=now, firmware_version="2.0.0")
    async with console.client("viewer") as http:
        first = await device_where(http, device_id, firmware_version="2.0.0")
        await heartbeat(console, device_id, ts=now - 120, firmware_version="1.0.0")
        await heartbeat(console, device_id, ts=now + 1, boot_count=5)
        device = await device_where(http, device_id, boot_count=5)
        # The older heartbeat never moved last_heartbeat back; the newest one is what it shows.
        assert _at(device["last_heartbeat"]) >= _at(first["last_heartbeat"])
        assert abs(_at(device["last_heartbeat"]).timestamp() - (now + 1)) < 0.01


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _async(value: Any) -> Any:
    return value
