"""The AsyncAPI document: committed = generated, every Subjects member and every subject the
services use is in it, every fact's payload has a schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

from libs.common.asyncapi import generate, render, subjects_members
from libs.common.facts import FACTS, LIVE_EVENT_NAMES
from libs.common.subjects import Subjects

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "docs" / "asyncapi.json"
SUBJECT_CALL = re.compile(r"subjects\.([a-z_]+)\b")


def test_the_committed_document_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == render(), \
        "docs/asyncapi.json is stale: python -m libs.common.asyncapi > docs/asyncapi.json"


def test_every_subjects_member_is_documented() -> None:
    doc = generate()
    members = subjects_members()
    assert {"device_registered", "telemetry_in", "events_stream", "rpc"} <= set(members)
    assert sorted(doc["x-acuvim-subjects"]) == members


def test_every_subject_the_services_use_is_documented() -> None:
    used = {name for path in (ROOT / "services").rglob("*.py")
            for name in SUBJECT_CALL.findall(path.read_text())}
    assert {"device_registered", "heartbeat_received", "command_updated"} <= used
    documented = set(generate()["x-acuvim-subjects"])
    assert used - documented - {"root"} == set()  # root: the prefix, not a subject


def test_every_fact_is_a_channel_of_the_events_stream_with_its_payload_schema() -> None:
    doc = generate("acuvim")
    by_address = {c["address"]: c for c in doc["channels"].values()}
    for fact in FACTS:
        channel = by_address[fact.subject(Subjects("acuvim"), "{" + fact.key + "}")]
        assert channel["x-jetstream-stream"] == "ACUVIM_EVENTS"
        (ref,) = [m["$ref"] for m in channel["messages"].values()]
        message = doc["components"]["messages"][ref.rsplit("/", 1)[1]]
        schema_name = message["payload"]["$ref"].rsplit("/", 1)[1]
        schema = doc["components"]["schemas"][schema_name]
        assert {"schema_version", "occurred_at"} <= set(schema["properties"])
        assert (message.get("x-sse-event") in LIVE_EVENT_NAMES) == fact.live
    assert by_address["acuvim.telemetry.{deviceId}"]
    json.dumps(doc)  # plain JSON all the way down
