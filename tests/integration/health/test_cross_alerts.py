"""A staged rollout that pauses itself on failures raises a console alert on the failed device;
a pause by hand raises none, even after a failure; the alert closes when the rollout is
cancelled; a fact delivered again opens nothing twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import nats

from libs.common import bus
from libs.common.messages.events import FirmwareRolloutUpdated
from libs.common.subjects import Subjects
from tests.integration.firmware.helpers import FakeDevices, fresh_major, register, upload
from tests.support.console import NATS_URL, Console
from tests.support.esp_image import build_image
from tests.support.waiting import eventually

OLD = "1.0.0"


async def rollout_alerts(http: httpx.AsyncClient, device_id: str) -> list[dict[str, Any]]:
    reply = await http.get("/api/alerts", params={"device_id": device_id,
                                                  "alert_type": "rollout_paused"})
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


async def deploy(operator: httpx.AsyncClient, **body: Any) -> str:
    reply = await operator.post("/api/firmware/deploy", json=body)
    assert reply.status_code == 202, reply.text
    rollout_id: str = reply.json()["id"]
    return rollout_id


def states(rollout: dict[str, Any]) -> dict[str, str]:
    return {d["device_id"]: d["state"] for d in rollout["devices"]}


async def rollout_where(operator: httpx.AsyncClient, rollout_id: str,
                        condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        body: dict[str, Any] = (await operator.get(f"/api/firmware/rollouts/{rollout_id}")).json()
        assert condition(body), body["state"]
        return body

    return await eventually(probe, timeout_s=30, what=f"rollout {rollout_id} as expected")


async def test_a_rollout_paused_on_failures_raises_a_critical_alert_until_cancelled(
        console: Console, device_id: str) -> None:
    silent, bad, good = (f"{device_id[:-1]}{i}" for i in range(3))
    await asyncio.gather(*(register(console, d, OLD) for d in (silent, bad, good)))
    version = f"{fresh_major()}.0.0"
    subjects = Subjects(console.bus_root)
    facts: list[dict[str, Any]] = []
    nc = await nats.connect(NATS_URL)
    try:

        async def keep(msg: Any) -> None:
            facts.append(json.loads(msg.data))

        await nc.subscribe(subjects.firmware_rollout_updated("*"), cb=keep)
        await nc.flush()
        async with console.client("operator") as operator, \
                FakeDevices(console, {bad: "error", good: "ok"}, OLD).running():
            async with console.client("admin") as admin:
                assert (await upload(admin, build_image(version, code_bytes=50_000),
                                     version)).status_code == 201
            # Paused by an operator after a failure below the threshold: no alert.
            manual = await deploy(operator, version=version, device_ids=[bad, silent],
                                  max_concurrent=1, failure_threshold=5)
            await rollout_where(operator, manual, lambda r: states(r)[bad] == "failed")
            assert (await operator.post(f"/api/firmware/rollouts/{manual}/pause")
                    ).status_code == 200
            assert (await operator.post(f"/api/firmware/rollouts/{manual}/cancel")
                    ).status_code == 200

            rollout_id = await deploy(operator, version=version, device_ids=[bad, good],
                                      stages=[50], max_concurrent=1, failure_threshold=0.4)
            rollout = await rollout_where(operator, rollout_id,
                                          lambda r: r["state"] == "paused")

            async def opened() -> list[dict[str, Any]]:
                alerts = await rollout_alerts(operator, bad)
                assert alerts, "no alert yet"
                return alerts

            [alert] = await eventually(opened, timeout_s=15, what="rollout_paused alert")
            assert alert["severity"] == "critical" and alert["source"] == "console"
            assert alert["resolved_at"] is None
            assert version in alert["message"] and rollout["reason"] in alert["message"]
            assert alert["metadata"]["rollout_id"] == rollout_id
            assert alert["metadata"]["version"] == version
            assert alert["metadata"]["counts"].get("failed") == 1
            # Facts are handled in order: the manual pause, earlier, raised nothing.
            assert await rollout_alerts(operator, silent) == []
            assert await rollout_alerts(operator, good) == []

            # The pause delivered again (another replica, a replay) counts nothing twice.
            pause = next(f for f in facts if f["rollout_id"] == rollout_id
                         and f["state"] == "paused" and f.get("device_id") is None)
            js = nc.jetstream()
            await bus.publish_fact(js, subjects.firmware_rollout_updated(rollout_id),
                                   FirmwareRolloutUpdated(**pause))
            assert (await operator.post(f"/api/firmware/rollouts/{rollout_id}/cancel")
                    ).status_code == 200

            async def resolved() -> dict[str, Any]:
                [closed] = await rollout_alerts(operator, bad)
                assert closed["resolved_at"] is not None
                return closed

            closed = await eventually(resolved, timeout_s=15, what="rollout alert resolved")
            assert closed["id"] == alert["id"] and closed["occurrence_count"] == 1
    finally:
        await nc.close()
