"""A live event, how it is framed on the wire (text/event-stream), and what a client asked for."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from libs.common.facts import FACTS, FactKind
from libs.common.subjects import Subjects


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """A fact as clients receive it; `frame` is encoded once and shared by every client."""

    seq: int  # the EVENTS stream sequence: the SSE id
    name: str
    device_id: str | None
    frame: bytes


def sse_frame(name: str, data: bytes, event_id: int | None = None) -> bytes:
    """One event: `id`, `event` and `data` lines (JSON is one line; split anyway to be safe)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
    return f"{head}event: {name}\n".encode() + lines + b"\n"


KEEP_ALIVE_FRAME = b": keep-alive\n\n"


def retry_frame(retry_ms: int) -> bytes:
    """Tell EventSource how long to wait before it reconnects on its own."""
    return f"retry: {retry_ms}\n\n".encode()


class Namer:
    """Subject -> fact kind, for the live facts of one bus root."""

    def __init__(self, subjects: Subjects) -> None:
        self._by_prefix: dict[str, FactKind] = {
            f.prefix(subjects): f for f in FACTS if f.live}

    def kind_of(self, subject: str) -> FactKind | None:
        return self._by_prefix.get(subject.rsplit(".", 1)[0])

    def event_of(self, subject: str, seq: int, data: bytes) -> LiveEvent | None:
        kind = self.kind_of(subject)
        if kind is None:
            return None
        device_id: str | None = subject.rsplit(".", 1)[1]
        if kind.key != "deviceId":  # a rollout: the device, if any, is in the payload
            device_id = _payload_device_id(data)
        return LiveEvent(seq=seq, name=kind.event, device_id=device_id,
                         frame=sse_frame(kind.event, data, seq))


class _DeviceOnly(msgspec.Struct):
    device_id: str | None = None


def _payload_device_id(data: bytes) -> str | None:
    try:
        return msgspec.json.decode(data, type=_DeviceOnly).device_id
    except msgspec.DecodeError:
        return None


@dataclass(frozen=True)
class EventFilter:
    """What one client wants: some devices and/or some event names (empty: all)."""

    device_ids: frozenset[str] = field(default_factory=frozenset)
    names: frozenset[str] = field(default_factory=frozenset)

    def accepts(self, event: LiveEvent) -> bool:
        if self.names and event.name not in self.names:
            return False
        return not self.device_ids or event.device_id in self.device_ids
