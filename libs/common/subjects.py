"""The subject catalogue: every NATS subject and JetStream stream of the console, defined once.

`root` is `acuvim` in production (ACUVIM_BUS_ROOT; tests use their own root so runs never mix).
A device id is always exactly one subject token (ingest refuses any other).

Streams
- DEVICE_IN   `{root}.in.>`    what devices sent, as ingest validated it (work queue per consumer).
- DEVICE_OUT  `{root}.out.>`   what must reach devices over MQTT (commands), consumed by ingest.
- EVENTS      facts the console learned, for other systems and the live events of the gateway,
              kept for at least a day so that SSE clients can resume.
Request-reply (core NATS, queue groups per service): `{root}.rpc.{service}.{operation}`.
"""

from __future__ import annotations

from dataclasses import dataclass

# How long facts stay in the EVENTS stream (SSE resume needs at least an hour).
EVENTS_MAX_AGE_S = 24 * 3600
# Device input waits this long for a service that is down before JetStream drops it (the default
# of ACUVIM_DEVICE_IN_RETENTION_HOURS).
DEVICE_IN_MAX_AGE_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Subjects:
    root: str = "acuvim"

    # -- device input (ingest -> services), JetStream stream DEVICE_IN --------------------------
    def register(self, device_id: str) -> str:
        return f"{self.root}.in.register.{device_id}"

    def heartbeat(self, device_id: str) -> str:
        return f"{self.root}.in.heartbeat.{device_id}"

    def status(self, device_id: str) -> str:
        return f"{self.root}.in.status.{device_id}"

    def alert(self, device_id: str) -> str:
        return f"{self.root}.in.alert.{device_id}"

    def answer(self, device_id: str) -> str:
        return f"{self.root}.in.resp.{device_id}"

    @property
    def telemetry_in(self) -> str:
        """Telemetry bundles: several devices' messages per publish (the hot path)."""
        return f"{self.root}.in.telemetry"

    @property
    def device_in_all(self) -> str:
        return f"{self.root}.in.>"

    def device_in_kind(self, kind: str) -> str:
        """Filter for one kind of device input: register, heartbeat, status, alert, resp."""
        return f"{self.root}.in.{kind}.*"

    # -- device output (services -> ingest -> MQTT), JetStream stream DEVICE_OUT ----------------
    def command_out(self, device_id: str) -> str:
        return f"{self.root}.out.cmd.{device_id}"

    @property
    def device_out_all(self) -> str:
        return f"{self.root}.out.>"

    # -- facts (for other systems and live events), JetStream stream EVENTS ---------------------
    def device_registered(self, device_id: str) -> str:
        return f"{self.root}.device.registered.{device_id}"

    def device_updated(self, device_id: str) -> str:
        return f"{self.root}.device.updated.{device_id}"

    def device_deleted(self, device_id: str) -> str:
        return f"{self.root}.device.deleted.{device_id}"

    def device_status_changed(self, device_id: str) -> str:
        return f"{self.root}.device.status.{device_id}"

    def heartbeat_received(self, device_id: str) -> str:
        return f"{self.root}.heartbeat.{device_id}"

    def telemetry_received(self, device_id: str) -> str:
        return f"{self.root}.telemetry.{device_id}"

    def alert_created(self, device_id: str) -> str:
        return f"{self.root}.alert.created.{device_id}"

    def alert_updated(self, device_id: str) -> str:
        return f"{self.root}.alert.updated.{device_id}"

    def alert_resolved(self, device_id: str) -> str:
        return f"{self.root}.alert.resolved.{device_id}"

    def command_updated(self, device_id: str) -> str:
        return f"{self.root}.command.updated.{device_id}"

    def config_reported(self, device_id: str) -> str:
        return f"{self.root}.config.reported.{device_id}"

    def firmware_rollout_updated(self, rollout_id: str) -> str:
        return f"{self.root}.firmware.rollout.{rollout_id}"

    def firmware_download(self, device_id: str) -> str:
        return f"{self.root}.firmware.download.{device_id}"

    def notification_rule_paused(self, rule_id: str) -> str:
        return f"{self.root}.notify.rule.paused.{rule_id}"

    @property
    def events_all(self) -> tuple[str, ...]:
        r = self.root
        return (f"{r}.device.>", f"{r}.heartbeat.>", f"{r}.telemetry.>", f"{r}.alert.>",
                f"{r}.command.>", f"{r}.config.>", f"{r}.firmware.>", f"{r}.notify.>")

    @property
    def dead_letter(self) -> str:
        """Poison messages, with the reason in the `Acuvim-Reason` header."""
        return f"{self.root}.dead"

    # -- request-reply -------------------------------------------------------------------------
    def rpc(self, service: str, operation: str) -> str:
        return f"{self.root}.rpc.{service}.{operation}"

    def rpc_all(self, service: str) -> str:
        return f"{self.root}.rpc.{service}.>"

    # -- streams -------------------------------------------------------------------------------
    @property
    def stream_prefix(self) -> str:
        return self.root.upper().replace("-", "_")

    @property
    def device_in_stream(self) -> str:
        return f"{self.stream_prefix}_DEVICE_IN"

    @property
    def device_out_stream(self) -> str:
        return f"{self.stream_prefix}_DEVICE_OUT"

    @property
    def events_stream(self) -> str:
        return f"{self.stream_prefix}_EVENTS"

    @property
    def dead_stream(self) -> str:
        return f"{self.stream_prefix}_DEAD"


SERVICES = ("ingest", "telemetry", "health", "commands", "firmware", "notify")
