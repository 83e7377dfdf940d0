"""Who is in the fleet: the fleet's settings and one seeded profile per device.

`build_profiles(config)` gives the same devices for the same seed: ids, MACs, radios, meters and
roles (a few on GSM with a weak signal, one flaky link, one meter that loses Modbus, devices
whose OTA rolls back). Tests take one profile and `dataclasses.replace` what they need.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Literal

ConnectionMode = Literal["per-device", "shared"]
Radio = Literal["wifi", "gsm"]

WIFI_HARDWARE = "ESP32-DevKitC v4"
GSM_HARDWARE = "TTGO T-Call v1.4"
METER_MODELS = ("Acuvim II", "Acuvim IIR", "Acuvim IIW", "Acuvim L")
DEFAULT_FIRMWARE = "1.2.0"


@dataclass(frozen=True)
class FleetConfig:
    """Everything the CLI sets; the library defaults fit a demo on one machine."""

    devices: int = 50
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "acuvim"
    http_url: str = "http://127.0.0.1:8000"
    seed: int = 1
    telemetry_interval_s: float = 60.0
    heartbeat_interval_s: float = 60.0
    duration_s: float | None = None
    connection_mode: ConnectionMode = "per-device"
    pool_size: int = 4                  # MQTT connections of the shared mode
    gsm_devices: int | None = None      # None: a few (3 + 1 per 50 devices)
    flaky_devices: int = 1
    modbus_loss_devices: int = 1
    fail_ota_devices: int = 0
    firmware_version: str = DEFAULT_FIRMWARE
    sd_replay_batch: int = 50           # records per SD replay message
    sd_capacity: int = 20_000           # records the card holds; the oldest go first
    unsynced_boot_chance: float = 0.1   # boots whose clock has no NTP time yet
    ntp_sync_after_s: float = 120.0     # an unsynced clock gets NTP time after this
    boot_time_s: float = 2.0            # a reboot keeps the device away this long
    start_spread_s: float = 5.0         # boots are spread over this window (no thundering herd)
    flaky_up_s: tuple[float, float] = (60.0, 240.0)
    flaky_down_s: tuple[float, float] = (15.0, 60.0)
    download_chunk_bytes: int = 64 * 1024   # the Range size a SIM800 modem asks for
    gsm_download_bytes_per_s: float | None = None  # None: as fast as the server sends
    duplicate_batch_chance: float = 0.2     # a replay batch sent twice (QoS 1 redelivery)


@dataclass(frozen=True)
class DeviceProfile:
    """What makes one device itself; everything else is state the device keeps while it runs."""

    index: int
    seed: int
    device_id: str
    mac_address: str
    radio: Radio = "wifi"
    signal_dbm: int = -60
    imei: str | None = None
    iccid: str | None = None
    hardware: str = WIFI_HARDWARE
    firmware_version: str = DEFAULT_FIRMWARE
    meter_model: str = "Acuvim II"
    meter_serial: str = "AC21-00001"
    modbus_address: int = 1
    has_pv: bool = False
    flaky: bool = False
    modbus_loss: bool = False
    fail_ota: bool = False
    wifi_ssid: str = "plant-wifi"
    capabilities: tuple[str, ...] = field(default=("wifi", "sd", "modbus"))


def device_id_for(seed: int, index: int) -> str:
    """`ACV-` and 12 upper-case hex digits, the same for the same seed and index."""
    digest = hashlib.sha256(f"acuvim-simulator:{seed}:{index}".encode()).hexdigest()
    return "ACV-" + digest[:12].upper()


def make_profile(seed: int, index: int, *, radio: Radio = "wifi", flaky: bool = False,
                 modbus_loss: bool = False, fail_ota: bool = False,
                 firmware_version: str = DEFAULT_FIRMWARE) -> DeviceProfile:
    """One device's profile; its details come from its own generator (seed and index)."""
    rng = random.Random(f"profile:{seed}:{index}")
    device_id = device_id_for(seed, index)
    hex_mac = device_id[4:]
    gsm = radio == "gsm"
    return DeviceProfile(
        index=index, seed=seed, device_id=device_id,
        mac_address=":".join(hex_mac[n:n + 2] for n in range(0, 12, 2)),
        radio=radio,
        signal_dbm=rng.randint(-105, -95) if gsm else rng.randint(-78, -45),
        imei=f"86{rng.randrange(10**12, 10**13)}" if gsm else None,
        iccid=f"8944{rng.randrange(10**14, 10**15)}" if gsm else None,
        hardware=GSM_HARDWARE if gsm else WIFI_HARDWARE,
        firmware_version=firmware_version,
        meter_model=rng.choice(METER_MODELS),
        meter_serial=f"AC{rng.randint(18, 25)}-{rng.randint(0, 99999):05d}",
        modbus_address=rng.randint(1, 3),
        has_pv=rng.random() < 0.2,
        flaky=flaky, modbus_loss=modbus_loss, fail_ota=fail_ota,
        wifi_ssid=rng.choice(("plant-wifi", "substation-2", "warehouse-ap", "office")),
        capabilities=("wifi", "gsm", "sd", "modbus") if gsm else ("wifi", "sd", "modbus"),
    )


def build_profiles(config: FleetConfig) -> list[DeviceProfile]:
    """The fleet: roles drawn without overlap from a seeded shuffle of the indexes."""
    count = config.devices
    order = list(range(count))
    random.Random(f"fleet:{config.seed}").shuffle(order)
    gsm_count = config.gsm_devices if config.gsm_devices is not None else 3 + count // 50
    gsm = set(order[:min(gsm_count, count)])
    # The flaky link is a GSM one when there is any: that is where links drop.
    flaky = set(order[:min(config.flaky_devices, count)])
    rest = [i for i in order if i not in flaky]
    rest.reverse()  # the wifi devices (end of the shuffle) first
    modbus = set(rest[:config.modbus_loss_devices])
    rest = [i for i in rest if i not in modbus]
    fail = set(rest[:config.fail_ota_devices])
    return [
        make_profile(config.seed, i, radio="gsm" if i in gsm else "wifi", flaky=i in flaky,
                     modbus_loss=i in modbus, fail_ota=i in fail,
                     firmware_version=config.firmware_version)
        for i in range(count)
    ]
