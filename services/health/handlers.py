"""Transport of the health service: device input from JetStream, RPC operations, the sweep.

No SQL and no rules here: messages are decoded into their types (a malformed one is a
ConsoleError, dead-lettered by `bus.each`) and handed to the domain.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from nats.aio.msg import Msg
from prometheus_client import Counter

from libs.common import bus
from libs.common.codec import decode
from libs.common.errors import InvalidInput, NotFound, ServiceUnavailable
from libs.common.messages.device import DeviceAlert, DeviceRegistration, Heartbeat, StatusReport
from libs.common.messages.events import FirmwareRolloutUpdated
from libs.common.paging import PageQuery
from libs.common.rpc import RpcClient
from libs.common.runtime import Runtime
from services.health.dashboard import Dashboard
from services.health.fleet import Fleet
from services.health.rollout_alerts import ReadRollout, RolloutAlerts, RolloutView
from services.health.schemas import (
    AlertAck,
    AlertQuery,
    DeviceListQuery,
    DeviceRef,
    DeviceUpdate,
    GroupCreate,
    GroupRef,
    GroupUpdate,
)
from services.health.service import DeviceInput

log = logging.getLogger(__name__)

DURABLE = "health"
# Facts of other services that raise console alerts (EVENTS stream).
ROLLOUTS_DURABLE = "health-rollouts"
# Heartbeats of a large fleet arrive steadily; a batch keeps the fetch round trips few.
BATCH_SIZE = 200
# Per-minute heartbeat tallies reach the table this often (seconds).
TALLY_FLUSH_S = 5.0

HANDLED = Counter("acuvim_health_input_total", "Device input handled by health", ["kind"])
SWEPT = Counter("acuvim_health_swept_total", "Devices whose state the sweep changed")
ROLLOUT_FACTS = Counter("acuvim_health_rollout_facts_total",
                        "Firmware rollout facts handled by health", ["outcome"])


class FirmwareUnreachable(RuntimeError):
    """Not a ConsoleError on purpose: the fact is redelivered later, not dead-lettered."""


def register(rt: Runtime, devices: DeviceInput, fleet: Fleet, dashboard: Dashboard,
             rollouts: RolloutAlerts) -> None:
    # One wildcard filter rather than one per kind: NATS before 2.10 ignores a list of filter
    # subjects (and would deliver telemetry too); command answers that match it are skipped.
    rt.consume(stream=rt.subjects.device_in_stream, durable=DURABLE,
               filter_subjects=[rt.subjects.device_in_kind("*")],
               handler=bus.each(input_handler(devices)), batch_size=BATCH_SIZE)
    rt.consume(stream=rt.subjects.events_stream, durable=ROLLOUTS_DURABLE,
               filter_subjects=[rt.subjects.firmware_rollout_updated("*")],
               handler=bus.each(rollout_handler(rollouts)))
    rt.every("health-sweep", rt.settings.health_check_interval_s, sweeper(devices))
    rt.every("heartbeat-tally", TALLY_FLUSH_S, devices.flush_tally)
    _routes(rt, fleet, dashboard)


def input_handler(devices: DeviceInput) -> Callable[[Msg], Awaitable[None]]:
    async def handle(msg: Msg) -> None:
        try:
            await dispatch(msg)
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            # A value the table refuses will be refused on every redelivery: bad input.
            raise InvalidInput(f"{type(exc).__name__}: {exc}") from exc

    async def dispatch(msg: Msg) -> None:
        kind = msg.subject.split(".")[2]
        origin = f"in{msg.metadata.sequence.stream}"
        if kind == "heartbeat":
            await devices.heartbeat(decode(msg.data, Heartbeat), origin)
        elif kind == "register":
            await devices.register(decode(msg.data, DeviceRegistration), origin)
        elif kind == "status":
            await devices.status(decode(msg.data, StatusReport), origin)
        elif kind == "alert":
            await devices.device_alert(decode(msg.data, DeviceAlert), origin)
        else:
            return  # not for health (command answers share the filter)
        HANDLED.labels(kind=kind).inc()

    return handle


def rollout_handler(rollouts: RolloutAlerts) -> Callable[[Msg], Awaitable[None]]:
    async def handle(msg: Msg) -> None:
        fact = decode(msg.data, FirmwareRolloutUpdated)
        try:
            outcome = await rollouts.updated(fact, f"ev{msg.metadata.sequence.stream}")
        except asyncpg.DataError as exc:
            raise InvalidInput(f"{type(exc).__name__}: {exc}") from exc
        ROLLOUT_FACTS.labels(outcome=outcome).inc()

    return handle


def rollout_reader(rpc: RpcClient) -> ReadRollout:
    async def read(rollout_id: str) -> RolloutView | None:
        try:
            return await rpc.call("firmware", "rollouts.get", {"rollout_id": rollout_id},
                                  into=RolloutView)
        except NotFound:
            return None
        except ServiceUnavailable as exc:
            raise FirmwareUnreachable(exc.detail) from exc

    return read


def sweeper(devices: DeviceInput) -> Callable[[], Awaitable[None]]:
    async def sweep() -> None:
        SWEPT.inc(await devices.sweep())

    return sweep


def _routes(rt: Runtime, fleet: Fleet, dashboard: Dashboard) -> None:
    route = rt.rpc.route

    @route("devices.list", DeviceListQuery)
    async def list_devices(q: DeviceListQuery) -> Any:
        return await fleet.list_devices(q)

    @route("devices.get", DeviceRef)
    async def get_device(ref: DeviceRef) -> Any:
        return await fleet.get_device(ref.device_id)

    route("devices.update", DeviceUpdate)(fleet.update_device)

    @route("devices.delete", DeviceRef)
    async def delete_device(ref: DeviceRef) -> Any:
        await fleet.delete_device(ref.device_id)
        return {"device_id": ref.device_id, "deleted": True}

    @route("devices.status", DeviceRef)
    async def device_status(ref: DeviceRef) -> Any:
        return await fleet.device_status(ref.device_id)

    # Operations whose request is the domain call's argument as it is.
    route("alerts.list", AlertQuery)(fleet.list_alerts)
    route("alerts.acknowledge", AlertAck)(fleet.acknowledge)
    route("groups.list", PageQuery)(fleet.list_groups)

    @route("groups.get", GroupRef)
    async def get_group(ref: GroupRef) -> Any:
        return await fleet.get_group(ref.group_id)

    route("groups.create", GroupCreate)(fleet.create_group)
    route("groups.update", GroupUpdate)(fleet.update_group)

    @route("groups.delete", GroupRef)
    async def delete_group(ref: GroupRef) -> Any:
        await fleet.delete_group(ref.group_id)
        return {"group_id": str(ref.group_id), "deleted": True}

    @route("groups.members", GroupRef)
    async def group_members(ref: GroupRef) -> Any:
        return await fleet.group_members(ref.group_id)

    @route("dashboard.summary")
    async def summary(_: Any) -> Any:
        return await dashboard.summary()

    @route("dashboard.stats")
    async def stats(_: Any) -> Any:
        return await dashboard.stats()
