"""deploy/mqtt_accounts.py: device accounts of the broker (their hashes are checked by a real
Mosquitto in test_deploy_mosquitto.py)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from deploy.mqtt_accounts import hash_password, read_accounts
from tests.support.console import ROOT


def accounts(path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.mqtt_accounts", "--file", str(path),
                           *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
                          timeout=30)


def test_add_prints_each_password_once_and_keeps_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "devices.passwd"
    done = accounts(path, "add", "ACV-AABBCCDDEEFF", "ACV-112233445566")
    assert done.returncode == 0, done.stderr
    made = dict(line.split(",") for line in done.stdout.splitlines())
    assert set(made) == {"ACV-AABBCCDDEEFF", "ACV-112233445566"}
    stored = path.read_text()
    assert all(password not in stored for password in made.values())
    assert read_accounts(path)["ACV-AABBCCDDEEFF"].startswith("$7$101$")
    assert path.stat().st_mode & 0o077 == 0, "hashes readable by the owner only"


def test_add_again_resets_the_password_and_remove_drops_the_account(tmp_path: Path) -> None:
    path = tmp_path / "devices.passwd"
    first = accounts(path, "add", "ACV-A").stdout
    second = accounts(path, "add", "-", stdin="ACV-A\nACV-B\n\n").stdout
    assert first.split(",")[1] != second.splitlines()[0].split(",")[1]
    assert accounts(path, "list").stdout.split() == ["ACV-A", "ACV-B"]
    assert accounts(path, "remove", "ACV-A", "ACV-NONE").returncode == 0
    assert accounts(path, "list").stdout.split() == ["ACV-B"]


def test_ids_that_could_widen_the_acl_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "devices.passwd"
    for bad in ("ACV-+", "#", "acuvim/ACV-1", "ACV 1", "acuvim-console", "A" * 33, "ACV-é"):
        done = accounts(path, "add", "ACV-GOOD", bad)
        assert done.returncode == 2, bad
        assert "not a device id" in done.stderr
    assert not path.exists(), "nothing written when one id of the batch is bad"


def test_the_hash_is_mosquittos_pbkdf2_format() -> None:
    # Made with `mosquitto_passwd -b file alice secret` (Mosquitto 2.0.11).
    known = ("$7$101$XJnQ7p9o+Vc9zduz$t65esxBE2vV0ObWDAuAgd5Xj8lJ2JU9IhURazyac67v6mbZsQpxOw4gqVz"
             "ufQ70h/YO4kt4gRm84nymRq8drGA==")
    salt = base64.b64decode(known.split("$")[3])
    assert hash_password("secret", salt) == known
