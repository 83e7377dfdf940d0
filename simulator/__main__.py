"""`python -m simulator --devices N ...`: a simulated fleet until Ctrl-C (or `--duration-s`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from libs.common.logs import setup_logging
from libs.common.settings import SettingsError, load_settings
from simulator.fleet import Fleet
from simulator.profiles import FleetConfig

log = logging.getLogger("simulator")
STATS_EVERY_S = 30.0


def parse_args(argv: Sequence[str] | None = None) -> FleetConfig:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    d = FleetConfig()
    p = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    p.add_argument("--devices", type=int, default=d.devices)
    p.add_argument("--mqtt-url", default=settings.mqtt_url)
    p.add_argument("--topic-prefix", default=settings.topic_prefix)
    p.add_argument("--http-url", default=settings.public_base_url)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--telemetry-interval-s", type=float, default=d.telemetry_interval_s)
    p.add_argument("--rate", type=float, default=None,
                   help="telemetry messages per second for the whole fleet "
                        "(sets the telemetry interval to devices / rate)")
    p.add_argument("--heartbeat-interval-s", type=float, default=d.heartbeat_interval_s)
    p.add_argument("--duration-s", type=float, default=None)
    p.add_argument("--connection-mode", choices=("per-device", "shared"),
                   default=d.connection_mode)
    p.add_argument("--pool-size", type=int, default=d.pool_size)
    p.add_argument("--gsm-devices", type=int, default=None)
    p.add_argument("--flaky-devices", type=int, default=d.flaky_devices)
    p.add_argument("--modbus-loss-devices", type=int, default=d.modbus_loss_devices)
    p.add_argument("--fail-ota-devices", type=int, default=d.fail_ota_devices)
    p.add_argument("--firmware-version", default=d.firmware_version)
    p.add_argument("--sd-replay-batch", type=int, default=d.sd_replay_batch)
    p.add_argument("--unsynced-boot-chance", type=float, default=d.unsynced_boot_chance)
    p.add_argument("--start-spread-s", type=float, default=d.start_spread_s)
    p.add_argument("--gsm-download-bytes-per-s", type=float, default=None)
    p.add_argument("--log-format", choices=("auto", "json", "pretty"),
                   default=settings.log_format)
    a = p.parse_args(argv)
    if a.devices < 1 or a.telemetry_interval_s <= 0 or a.heartbeat_interval_s <= 0:
        p.error("--devices and the intervals must be positive")
    telemetry_interval_s = a.devices / a.rate if a.rate else a.telemetry_interval_s
    setup_logging("simulator", a.log_format)
    return FleetConfig(
        devices=a.devices, mqtt_url=a.mqtt_url, topic_prefix=a.topic_prefix,
        http_url=a.http_url, seed=a.seed, telemetry_interval_s=telemetry_interval_s,
        heartbeat_interval_s=a.heartbeat_interval_s, duration_s=a.duration_s,
        connection_mode=a.connection_mode, pool_size=a.pool_size, gsm_devices=a.gsm_devices,
        flaky_devices=a.flaky_devices, modbus_loss_devices=a.modbus_loss_devices,
        fail_ota_devices=a.fail_ota_devices, firmware_version=a.firmware_version,
        sd_replay_batch=a.sd_replay_batch, unsynced_boot_chance=a.unsynced_boot_chance,
        start_spread_s=a.start_spread_s, gsm_download_bytes_per_s=a.gsm_download_bytes_per_s)


async def report(fleet: Fleet) -> None:
    while True:
        await asyncio.sleep(STATS_EVERY_S)
        log.info("fleet totals", extra=fleet.totals())


async def main(config: FleetConfig) -> None:
    fleet = Fleet(config)
    runner = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if runner is not None:
        # Explicit handlers: a shell's background job starts with SIGINT ignored (`make demo`).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, runner.cancel)
    reporter = asyncio.create_task(report(fleet))
    try:
        await fleet.run()
    finally:
        reporter.cancel()


if __name__ == "__main__":
    fleet_config = parse_args()
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main(fleet_config))
