"""Device accounts of the broker: `python -m deploy.mqtt_accounts add ACV-AABBCCDDEEFF ...`.

Writes Mosquitto's password file format (`user:$7$iterations$salt$hash`, PBKDF2-SHA512, what
`mosquitto_passwd` writes) so that accounts can be made on any host without Mosquitto installed.
Each new device gets a random password, printed once as `device_id,password` (CSV, to load into
the provisioning of the devices); only its hash is kept. The file (default
deploy/mosquitto/devices.passwd, ignored by git) is mounted into the broker, whose entrypoint
adds the console's own account to it.

    python -m deploy.mqtt_accounts add ACV-AABBCCDDEEFF ACV-112233445566 > new-devices.csv
    python -m deploy.mqtt_accounts add - < device-ids.txt      # one id a line
    python -m deploy.mqtt_accounts remove ACV-AABBCCDDEEFF
    python -m deploy.mqtt_accounts list
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path

DEFAULT_FILE = Path(__file__).resolve().parent / "mosquitto" / "devices.passwd"
# What mosquitto_passwd uses for its `$7$` hashes (Mosquitto 2.0).
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
# The console's account name; never a device's (the ACL gives it every device's topics).
CONSOLE_USER = "acuvim-console"
# Device ids as the device contract accepts them: one topic level, nothing MQTT treats as a
# wildcard, so `%u` in the ACL can never widen to other devices' topics.
DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
PASSWORD_BYTES = 24


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return (f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID.match(device_id) or device_id == CONSOLE_USER:
        raise ValueError(f"{device_id!r} is not a device id (1-32 of [A-Za-z0-9_-])")
    return device_id


def read_accounts(path: Path) -> dict[str, str]:
    """User name -> hash line, in file order."""
    if not path.exists():
        return {}
    accounts: dict[str, str] = {}
    for line in path.read_text().splitlines():
        user, sep, hashed = line.strip().partition(":")
        if sep and user:
            accounts[user] = hashed
    return accounts


def write_accounts(path: Path, accounts: dict[str, str]) -> None:
    """Replace the file atomically, readable by its owner only (it holds password hashes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{user}:{hashed}\n" for user, hashed in accounts.items())
    tmp.replace(path)


def add_devices(path: Path, device_ids: Iterable[str]) -> list[tuple[str, str]]:
    """Create or reset the accounts; answer (device id, new password) for each."""
    accounts = read_accounts(path)
    made = []
    for device_id in device_ids:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        accounts[check_device_id(device_id)] = hash_password(password)
        made.append((device_id, password))
    write_accounts(path, accounts)
    return made


def remove_devices(path: Path, device_ids: Iterable[str]) -> list[str]:
    accounts = read_accounts(path)
    gone = [d for d in device_ids if accounts.pop(d, None) is not None]
    write_accounts(path, accounts)
    return gone


def _ids(args: list[str]) -> list[str]:
    if args == ["-"]:
        return [line.strip() for line in sys.stdin if line.strip()]
    return args


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.mqtt_accounts",
                                     description="Device accounts of the Mosquitto broker.")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="password file")
    parser.add_argument("action", choices=("add", "remove", "list"))
    parser.add_argument("device_ids", nargs="*", help="device ids, or - to read them from stdin")
    args = parser.parse_args(argv)
    try:
        if args.action == "add":
            for device_id, password in add_devices(args.file, _ids(args.device_ids)):
                print(f"{device_id},{password}")
        elif args.action == "remove":
            for device_id in remove_devices(args.file, _ids(args.device_ids)):
                print(f"removed {device_id}", file=sys.stderr)
        else:
            print("\n".join(read_accounts(args.file)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
