"""The supervisor's small decisions: bad settings, one log stream, URLs handed to services."""

from __future__ import annotations

import io
import os
from pathlib import Path

import orjson

from libs.common.settings import load_settings
from services.supervisor.app import Supervisor, Urls, _safe
from services.supervisor.embedded import local_url
from services.supervisor.fleet import Fleet
from services.supervisor.processes import LogSink
from tests.support.supervisor import clean_env, launched


def test_a_bad_setting_stops_the_supervisor_with_one_line_naming_it(tmp_path: Path) -> None:
    env = clean_env(ACUVIM_HTTP_PORT="eighty", ACUVIM_LOG_FORMAT="json")
    with launched(env, tmp_path / "supervisor.log") as supervisor:
        assert supervisor.wait() == 2
        output = supervisor.log()
    assert "ACUVIM_HTTP_PORT" in output
    assert "Traceback" not in output


def test_log_stream_keeps_json_lines_and_wraps_the_others() -> None:
    out = io.BytesIO()
    sink = LogSink(pretty=False, out=out)
    sink.write_line("gateway", b'{"level":"info","service":"gateway","msg":"hi"}\n')
    sink.write_line("postgres", b"2026-01-01 UTC [1] FATAL:  the disk is full\n")
    sink.write_line("nats", b"\n")
    first, second = out.getvalue().splitlines()
    assert orjson.loads(first)["msg"] == "hi"
    wrapped = orjson.loads(second)
    assert wrapped["service"] == "postgres"
    assert wrapped["level"] == "error"
    assert wrapped["msg"].endswith("FATAL:  the disk is full")


def test_pretty_stream_names_the_program() -> None:
    out = io.BytesIO()
    LogSink(pretty=True, out=out).write_line("mosquitto", b"Warning: something\n")
    assert b" WARN mosquitto Warning: something" in out.getvalue()


def test_embedded_urls_keep_credentials_and_database() -> None:
    assert local_url("postgresql://u:p@db.example:5432/acuvim?sslmode=disable", 6000) == \
        "postgresql://u:p@127.0.0.1:6000/acuvim?sslmode=disable"
    assert local_url("mqtts://dev:pw@broker:8883", 1883, scheme="mqtt") == \
        "mqtt://dev:pw@127.0.0.1:1883"
    assert _safe("mqtt://dev:secret@127.0.0.1:1883") == "mqtt://dev:***@127.0.0.1:1883"


def test_services_get_the_actual_urls_and_their_own_metrics_ports() -> None:
    settings = load_settings({"ACUVIM_METRICS_PORT": "9100"})
    sup = Supervisor(settings, LogSink(pretty=True, out=io.BytesIO()), pretty=True)
    env = sup.service_env(Urls("postgresql://postgres@127.0.0.1:6000/acuvim",
                               "nats://127.0.0.1:6001", "mqtt://127.0.0.1:6002"))
    assert env["ACUVIM_DATABASE_URL"].endswith(":6000/acuvim")
    assert env["ACUVIM_NATS_URL"] == "nats://127.0.0.1:6001"
    assert env["ACUVIM_MQTT_URL"] == "mqtt://127.0.0.1:6002"
    if os.environ.get("ACUVIM_LOG_FORMAT", "auto") == "auto":
        assert env["ACUVIM_LOG_FORMAT"] == "pretty"
    env["ACUVIM_METRICS_PORT"] = "9100"
    fleet = Fleet(("ingest", "telemetry", "gateway"), env, Path.cwd(), sup.sink)
    ports = [fleet.env_for(name)["ACUVIM_METRICS_PORT"] for name in fleet.names]
    assert ports == ["9100", "9101", "0"]
