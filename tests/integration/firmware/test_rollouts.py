"""Deployments to fake devices over MQTT: success, a rollback, a staged rollout that pauses
itself on failures and resumes, and the facts it publishes."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest

from libs.common.subjects import Subjects
from tests.integration.firmware.helpers import FakeDevices, fresh_major, register, upload
from tests.support.console import NATS_URL, Console
from tests.support.esp_image import build_image
from tests.support.waiting import eventually

OLD = "1.0.0"


@pytest.fixture
async def rollout_facts(console: Console) -> AsyncIterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    nc = await nats.connect(NATS_URL)

    async def keep(msg: Any) -> None:
        seen.append(json.loads(msg.data))

    await nc.subscribe(Subjects(console.bus_root).firmware_rollout_updated("*"), cb=keep)
    yield seen
    await nc.close()


async def fleet(console: Console, count: int, device_id: str) -> list[str]:
    ids = [f"{device_id[:-1]}{i}" for i in range(count)]
    await asyncio.gather(*(register(console, d, OLD) for d in ids))
    return ids


async def released(console: Console) -> tuple[str, bytes]:
    version = f"{fresh_major()}.0.0"
    image = build_image(version, code_bytes=100_000)
    async with console.client("admin") as admin:
        assert (await upload(admin, image, version)).status_code == 201
    return version, image


async def rollout_of(client: httpx.AsyncClient, rollout_id: str) -> dict[str, Any]:
    reply = await client.get(f"/api/firmware/rollouts/{rollout_id}")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def states(rollout: dict[str, Any]) -> dict[str, str]:
    return {d["device_id"]: d["state"] for d in rollout["devices"]}


async def test_deploy_updates_one_device_and_sees_another_roll_back(
        console: Console, device_id: str, rollout_facts: list[dict[str, Any]]) -> None:
    good, bad = await fleet(console, 2, device_id)
    version, image = await released(console)
    devices = FakeDevices(console, {good: "ok", bad: "rollback"}, OLD)
    async with devices.running(), console.client("operator") as operator:
        reply = await operator.post("/api/firmware/deploy", json={
            "version": version, "device_ids": [good, bad], "failure_threshold": 5})
        assert reply.status_code == 202, reply.text
        rollout_id = reply.json()["id"]

        async def finished() -> dict[str, Any] | None:
            rollout = await rollout_of(operator, rollout_id)
            return rollout if rollout["state"] == "completed" else None

        rollout = await eventually(finished, timeout_s=30, what="rollout completed")
    assert states(rollout) == {good: "succeeded", bad: "rolled_back"}
    assert rollout["counts"] == {"succeeded": 1, "rolled_back": 1}
    by_device = {d["device_id"]: d for d in rollout["devices"]}
    assert by_device[good]["bytes_downloaded"] == len(image)
    assert by_device[bad]["old_version"] == OLD and "came back" in by_device[bad]["error"]
    assert devices.downloaded[good] == image
    params = devices.commands[good]["params"]
    assert params == {"url": f"{console.base_url}/api/firmware/download/{version}",
                      "version": version, "checksum": hashlib.sha256(image).hexdigest(),
                      "size": len(image)}
    mine = [f for f in rollout_facts if f["rollout_id"] == rollout_id]
    assert {f.get("device_state") for f in mine} >= {"sent", "rebooting", "succeeded",
                                                     "rolled_back"}
    assert mine[-1]["state"] == "completed"
    async with console.client("admin") as admin:  # a finished rollout no longer pins it
        assert (await admin.delete(f"/api/firmware/{version}")).status_code == 204


async def test_staged_rollout_pauses_itself_and_resumes(
        console: Console, device_id: str, rollout_facts: list[dict[str, Any]]) -> None:
    ids = await fleet(console, 4, device_id)
    version, _ = await released(console)
    behaviour = {ids[0]: "error", ids[1]: "ok", ids[2]: "ok", ids[3]: "ok"}
    async with FakeDevices(console, behaviour, OLD).running(), \
            console.client("operator") as operator:
        reply = await operator.post("/api/firmware/deploy", json={
            "version": version, "device_ids": ids, "stages": [50], "max_concurrent": 2,
            "failure_threshold": 0.4})
        assert reply.status_code == 202, reply.text
        rollout_id = reply.json()["id"]
        async with console.client("admin") as admin:
            busy = await admin.delete(f"/api/firmware/{version}")
            assert busy.status_code == 409

        async def paused() -> dict[str, Any] | None:
            rollout = await rollout_of(operator, rollout_id)
            return rollout if rollout["state"] == "paused" else None

        rollout = await eventually(paused, timeout_s=30, what="rollout paused itself")
        assert "failed in stage 1" in rollout["reason"]
        assert states(rollout)[ids[0]] == "failed"
        assert [states(rollout)[d] for d in ids[2:]] == ["queued", "queued"]
        assert rollout["stages"] == [50, 100]
        paused_fact = [f for f in rollout_facts
                       if f["rollout_id"] == rollout_id and f["state"] == "paused"]
        assert paused_fact and paused_fact[0]["counts"].get("failed") == 1
        # A device waiting for its stage is told nothing yet.
        check = await operator.get("/api/firmware/check", params={"device_id": ids[3]})
        assert check.json()["update_available"] is False

        resumed = await operator.post(f"/api/firmware/rollouts/{rollout_id}/resume")
        assert resumed.status_code == 200 and resumed.json()["state"] == "running"

        async def completed() -> dict[str, Any] | None:
            rollout = await rollout_of(operator, rollout_id)
            return rollout if rollout["state"] == "completed" else None

        rollout = await eventually(completed, timeout_s=30, what="rollout completed")
        assert rollout["counts"] == {"failed": 1, "succeeded": 3}
        again = await operator.post(f"/api/firmware/rollouts/{rollout_id}/cancel")
        assert again.status_code == 409
        listed = (await operator.get("/api/firmware/rollouts",
                                     params={"version": version})).json()
        assert [r["id"] for r in listed["items"]] == [rollout_id]


async def test_pause_and_cancel_by_hand(console: Console, device_id: str) -> None:
    ids = await fleet(console, 2, device_id)
    version, _ = await released(console)
    async with console.client("operator") as operator:
        # No fake device answers: the first device stays in flight, the second queued.
        reply = await operator.post("/api/firmware/deploy", json={
            "version": version, "device_ids": ids, "max_concurrent": 1})
        rollout_id = reply.json()["id"]
        paused = await operator.post(f"/api/firmware/rollouts/{rollout_id}/pause")
        assert paused.status_code == 200 and paused.json()["state"] == "paused"
        assert paused.json()["reason"] == "paused by operator@example.com"
        assert (await operator.post(f"/api/firmware/rollouts/{rollout_id}/pause")
                ).status_code == 409
        cancelled = await operator.post(f"/api/firmware/rollouts/{rollout_id}/cancel")
        assert cancelled.json()["state"] == "cancelled"
        assert (await operator.post(f"/api/firmware/rollouts/{rollout_id}/jump")
                ).status_code == 400
        unknown = await operator.post("/api/firmware/deploy", json={
            "version": version, "device_ids": ["ACV-UNKNOWN"]})
        assert unknown.status_code == 404
    async with console.client("viewer") as viewer:
        refused = await viewer.post("/api/firmware/deploy", json={
            "version": version, "device_ids": ids})
        assert refused.status_code == 403


async def test_group_deploy_reaches_the_group_members(console: Console, device_id: str) -> None:
    ids = await fleet(console, 2, device_id)
    version, _ = await released(console)
    async with console.client("operator") as operator:
        group = await operator.post("/api/groups", json={"name": f"g-{device_id}"})
        assert group.status_code in (200, 201), group.text
        group_id = group.json()["id"]
        moved = await operator.put(f"/api/devices/{ids[0]}", json={"group_id": group_id})
        assert moved.status_code == 200, moved.text
        reply = await operator.post(f"/api/groups/{group_id}/deploy",
                                    json={"version": version, "max_concurrent": 1})
        assert reply.status_code == 202, reply.text
        rollout = await rollout_of(operator, reply.json()["id"])
        assert [d["device_id"] for d in rollout["devices"]] == [ids[0]]
        assert rollout["group_id"] == group_id
        await operator.post(f"/api/firmware/rollouts/{rollout['id']}/cancel")


async def test_a_silent_device_times_out_and_the_rollout_pauses(console: Console,
                                                                device_id: str) -> None:
    (silent,) = await fleet(console, 1, device_id)
    version, _ = await released(console)
    async with console.client("operator") as operator:
        reply = await operator.post("/api/firmware/deploy", json={
            "version": version, "device_ids": [silent], "device_timeout_s": 1})
        rollout_id = reply.json()["id"]

        async def paused() -> dict[str, Any] | None:
            rollout = await rollout_of(operator, rollout_id)
            return rollout if rollout["state"] == "paused" else None

        rollout = await eventually(paused, timeout_s=15, what="silent device timed out")
        assert states(rollout) == {silent: "timed_out"}
        await operator.post(f"/api/firmware/rollouts/{rollout_id}/cancel")
