"""docker-compose.yml, .env.example and the image's recipe, checked without a Docker engine.

`docker compose config` (or the older `docker-compose config`) validates and renders the file
with no engine; the rest reads the files themselves: what the services need, what is published,
what has a health check, and that no secret has a default that would work in production.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from deploy.runtime_requirements import normalize, parse_lock, runtime_pins

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
CONSOLE_SERVICES = ("ingest", "telemetry", "health", "commands", "firmware", "notify",
                    "gateway")
INFRASTRUCTURE = ("postgres", "nats", "mqtt")
PUBLISHED = {"gateway": {"8000:8000"}, "mqtt": {"1883:1883", "8883:8883"}}
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "ACUVIM_MQTT_CONSOLE_PASSWORD", "ACUVIM_JWT_SECRET")
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|_KEY$|TOKEN$)")


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def settings_variables() -> set[str]:
    """Every variable libs/common/settings.py reads."""
    source = (ROOT / "libs" / "common" / "settings.py").read_text()
    return set(re.findall(r'"(ACUVIM_[A-Z0-9_]+)"', source))


def env_example() -> dict[str, str]:
    """Variables of .env.example, commented-out ones included (those compose sets itself)."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def active_env_example() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line))


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def run_compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip("no Docker Compose client here (neither `docker compose` nor "
                    "`docker-compose`): the file is only checked structurally")
    return subprocess.run([*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
                           "--env-file", str(env_file), "config"],
                          capture_output=True, text=True, timeout=60)


# -- docker compose config --------------------------------------------------------------------
def secrets_set() -> dict[str, str]:
    return {**active_env_example(), "POSTGRES_PASSWORD": "pg-test-password",
            "ACUVIM_MQTT_CONSOLE_PASSWORD": "mqtt-test-password",
            "ACUVIM_JWT_SECRET": "j" * 64}


def write_env(path: Path, env: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path


def test_compose_config_is_valid_with_the_secrets_set(tmp_path: Path) -> None:
    done = run_compose_config(write_env(tmp_path / ".env", secrets_set()))
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert set(rendered["services"]) == {*CONSOLE_SERVICES, *INFRASTRUCTURE}
    gateway_env = rendered["services"]["gateway"]["environment"]
    assert gateway_env["ACUVIM_DATABASE_URL"] == (
        "postgresql://acuvim:pg-test-password@postgres:5432/acuvim")
    assert gateway_env["ACUVIM_MQTT_URL"] == "mqtt://acuvim-console:mqtt-test-password@mqtt:1883"


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_compose_refuses_to_run_without_each_required_secret(tmp_path: Path,
                                                            secret: str) -> None:
    done = run_compose_config(write_env(tmp_path / ".env", {**secrets_set(), secret: ""}))
    assert done.returncode != 0
    assert secret in done.stderr, done.stderr


def test_compose_refuses_to_run_with_the_example_env_as_it_is() -> None:
    done = run_compose_config(ENV_EXAMPLE)
    assert done.returncode != 0
    assert any(name in done.stderr for name in REQUIRED_SECRETS), done.stderr


# -- the compose file -------------------------------------------------------------------------
def test_every_service_has_a_health_check() -> None:
    for name, service in services().items():
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert not check.get("disable"), name


def test_console_services_start_by_their_command_and_wait_for_healthy_dependencies() -> None:
    for name in CONSOLE_SERVICES:
        service = services()[name]
        assert service["command"] == ["python", "-m", f"services.{name}"], name
        assert service["healthcheck"]["test"] == [
            "CMD", "python", "-m", "deploy.healthcheck", name], name
        depends = service["depends_on"]
        assert {"postgres", "nats"} <= set(depends), name
        assert all(d["condition"] == "service_healthy" for d in depends.values()), name
    assert "mqtt" in services()["ingest"]["depends_on"]
    assert set(CONSOLE_SERVICES) - {"gateway"} <= set(services()["gateway"]["depends_on"])


def test_only_the_gateway_and_the_broker_publish_ports() -> None:
    published = {name: set(s.get("ports", [])) for name, s in services().items()
                 if s.get("ports")}
    assert published == PUBLISHED


def test_state_lives_in_named_volumes() -> None:
    volumes = set(compose()["volumes"])
    mounts = {name: [str(v).split(":")[0] for v in s.get("volumes", [])]
              for name, s in services().items()}
    assert "postgres-data" in mounts["postgres"]
    assert "mqtt-data" in mounts["mqtt"]
    assert "nats-data" in mounts["nats"]
    assert "firmware-data" in mounts["firmware"]
    assert {"postgres-data", "mqtt-data", "nats-data", "firmware-data"} <= volumes


def test_every_console_service_gets_every_setting() -> None:
    for name in CONSOLE_SERVICES:
        missing = settings_variables() - set(services()[name]["environment"])
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_no_secret_in_the_compose_file_has_a_working_default() -> None:
    text = COMPOSE_FILE.read_text()
    for name, default in re.findall(r"\$\{([A-Z0-9_]+):-([^}]*)\}", text):
        if SECRET_NAME.search(name) and not name.endswith("_TTL_S"):
            assert default == "", f"{name} defaults to {default!r}"
    for name in REQUIRED_SECRETS:
        assert re.search(r"\$\{" + name + r":\?", text), f"{name} is not required"


# -- .env.example -----------------------------------------------------------------------------
def test_env_example_names_every_variable_the_services_read() -> None:
    missing = settings_variables() - set(env_example())
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_env_example_covers_every_variable_the_compose_file_interpolates() -> None:
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    assert not used - set(env_example()), sorted(used - set(env_example()))


def test_env_example_leaves_every_secret_empty() -> None:
    for name, value in active_env_example().items():
        if SECRET_NAME.search(name) and not name.endswith("_TTL_S"):
            assert value == "", f"{name} has a value in .env.example"


def test_the_acl_names_the_topic_prefix_of_the_example() -> None:
    prefix = active_env_example()["ACUVIM_TOPIC_PREFIX"]
    acl = (ROOT / "deploy" / "mosquitto" / "acl").read_text()
    assert f"topic write {prefix}/+/cmd" in acl
    assert f"pattern read {prefix}/%u/cmd" in acl


# -- the image --------------------------------------------------------------------------------
def test_the_dockerfile_builds_a_locked_non_root_image_with_a_health_check() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage"
    assert "--require-hashes" in text
    assert re.search(r"^USER acuvim", text, re.M)
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), f"COPY {source}: no such file"


def test_the_image_gets_the_runtime_part_of_the_lock_only() -> None:
    pins = runtime_pins(parse_lock((ROOT / "requirements.lock").read_text()))
    names = {pin.name for pin in pins}
    assert {"litestar", "nats-py", "asyncpg", "msgspec", "uvicorn", "aiomqtt"} <= names
    assert not {"pytest", "mypy", "ruff", "esptool"} & names
    assert all(any("--hash=sha256:" in line for line in pin.lines) for pin in pins)


def test_the_runtime_part_of_the_lock_is_closed_under_dependencies() -> None:
    """What `pip install --no-deps` installs in the image lacks nothing any of it requires."""
    names = {pin.name for pin in runtime_pins(parse_lock((ROOT / "requirements.lock").read_text()))}
    missing = {}
    for name in names:
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            if normalize(requirement.name) not in names:
                missing[name] = requirement.name
    assert not missing, missing


def test_the_services_import_nothing_outside_the_runtime_part_of_the_lock() -> None:
    """A service importing a dev-only package (say esptool) would crash only in the image."""
    names = {pin.name for pin in runtime_pins(parse_lock((ROOT / "requirements.lock").read_text()))}
    providers = metadata.packages_distributions()
    outside = {}
    for source in [*(ROOT / "libs").rglob("*.py"), *(ROOT / "services").rglob("*.py"),
                   ROOT / "deploy" / "healthcheck.py"]:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in ("libs", "services", "deploy"):
                    continue
                dists = {normalize(d) for d in providers.get(top, [])}
                if not dists & names:
                    outside[f"{source.relative_to(ROOT)}: {module}"] = sorted(dists)
    assert not outside, outside
