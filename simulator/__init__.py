"""A fleet of simulated ESP32 gateways that behave as `../shared/spec/device-contract.md` says.

For demos (`make demo`), tests and benchmarks, so nobody writes a fake device again.

Command line::

    python -m simulator --devices 50 --mqtt-url mqtt://127.0.0.1:1883 --topic-prefix acuvim \\
        --http-url http://127.0.0.1:8000 --seed 1 --telemetry-interval-s 60 \\
        --heartbeat-interval-s 60 [--duration-s S] [--connection-mode per-device|shared] \\
        [--rate MSG_PER_S] [--fail-ota-devices K] [--gsm-devices N] [--flaky-devices N]

Defaults come from the ACUVIM_* variables (MQTT URL, topic prefix, public base URL). The same
seed gives the same devices (ids `ACV-` + 12 hex digits, radios, meters, roles) and the same
readings.

Library::

    from simulator import Fleet, FleetConfig, SimulatedDevice, make_profile

    async with Fleet(FleetConfig(devices=100, topic_prefix=prefix)) as fleet:
        ...                                   # every device on autopilot
        device = fleet.devices[0]

    device = SimulatedDevice(make_profile(seed=7, index=0), FleetConfig(topic_prefix=prefix))
    await device.boot()                       # connect (last will), status online, register
    await device.publish_telemetry()          # one live reading (or onto the SD card offline)
    await device.publish_heartbeat()
    await device.go_offline()                 # link dies: the broker publishes the will
    await device.publish_telemetry()          # kept on the SD card
    await device.come_back()                  # online again, the card replayed in batches
    await device.replay_sd()                  # (or replay by hand; answers records sent)
    await device.reboot()                     # will, boot_count + 1, registers again
    await device.shutdown()                   # `offline` said, clean disconnect

The device answers every command on `{prefix}/{id}/cmd` (ping, reboot, wifi_scan, get_config,
set_config, sync_time, clear_sd, ota_update; unknown: error). `ota_update` downloads in 64 KiB
`Range` requests with `X-Device-Id`, resumes after breaks (the flaky device breaks on purpose),
checks the SHA-256, answers success and reboots into the new version; a device with
`profile.fail_ota` (or a version ending in `-rollback`) comes back with the old version.
Connection modes: `per-device` (one MQTT connection each, with last will) or `shared` (a pool of
`pool_size` connections for benchmarks; devices say `offline` themselves). `device.sent` and
`fleet.totals()` count what was sent.

Modules: profiles (config, seeded profiles), readings (meter), alerts, devconfig, transport
(MQTT links), device, commands, ota (Range download), autopilot (timers), fleet.
"""

from simulator.device import SimulatedDevice
from simulator.fleet import Fleet
from simulator.profiles import DeviceProfile, FleetConfig, build_profiles, make_profile

__all__ = ["DeviceProfile", "Fleet", "FleetConfig", "SimulatedDevice", "build_profiles",
           "make_profile"]
