"""A device left to itself: telemetry and heartbeats at its intervals, reconnects, flaky link.

One task per device; it sleeps until the next thing is due (no polling), and is woken early when
the link dies or the configuration changes.
"""

from __future__ import annotations

import math
import time

from simulator.device import SimulatedDevice

OFF_RECHECK_S = 1.0  # while rebooting, look again this often (a boot also wakes the loop)


async def run_device(device: SimulatedDevice, start_delay_s: float = 0.0) -> None:
    """Boot after `start_delay_s`, then live until `device.stop()`."""
    await device.wait(start_delay_s)
    if device.stopping:
        return
    await device.boot()
    now = time.monotonic()
    # The first reading and heartbeat right after boot: a demo fleet shows up within seconds.
    device.next_telemetry_at = device.next_heartbeat_at = now
    if device.profile.flaky:
        device.next_link_event_at = now + device.rng.uniform(*device.fleet.flaky_up_s)
    while not device.stopping:
        due = min(device.next_telemetry_at, device.next_heartbeat_at, device.next_link_event_at)
        await device.wait(due - time.monotonic())
        if device.stopping:
            return
        if device.state == "off":  # rebooting: the command task boots it and wakes us
            await device.wait(OFF_RECHECK_S)
            continue
        now = time.monotonic()
        if now >= device.next_link_event_at:
            await _link_event(device, now)
        if now >= device.next_telemetry_at:
            device.next_telemetry_at = now + device.telemetry_interval_s
            await device.publish_telemetry()
        if now >= device.next_heartbeat_at:
            device.next_heartbeat_at = now + device.heartbeat_interval_s
            await device.publish_heartbeat()


async def _link_event(device: SimulatedDevice, now: float) -> None:
    """The flaky link drops or comes back; a lost link is retried."""
    fleet = device.fleet
    device.next_link_event_at = math.inf
    if device.state == "online" and device.profile.flaky:
        await device.go_offline()
        device.next_link_event_at = now + device.rng.uniform(*fleet.flaky_down_s)
    elif device.state == "offline" and await device.come_back() and device.profile.flaky:
        device.next_link_event_at = now + device.rng.uniform(*fleet.flaky_up_s)
