"""Alerts, groups and the dashboard through the whole console: real MQTT in, the API out."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.integration.health.helpers import (
    alerts_of,
    device_alert,
    device_where,
    facts,
    heartbeat,
    register,
)
from tests.support.console import Console
from tests.support.waiting import eventually

OVERVOLTAGE: dict[str, Any] = {
    "alert_type": "overvoltage", "severity": "warning", "value": 262.1, "threshold": 253.0,
    "message": "Phase 1 voltage 262.1 V above 253.0 V", "metadata": {"phase": 1},
}


async def test_device_alert_open_repeat_resolve_acknowledge(console: Console,
                                                            device_id: str) -> None:
    await register(console, device_id)
    async with console.client("operator") as http, \
            facts(f"{console.bus_root}.alert.*.{device_id}") as seen:
        await device_where(http, device_id)
        now = time.time()
        await device_alert(console, device_id, ts=now, **OVERVOLTAGE)

        async def opened() -> list[Any]:
            return await alerts_of(http, device_id, state="open")

        [alert] = await eventually(opened, what="alert opened")
        assert alert["occurrence_count"] == 1 and alert["source"] == "device"
        await device_alert(console, device_id, ts=now + 5, **{**OVERVOLTAGE, "value": 265.0})

        async def repeated() -> bool:
            [row] = await opened()
            return bool(row["occurrence_count"] == 2)

        await eventually(repeated, what="repeat counted on the same alert")
        [alert] = await opened()
        assert alert["last_value"] == 265.0 and alert["value"] == 262.1
        reply = await http.put(f"/api/alerts/{alert['id']}/acknowledge")
        assert reply.status_code == 200, reply.text
        assert reply.json()["acknowledged"] is True
        assert reply.json()["acknowledged_by"] == "operator@example.com"
        assert reply.json()["acknowledged_at"] is not None
        await device_alert(console, device_id, ts=now + 10, alert_type="overvoltage",
                           state="resolved")

        async def resolved() -> list[Any]:
            return await alerts_of(http, device_id, state="resolved")

        [closed] = await eventually(resolved, what="alert resolved")
        assert closed["id"] == alert["id"] and closed["resolved_at"] is not None
        assert await opened() == []
        listed = (await http.get("/api/alerts", params={
            "device_id": device_id, "acknowledged": "true", "severity": "warning",
            "from": str(int(now) - 60), "to": "2999-01-01T00:00:00Z"})).json()
        assert [a["id"] for a in listed["items"]] == [alert["id"]]
        await eventually(lambda: _async(len(seen.seen) >= 4), what="alert facts")
        kinds = [subject.split(".")[2] for subject, _ in seen.seen]
        assert kinds == ["created", "updated", "updated", "resolved"]
    async with console.client("viewer") as http:
        reply = await http.put(f"/api/alerts/{alert['id']}/acknowledge")
        assert reply.status_code == 403
        reply = await http.get("/api/alerts", params={"from": "yesterday"})
        assert reply.status_code == 400 and "from" in reply.json()["detail"]
        assert (await http.get("/api/alerts", params={"acknowledged": "maybe"})).status_code \
            == 422
    async with console.client("operator") as http:
        assert (await http.put("/api/alerts/999999999/acknowledge")).status_code == 404


async def test_brownout_heartbeat_opens_console_alert(console: Console, device_id: str) -> None:
    await register(console, device_id)
    async with console.client("viewer") as http:
        await device_where(http, device_id)
        await heartbeat(console, device_id, boot_count=3, reset_reason="brownout",
                        free_heap=12000, modbus_errors=0)

        async def found() -> list[Any]:
            return [a for a in await alerts_of(http, device_id, state="open")
                    if a["alert_type"] in ("abnormal_reset", "low_memory")]

        alerts = await eventually(lambda: _len_at_least(found, 2), what="anomaly alerts")
        by_type = {a["alert_type"]: a for a in alerts}
        assert by_type["abnormal_reset"]["metadata"]["reset_reason"] == "brownout"
        assert by_type["abnormal_reset"]["source"] == "console"
        assert by_type["low_memory"]["value"] == 12000
        # The same boot again: no new reset; Modbus errors rise; the heap recovered.
        await heartbeat(console, device_id, boot_count=3, reset_reason="brownout",
                        free_heap=90000, modbus_errors=4)

        async def after() -> bool:
            types = {a["alert_type"]: a for a in await alerts_of(http, device_id, state="open")}
            return ("low_memory" not in types and "modbus_errors" in types
                    and types["abnormal_reset"]["occurrence_count"] == 1)

        await eventually(after, what="low memory cleared, modbus errors opened")


async def test_groups_crud_and_delete_keeps_devices(console: Console, device_id: str) -> None:
    name = f"group-{uuid.uuid4().hex[:8]}"
    await register(console, device_id)
    async with console.client("operator") as http:
        reply = await http.post("/api/groups", json={"name": name, "description": "north"})
        assert reply.status_code == 201, reply.text
        group = reply.json()
        assert (await http.post("/api/groups", json={"name": name})).status_code == 409
        assert (await http.post("/api/groups", json={"description": "x"})).status_code == 422
        await device_where(http, device_id)
        reply = await http.put(f"/api/devices/{device_id}", json={"group_id": group["id"]})
        assert reply.status_code == 200 and reply.json()["group_id"] == group["id"]
        reply = await http.put(f"/api/groups/{group['id']}", json={"name": name + "-2"})
        assert reply.status_code == 200 and reply.json()["name"] == name + "-2"
        got = (await http.get(f"/api/groups/{group['id']}")).json()
        assert got["device_count"] == 1 and got["description"] == "north"
        members = (await http.get(f"/api/groups/{group['id']}/devices")).json()
        assert members == {"group_id": group["id"], "device_ids": [device_id]}
        names = [g["name"] for g in (await http.get("/api/groups",
                                                    params={"limit": 1000})).json()["items"]]
        assert name + "-2" in names
        assert (await http.delete(f"/api/groups/{group['id']}")).status_code == 204
        device = (await http.get(f"/api/devices/{device_id}")).json()
        assert device["group_id"] is None
        for path in (f"/api/groups/{group['id']}", f"/api/groups/{group['id']}/devices"):
            assert (await http.get(path)).status_code == 404
        assert (await http.delete(f"/api/groups/{group['id']}")).status_code == 404


async def test_dashboard_summary_and_stats(console: Console) -> None:
    run = uuid.uuid4().hex[:6].upper()
    ids = [f"DSH-{run}-{n}" for n in range(3)]
    async with console.client("viewer") as http:
        before = (await http.get("/api/dashboard/summary")).json()
        for device_id in ids:
            await register(console, device_id, firmware_version=f"7.{run}")
        await heartbeat(console, ids[0], connection_type="wifi", signal_strength=-60)
        await heartbeat(console, ids[1], connection_type="gsm", signal_strength=-105)
        await device_where(http, ids[0], status="online")
        await device_where(http, ids[1], status="online")
        await device_where(http, ids[2])
        summary = (await http.get("/api/dashboard/summary")).json()
        assert summary["total"] >= before["total"] + 3
        assert summary["online"] >= 2
        assert summary["firmware_versions"][f"7.{run}"] == 3
        assert set(summary["open_alerts"]) == {"info", "warning", "critical"}
        assert summary["total"] == summary["online"] + summary["degraded"] + summary["offline"]
        stats = (await http.get("/api/dashboard/stats")).json()
        assert stats["devices_by_connection_type"]["wifi"] >= 1
        assert stats["devices_by_connection_type"]["gsm"] >= 1
        assert stats["devices_by_signal_quality"]["excellent"] >= 1
        assert stats["devices_by_signal_quality"]["poor"] >= 1
        assert len(stats["heartbeats_per_minute"]) == 15
        assert len(stats["alerts_per_day"]) == 30
        assert "telemetry_messages_per_minute" in stats

        async def counted() -> bool:
            reply = (await http.get("/api/dashboard/stats")).json()
            return sum(m["heartbeats"] for m in reply["heartbeats_per_minute"]) >= 2

        await eventually(counted, timeout_s=15, what="heartbeats counted per minute")


async def _len_at_least(probe: Any, count: int) -> Any:
    found = await probe()
    return found if len(found) >= count else None


async def _async(value: Any) -> Any:
    return value
