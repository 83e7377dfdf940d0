"""The AsyncAPI 3 document of the console's bus, generated from `Subjects` and the msgspec
message types, so it cannot drift from the code.

    python -m libs.common.asyncapi > docs/asyncapi.json      (the gateway serves /asyncapi.json)

Every public member of `Subjects` is covered: a concrete subject is a channel (device input,
device output, facts, dead letters, request-reply); a wildcard filter or a stream name is listed
under `x-acuvim-subjects` with what it is. A member missing from the tables below is an error.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import msgspec

from libs.common.facts import FACTS
from libs.common.messages import device as dev
from libs.common.messages.events import SCHEMA_VERSION
from libs.common.subjects import EVENTS_MAX_AGE_S, Subjects

REF = "#/components/schemas/{name}"
DEVICE_ID = "{deviceId}"


@dataclass(frozen=True)
class Channel:
    member: str  # the Subjects method or property
    message: str  # message name in components.messages
    payload: Any  # a msgspec type, or a JSON schema for raw payloads
    summary: str
    stream: str  # the stream property holding it ("" for core NATS)
    params: tuple[str, ...] = ("deviceId",)
    event: str | None = None  # the gateway's SSE event name, for facts


DEVICE_INPUT = (
    Channel("register", "DeviceRegistration", dev.DeviceRegistration,
            "A device registered over MQTT `devices/register` (validated by ingest).",
            "device_in_stream"),
    Channel("heartbeat", "Heartbeat", dev.Heartbeat, "A device's heartbeat.",
            "device_in_stream"),
    Channel("status", "StatusReport", dev.StatusReport,
            "A device's online/offline status (its MQTT will says offline).",
            "device_in_stream"),
    Channel("alert", "DeviceAlert", dev.DeviceAlert, "An alert a device raised or resolved.",
            "device_in_stream"),
    Channel("answer", "CommandAnswer", dev.CommandAnswer, "A device's answer to a command.",
            "device_in_stream"),
    Channel("telemetry_in", "TelemetryBundle", dev.TelemetryBundle,
            "Telemetry of several devices per message (arrays, see the schema).",
            "device_in_stream", params=()),
)
DEVICE_OUTPUT = (
    Channel("command_out", "DeviceCommand", dev.DeviceCommand,
            "A command for a device; ingest publishes it on MQTT `{prefix}/{deviceId}/cmd`.",
            "device_out_stream"),
)
OTHER = (
    Channel("dead_letter", "DeadLetter", {"description": "The original message body."},
            "A message that could never be handled; headers Acuvim-Reason, Acuvim-Subject.",
            "dead_stream", params=()),
    Channel("rpc", "RpcRequest", {"type": "object", "description": "The operation's request; "
            "the reply is JSON, or Nats-Service-Error(-Code) headers on failure."},
            "Request-reply to a service (queue group per service; internal API).", "",
            params=("service", "operation")),
)
# Members that are not one subject: wildcard filters and stream names.
FILTERS = {
    "device_in_all": "device_in_stream", "device_in_kind": "device_in_stream",
    "device_out_all": "device_out_stream", "events_all": "events_stream",
    "rpc_all": "",
}
STREAM_NAMES = ("device_in_stream", "device_out_stream", "events_stream", "dead_stream",
                "stream_prefix")
PARAMETERS = {
    "deviceId": "A device id: one subject token, [A-Za-z0-9_-]{1,32}.",
    "rolloutId": "A firmware rollout id.",
    "ruleId": "A notification rule id.",
    "service": "A service: ingest, telemetry, health, commands, firmware, notify.",
    "operation": "An operation of that service, e.g. devices.list.",
}


def fact_channels() -> tuple[Channel, ...]:
    return tuple(Channel(f.method, _pascal(f.event), f.payload, f.summary, "events_stream",
                         params=(f.key,), event=f.event if f.live else None) for f in FACTS)


def all_channels() -> tuple[Channel, ...]:
    return DEVICE_INPUT + DEVICE_OUTPUT + fact_channels() + OTHER


def subjects_members() -> list[str]:
    """Every public method and property of Subjects (what the document must cover)."""
    return sorted(name for name in dir(Subjects) if not name.startswith("_") and name != "root")


def generate(root: str = "acuvim") -> dict[str, Any]:
    subjects = Subjects(root)
    channels = all_channels()
    _check_coverage(channels)
    types = [c.payload for c in channels if isinstance(c.payload, type)]
    type_schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    schema_of = dict(zip(types, type_schemas, strict=True))  # shared types: one schema
    doc: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": _info(root),
        "defaultContentType": "application/json",
        "servers": {"nats": {"host": "localhost:4222", "protocol": "nats",
                             "description": "The console's NATS server (JetStream enabled)."}},
        "channels": {}, "operations": {},
        "components": {"messages": {}, "schemas": components},
        "x-acuvim-subjects": {},
    }
    for channel in channels:
        payload = schema_of[channel.payload] if isinstance(channel.payload, type) \
            else channel.payload
        _add_channel(doc, subjects, channel, payload)
    _add_other_members(doc, subjects)
    return doc


def _info(root: str) -> dict[str, Any]:
    return {
        "title": "Acuvim console bus", "version": f"{SCHEMA_VERSION}.0.0",
        "description": (
            f"Subjects and payloads of the Acuvim console on NATS (root `{root}`). Facts are "
            f"JSON with `schema_version` and `occurred_at` (epoch s), kept in the JetStream "
            f"stream `{Subjects(root).events_stream}` for {EVENTS_MAX_AGE_S // 3600} h: "
            "subscribe with a durable consumer to miss nothing, or with core NATS for live "
            "facts only. The gateway's server-sent events (/api/events) carry the same facts "
            "under the names in `x-sse-event`, plus `reset` (resume impossible: reload) and "
            "`token_expired` (the stream ends)."),
    }


def _add_channel(doc: dict[str, Any], subjects: Subjects, channel: Channel,
                 payload: Any) -> None:
    channel_id = _camel(channel.member)
    address = _address(subjects, channel)
    message: dict[str, Any] = {"name": channel.message, "title": channel.message,
                               "summary": channel.summary, "payload": payload}
    if channel.event:
        message["x-sse-event"] = channel.event
    if channel.message in doc["components"]["messages"]:
        raise RuntimeError(f"two channels share the message name {channel.message}")
    doc["components"]["messages"][channel.message] = message
    entry: dict[str, Any] = {
        "address": address, "title": channel_id, "summary": channel.summary,
        "messages": {channel.message: {"$ref": f"#/components/messages/{channel.message}"}},
    }
    if channel.params:
        entry["parameters"] = {p: {"description": PARAMETERS[p]} for p in channel.params}
    stream = getattr(subjects, channel.stream) if channel.stream else None
    if stream:
        entry["x-jetstream-stream"] = stream
    doc["channels"][channel_id] = entry
    doc["operations"][f"publish{channel_id[0].upper()}{channel_id[1:]}"] = {
        "action": "receive" if channel.member == "rpc" else "send",
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/{channel.message}"}],
    }
    doc["x-acuvim-subjects"][channel.member] = {"kind": "channel", "address": address,
                                              "channel": channel_id}


def _add_other_members(doc: dict[str, Any], subjects: Subjects) -> None:
    index = doc["x-acuvim-subjects"]
    for member, stream in FILTERS.items():
        value = getattr(subjects, member)
        if callable(value):
            value = value("{kind}")
        index[member] = {"kind": "filter", "subjects": value if isinstance(value, str)
                         else list(value), "stream": getattr(subjects, stream) if stream else None}
    for member in STREAM_NAMES:
        kind = "stream_prefix" if member == "stream_prefix" else "stream"
        index[member] = {"kind": kind, "name": getattr(subjects, member)}


def _address(subjects: Subjects, channel: Channel) -> str:
    value = getattr(subjects, channel.member)
    if callable(value):
        value = value(*(f"{{{p}}}" for p in channel.params))
    return str(value)


def _check_coverage(channels: tuple[Channel, ...]) -> None:
    covered = {c.member for c in channels} | set(FILTERS) | set(STREAM_NAMES)
    missing = sorted(set(subjects_members()) - covered)
    if missing:
        raise RuntimeError(f"Subjects members missing from the AsyncAPI tables: {missing}")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def _pascal(snake: str) -> str:
    return "".join(part.title() for part in snake.split("_"))


def render(root: str = "acuvim") -> str:
    return json.dumps(generate(root), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(sys.argv[1] if len(sys.argv) > 1 else "acuvim"))
