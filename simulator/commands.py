"""Answers to `{prefix}/{id}/cmd`, as the firmware gives them: `ack`, then `success` or `error`.

A payload that is not a command (bad JSON, no request id) is logged and dropped, as the firmware
drops it; an unknown command is answered with `error`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urljoin

from simulator.devconfig import ConfigRejected, merged
from simulator.device import SimulatedDevice
from simulator.ota import Download, DownloadFailed, normalize_sha256

log = logging.getLogger("simulator.commands")

ROLLBACK_SUFFIX = "-rollback"  # an image with this version suffix never boots (tests, demos)
PROGRESS_STEP_PERCENT = 10


class CommandFailed(Exception):
    """The command cannot be done; its text is the `error` of the answer."""


Handler = Callable[[SimulatedDevice, dict[str, Any]], Awaitable[Any]]


async def handle_command(device: SimulatedDevice, payload: bytes) -> None:
    try:
        message = json.loads(payload)
    except ValueError:
        log.warning("command is not JSON, dropped", extra={"device_id": device.device_id})
        return
    if not isinstance(message, dict) or not isinstance(message.get("request_id"), str):
        log.warning("command without request_id, dropped", extra={"device_id": device.device_id})
        return
    request_id, command = message["request_id"], message.get("command")
    params = message.get("params") or {}
    if command == "ota_update":
        await ota_update(device, request_id, params)
        return
    handler = HANDLERS.get(command) if isinstance(command, str) else None
    if handler is None:
        await device.answer(request_id, "error", error=f"unknown command: {command}")
        return
    await device.answer(request_id, "ack")
    try:
        data = await handler(device, params if isinstance(params, dict) else {})
    except CommandFailed as exc:
        await device.answer(request_id, "error", error=str(exc))
        return
    await device.answer(request_id, "success", data=data)
    if command == "reboot":
        await device.reboot("software")


async def ping(device: SimulatedDevice, params: dict[str, Any]) -> Any:
    return {"pong": True, "uptime_s": device.uptime_s, "ts": device.device_ts(),
            "firmware_version": device.firmware_version}


async def reboot(device: SimulatedDevice, params: dict[str, Any]) -> Any:
    return {"rebooting": True, "boot_count": device.boot_count}


async def wifi_scan(device: SimulatedDevice, params: dict[str, Any]) -> Any:
    rng = device.rng
    names = [device.profile.wifi_ssid, "plant-guest", "DIRECT-printer", "scada-net",
             "iot-sensors", "Vodafone-5G"]
    networks = [{"ssid": ssid, "rssi": rng.randint(-92, -40), "channel": rng.choice((1, 6, 11)),
                 "auth": rng.choice(("wpa2", "wpa2", "wpa3", "open"))}
                for ssid in names[:rng.randint(2, len(names))]]
    networks.sort(key=lambda n: -int(n["rssi"]))  # type: ignore[call-overload]
    return {"networks": networks}


async def get_config(device: SimulatedDevice, params: dict[str, Any]) -> Any:
    return device.config


async def set_config(device: SimulatedDevice, params: dict[str, Any]) -> Any:
    try:
        device.config, ignored = merged(device.config, params)
    except ConfigRejected as exc:
        raise CommandFailed(str(exc)) from exc
    device.config_changed()
    return {**device.config, "ignored": ignored} if ignored else device.config


async def sync_time(device: SimulatedDevice, params: dict[str, Any]) -> Any:
    device.clock_synced = True
    return {"ts": device.device_ts(), "synced": True}


async def clear_sd(device: SimulatedDevice, params: dict[str, Any]) -> Any:
    cleared = len(device.sd)
    device.sd.clear()
    return {"cleared": cleared}


HANDLERS: dict[str, Handler] = {
    "ping": ping, "reboot": reboot, "wifi_scan": wifi_scan, "get_config": get_config,
    "set_config": set_config, "sync_time": sync_time, "clear_sd": clear_sd,
}


async def ota_update(device: SimulatedDevice, request_id: str, params: Any) -> None:
    """Download, verify, answer success, reboot into the new image (or roll back)."""
    url = params.get("url") if isinstance(params, dict) else None
    version = params.get("version") if isinstance(params, dict) else None
    if not isinstance(url, str) or not isinstance(version, str) or not url or not version:
        await device.answer(request_id, "error", error="ota_update needs url and version")
        return
    if device.ota_busy:
        await device.answer(request_id, "error", error="an update is already in progress")
        return
    device.ota_busy = True
    try:
        await device.answer(request_id, "ack")
        download = _download_for(device, request_id, url, params)
        await device.answer(request_id, "progress", progress=0)
        started_s = time.monotonic()
        sink = await download.run()
    except DownloadFailed as exc:
        await device.answer(request_id, "error", error=str(exc))
        return
    finally:
        device.ota_busy = False
    await device.answer(request_id, "success", data={
        "version": version, "sha256": sink.sha256, "size": sink.received,
        "resumes": download.breaks, "duration_s": round(time.monotonic() - started_s, 3)})
    if device.profile.fail_ota or version.endswith(ROLLBACK_SUFFIX):
        # The new image crashes on boot; the bootloader falls back to the old one.
        await device.reboot("panic")
    else:
        await device.reboot("ota", firmware_version=version)


def _download_for(device: SimulatedDevice, request_id: str, url: str,
                  params: dict[str, Any]) -> Download:
    size = params.get("size")
    size = size if isinstance(size, int) and size > 0 and not isinstance(size, bool) else None
    checksum = params.get("checksum")
    last_step = [0]

    async def progress(received: int, total: int) -> None:
        percent = received * 100 // total if total else 0
        step = percent - percent % PROGRESS_STEP_PERCENT
        if step > last_step[0]:
            last_step[0] = step
            await device.answer(request_id, "progress", progress=step)

    fleet = device.fleet
    return Download(
        http=device.http_client(), url=urljoin(fleet.http_url.rstrip("/") + "/", url),
        device_id=device.device_id, expected_size=size,
        expected_sha256=normalize_sha256(checksum) if isinstance(checksum, str) else None,
        chunk_bytes=fleet.download_chunk_bytes,
        bytes_per_s=fleet.gsm_download_bytes_per_s if device.profile.radio == "gsm" else None,
        break_at=_break_points(device, size), on_progress=progress)


def _break_points(device: SimulatedDevice, size: int | None) -> list[int]:
    """Where the flaky device's link breaks during the download (1 to 3 times)."""
    if not device.profile.flaky:
        return []
    span = size or 256 * 1024
    return sorted(device.rng.randint(1, max(1, span - 1)) for _ in range(device.rng.randint(1, 3)))
