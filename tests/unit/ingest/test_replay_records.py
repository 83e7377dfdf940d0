"""SD replays: well-formed replays take the typed one-pass decode, a bad record drops itself."""

from __future__ import annotations

import json

from services.ingest import service

NOW = 1_764_842_400.0


def _replay(records: list[object]) -> bytes:
    return json.dumps({"source": "sd", "connection": "gsm", "records": records}).encode()


def test_a_clean_replay_keeps_every_record_in_order() -> None:
    records = [{"ts": NOW - 600 + k, "data": {"v1": k, "s": "ok", "n": None}} for k in range(50)]
    msg = service.telemetry("ACV-1", _replay(records), NOW)
    assert msg.source == "sd" and msg.dropped == 0
    assert [r.ts for r in msg.readings] == [NOW - 600 + k for k in range(50)]
    assert msg.readings[7].data == {"v1": 7, "s": "ok", "n": None}
    assert not any(r.clock_unsynced for r in msg.readings)


def test_bad_records_drop_only_themselves() -> None:
    records: list[object] = [{"ts": NOW - 60, "data": {"v1": 1.5}},
                             {"ts": NOW - 50, "data": {"v1": [1]}},  # nested value
                             "not a record",
                             {"ts": NOW - 40},  # no data
                             {"ts": NOW - 30, "data": {"v1": 2.5}},
                             {"ts": 0, "data": {"v1": 3.5}}]  # unsynced clock, kept
    msg = service.telemetry("ACV-1", _replay(records), NOW)
    assert msg.dropped == 3
    assert [r.data["v1"] for r in msg.readings] == [1.5, 2.5, 3.5]
    assert msg.readings[2].clock_unsynced and msg.readings[2].ts == NOW


def test_a_record_with_too_many_registers_is_dropped() -> None:
    wide = {f"r{i}": i for i in range(service.MAX_REGISTERS_PER_READING + 1)}
    records = [{"ts": NOW - 60, "data": wide}, {"ts": NOW - 30, "data": {"v1": 1}}]
    msg = service.telemetry("ACV-1", _replay(records), NOW)
    assert msg.dropped == 1 and len(msg.readings) == 1
