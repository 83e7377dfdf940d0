"""The facts of the EVENTS stream, one row each: the `Subjects` method that names its subject,
its live event name (server-sent events of the gateway), its payload type and what it means.

The gateway's live events and the AsyncAPI document (`libs/common/asyncapi.py`) both read this
table, so a fact cannot be published without a name and a documented schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.common.messages import events as ev
from libs.common.subjects import Subjects


@dataclass(frozen=True)
class FactKind:
    method: str  # the Subjects method: `subjects.<method>(key)`
    event: str  # the server-sent event name
    payload: type
    summary: str
    key: str = "deviceId"  # what the subject's last token is
    live: bool = True  # sent to SSE clients (False: on the bus only, too chatty for a browser)

    def subject(self, subjects: Subjects, key: str) -> str:
        fn = getattr(subjects, self.method)
        subject: str = fn(key)
        return subject

    def prefix(self, subjects: Subjects) -> str:
        """The subject without its key token: `acuvim.device.status`."""
        return self.subject(subjects, "x").rsplit(".", 1)[0]


FACTS: tuple[FactKind, ...] = (
    FactKind("device_registered", "device_registered", ev.DeviceRegistered,
             "A device registered (first_seen: it is new) or was created by its first "
             "heartbeat; `device` is its record."),
    FactKind("device_updated", "device_updated", ev.DeviceUpdated,
             "An operator changed a device's name, description, group or tags."),
    FactKind("device_deleted", "device_deleted", ev.DeviceDeleted,
             "An operator removed a device."),
    FactKind("device_status_changed", "device_status_changed", ev.DeviceStatusChanged,
             "A device went online, offline or degraded (reason: heartbeat, status, sweep)."),
    FactKind("heartbeat_received", "heartbeat_received", ev.HeartbeatReceived,
             "A device's heartbeat, as ingest validated it."),
    FactKind("telemetry_received", "telemetry_received", ev.TelemetryReceived,
             "New readings of a device were stored: the newest one and how many. Live events "
             "coalesce these to at most one per device per second."),
    FactKind("alert_created", "alert_created", ev.AlertChanged, "An alert was opened."),
    FactKind("alert_updated", "alert_updated", ev.AlertChanged,
             "An open alert repeated or was acknowledged."),
    FactKind("alert_resolved", "alert_resolved", ev.AlertChanged, "An alert was resolved."),
    FactKind("command_updated", "command_updated", ev.CommandUpdated,
             "A command changed state (queued, sent, progress, completed, failed, timeout...)."),
    FactKind("config_reported", "config_reported", ev.ConfigReported,
             "A device reported its configuration (secrets masked)."),
    FactKind("firmware_rollout_updated", "firmware_rollout_updated", ev.FirmwareRolloutUpdated,
             "A firmware rollout or one of its devices changed state.", key="rolloutId"),
    FactKind("firmware_download", "firmware_download_recorded", ev.FirmwareDownloadRecorded,
             "A device downloaded a range of a firmware image.", live=False),
    FactKind("notification_rule_paused", "notification_rule_paused", ev.NotificationRulePaused,
             "A notification rule whose webhook or mail server kept failing was paused.",
             key="ruleId"),
)

# Names of the live events that are not facts: the stream's own control events.
RESET_EVENT = "reset"
TOKEN_EXPIRED_EVENT = "token_expired"  # noqa: S105 - an event name

LIVE_EVENT_NAMES: frozenset[str] = frozenset(f.event for f in FACTS if f.live)


def fact_of_method(method: str) -> FactKind | None:
    return next((f for f in FACTS if f.method == method), None)
