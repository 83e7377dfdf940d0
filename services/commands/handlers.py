"""Transport of the commands service: RPC routes, the answer and connectivity consumers, the
sweep, and the bus adapters the domain publishes through. Metrics are counted here."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Counter

from libs.common import bus
from libs.common.codec import decode, encode
from libs.common.messages.device import CommandAnswer, DeviceCommand
from libs.common.messages.events import (
    CommandUpdated,
    ConfigReported,
    DeviceDeleted,
    DeviceRegistered,
    DeviceStatusChanged,
)
from libs.common.outbox import RELAY_PERIOD_S, Outbox
from libs.common.runtime import Runtime
from libs.common.subjects import Subjects
from services.commands.configs import ConfigService
from services.commands.repo import Connection
from services.commands.schemas import (
    CancelCommand,
    GetCommand,
    GetConfig,
    GetGroupCommand,
    GroupMembers,
    ListCommands,
    PushConfig,
    SendCommand,
    SendGroupCommand,
)
from services.commands.service import AnswerOutcome, CommandService

log = logging.getLogger(__name__)

ANSWERS = Counter("acuvim_commands_answers_total",
                  "Device answers by outcome (applied, duplicate, late, unknown, foreign)",
                  ["outcome"])
TRANSITIONS = Counter("acuvim_commands_transitions_total", "Command transitions published",
                      ["status"])
SWEEP_PERIOD_S = 1.0
# Health's view of a device: degraded still answers (late heartbeats), offline does not.
REACHABLE = frozenset({"online", "degraded"})


class BusChannels:
    """Commands to devices on DEVICE_OUT (ingest sends them over MQTT), facts on EVENTS.
    Commands leave through the outbox: stored with their `sent` claim, relayed after."""

    def __init__(self, js: JetStreamContext, subjects: Subjects, outbox: Outbox) -> None:
        self.js = js
        self.subjects = subjects
        self.outbox = outbox

    async def to_device(self, conn: Connection, command: DeviceCommand, sent: CommandUpdated,
                        msg_id: str) -> None:
        # The request id as message id: a re-published command reaches the device once.
        await self.outbox.add(conn, self.subjects.command_out(command.device_id),
                              encode(command), command.request_id)
        await self.outbox.add(conn, self.subjects.command_updated(sent.device_id),
                              encode(sent), msg_id)
        TRANSITIONS.labels(status=sent.status).inc()

    def flush(self) -> None:
        self.outbox.nudge()

    async def command_updated(self, fact: CommandUpdated, msg_id: str) -> None:
        await bus.publish_fact(self.js, self.subjects.command_updated(fact.device_id),
                               fact, msg_id)
        TRANSITIONS.labels(status=fact.status).inc()

    async def config_reported(self, fact: ConfigReported, msg_id: str) -> None:
        await bus.publish_fact(self.js, self.subjects.config_reported(fact.device_id),
                               fact, msg_id)


class HealthDirectory:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def group_members(self, group_id: str) -> list[str]:
        members = await self.rt.rpc_client.call("health", "groups.members",
                                                {"group_id": group_id}, into=GroupMembers)
        return members.device_ids


def register(rt: Runtime, commands: CommandService, configs: ConfigService,
             outbox: Outbox) -> None:
    route = rt.rpc.route
    route("send", SendCommand)(commands.send)
    route("get", GetCommand)(commands.get)
    route("list", ListCommands)(commands.history)
    route("cancel", CancelCommand)(commands.cancel)
    route("group.send", SendGroupCommand)(commands.group_send)
    route("group.get", GetGroupCommand)(commands.group_get)
    route("config.get", GetConfig)(configs.get)
    route("config.push", PushConfig)(configs.push)

    async def on_answer(msg: Msg) -> None:
        answer = decode(msg.data, CommandAnswer)
        outcome = await commands.answer(answer)
        ANSWERS.labels(outcome=outcome.value).inc()
        if outcome is not AnswerOutcome.APPLIED:
            log.info("answer %s from %s: %s", answer.request_id, answer.device_id,
                     outcome.value)

    s = rt.subjects
    rt.consume(stream=s.device_in_stream, durable="commands",
               filter_subjects=[s.device_in_kind("resp")], handler=bus.each(on_answer))
    rt.consume(stream=s.events_stream, durable="commands-connectivity",
               filter_subjects=[s.device_status_changed("*"), s.device_registered("*"),
                                s.device_deleted("*")],
               handler=bus.each(lambda msg: on_connectivity(rt, commands, msg)))
    rt.every("commands-sweep", SWEEP_PERIOD_S, commands.sweep)
    rt.every("commands-outbox", RELAY_PERIOD_S, outbox.relay_once)


async def on_connectivity(rt: Runtime, commands: CommandService, msg: Msg) -> None:
    s = rt.subjects
    kind = msg.subject.rsplit(".", 1)[0]
    if kind == s.device_status_changed("x").rsplit(".", 1)[0]:
        changed = decode(msg.data, DeviceStatusChanged)
        await commands.connectivity(changed.device_id, changed.new_status in REACHABLE,
                                    changed.occurred_at)
    elif kind == s.device_registered("x").rsplit(".", 1)[0]:
        # A device registers when it boots and connects: it is reachable now.
        registered = decode(msg.data, DeviceRegistered)
        await commands.connectivity(registered.device_id, True, registered.occurred_at)
    elif kind == s.device_deleted("x").rsplit(".", 1)[0]:
        deleted = decode(msg.data, DeviceDeleted)
        await commands.connectivity(deleted.device_id, None, deleted.occurred_at)
