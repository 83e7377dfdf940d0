"""Telemetry through MQTT, ingest, JetStream and the telemetry service, read through the API."""

from __future__ import annotations

import csv
import io
import time
from statistics import mean
from typing import Any

import httpx

from tests.support.console import Console
from tests.support.mqtt import mqtt_client, publish
from tests.support.waiting import eventually

DAY_S = 86400


def topic(console: Console, device_id: str) -> str:
    return f"{console.topic_prefix}/{device_id}/telemetry"


async def publish_many(console: Console, device_id: str, payloads: list[Any]) -> None:
    import json

    async with mqtt_client() as client:
        for payload in payloads:
            await client.publish(topic(console, device_id), json.dumps(payload), qos=1)


async def raw(client: httpx.AsyncClient, device_id: str, **params: Any) -> dict[str, Any]:
    reply = await client.get(f"/api/devices/{device_id}/telemetry/history", params=params)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def wait_total(client: httpx.AsyncClient, device_id: str, total: int,
                     **params: Any) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        body = await raw(client, device_id, limit=1, **params)
        assert body["total"] == total, body["total"]
        return body

    return await eventually(probe, timeout_s=20, what=f"{total} readings stored")


async def test_live_reading_then_latest(console: Console, device_id: str) -> None:
    ts = int(time.time()) - 5
    data = {"v1": 230.4, "i1": 12.3, "ep_imp": 123456.7, "meter_status": "ok"}
    await publish(topic(console, device_id), {"ts": ts, "source": "live", "connection": "wifi",
                                              "data": data})
    async with console.client("viewer") as client:
        async def latest() -> dict[str, Any]:
            reply = await client.get(f"/api/devices/{device_id}/telemetry")
            assert reply.status_code == 200, reply.text
            body: dict[str, Any] = reply.json()
            return body

        body = await eventually(latest, timeout_s=20, what="latest reading")
    assert body["device_id"] == device_id
    assert body["data"] == data
    assert body["source"] == "live" and body["connection"] == "wifi"
    assert body["clock_unsynced"] is False
    assert body["ts"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)))
    assert body["received_at"] >= body["ts"]


async def test_latest_of_unknown_device_is_404(console: Console, device_id: str) -> None:
    async with console.client("viewer") as client:
        reply = await client.get(f"/api/devices/{device_id}/telemetry")
    assert reply.status_code == 404
    assert reply.headers["content-type"].startswith("application/problem+json")


async def test_sd_replay_with_duplicates_is_stored_once(console: Console,
                                                        device_id: str) -> None:
    start = int(time.time()) - 2 * DAY_S
    records = [{"ts": start + 60 * i, "data": {"v1": 230.0 + i % 7, "p": float(i)}}
               for i in range(900)]
    replayed = records + records[:100]  # 100 readings sent twice within the replay
    chunks = [replayed[i:i + 250] for i in range(0, len(replayed), 250)]
    await publish_many(console, device_id, [{"source": "sd", "connection": "gsm",
                                             "records": chunk} for chunk in chunks])
    # Once more, the first chunk again (a QoS 1 redelivery of a whole message).
    await publish(topic(console, device_id), {"source": "sd", "records": chunks[0]})
    window = {"from": start - 60, "to": start + 900 * 60}
    async with console.client("viewer") as client:
        body = await wait_total(client, device_id, 900, **window)
        page = await raw(client, device_id, limit=1000, order="asc", **window)
    assert len(page["items"]) == 900
    assert [i["data"]["p"] for i in page["items"]] == [float(i) for i in range(900)]
    assert {i["source"] for i in page["items"]} == {"sd"}
    assert body["offset"] == 0


async def test_unsynced_clock_is_marked_with_receive_time(console: Console,
                                                          device_id: str) -> None:
    before = time.time()
    await publish(topic(console, device_id), {"ts": 0, "data": {"v1": 1.0}})
    async with console.client("viewer") as client:
        body = await wait_total(client, device_id, 1)
        item = (await raw(client, device_id))["items"][0]
    assert body["total"] == 1
    assert item["clock_unsynced"] is True
    from datetime import datetime

    stored = datetime.fromisoformat(item["ts"].replace("Z", "+00:00")).timestamp()
    assert before - 1 <= stored <= time.time() + 1


async def test_mixed_good_and_bad_records(console: Console, device_id: str) -> None:
    start = int(time.time()) - DAY_S + 3600  # inside the default range (the last day)
    records: list[Any] = [{"ts": start + i * 60, "data": {"v1": float(i)}} for i in range(10)]
    records[3] = {"ts": start + 180, "data": "not an object"}
    records[6] = {"ts": start + 360}
    records.append(42)
    await publish(topic(console, device_id), {"source": "sd", "records": records})
    async with console.client("viewer") as client:
        await wait_total(client, device_id, 8)
        page = await raw(client, device_id, order="asc")
    assert [i["data"]["v1"] for i in page["items"]] == [0, 1, 2, 4, 5, 7, 8, 9]


async def test_bad_ranges_are_400(console: Console, device_id: str) -> None:
    url = f"/api/devices/{device_id}/telemetry/history"
    async with console.client("viewer") as client:
        reversed_range = await client.get(url, params={"from": 2000, "to": 1000})
        unknown = await client.get(url, params={"interval": "7m"})
        too_long = await client.get(url, params={"from": 0, "to": 400 * DAY_S,
                                                 "interval": "1m"})
        bad_time = await client.get(url, params={"from": "yesterday"})
        empty = await client.get(url, params={"from": 1000, "to": 2000})
        export = await client.get(f"/api/devices/{device_id}/telemetry/export")
    for reply in (reversed_range, unknown, too_long, bad_time, export):
        assert reply.status_code == 400, reply.text
        assert reply.json()["detail"]
    assert "reversed" in reversed_range.json()["detail"]
    assert "interval" in unknown.json()["detail"]
    assert empty.status_code == 200
    assert empty.json()["items"] == [] and empty.json()["total"] == 0


async def test_aggregation_matches_values_computed_here(console: Console,
                                                        device_id: str) -> None:
    hour0 = (int(time.time()) // 3600 - 30) * 3600  # an hour boundary, 30 h ago
    records = []
    for minute in range(150):  # 2.5 hours of one-minute readings
        records.append({"ts": hour0 + minute * 60, "data": {
            "v1": 220.0 + (minute * 7) % 13, "ep_imp": 1000.0 + minute * 0.5,
            "status": "ok", "p": None}})
    await publish(topic(console, device_id), {"source": "sd", "records": records})
    window = {"from": hour0, "to": hour0 + 3 * 3600}
    async with console.client("viewer") as client:
        await wait_total(client, device_id, 150, **window)
        reply = await client.get(f"/api/devices/{device_id}/telemetry/history",
                                 params={**window, "interval": "1h", "order": "asc"})
    assert reply.status_code == 200, reply.text
    items = reply.json()["items"]
    assert len(items) == 3
    for index, bucket in enumerate(items):
        minutes = range(index * 60, min(index * 60 + 60, 150))
        v1 = [220.0 + (m * 7) % 13 for m in minutes]
        energy = [1000.0 + m * 0.5 for m in minutes]
        assert bucket["ts"].startswith(time.strftime("%Y-%m-%dT%H:00:00",
                                                     time.gmtime(hour0 + index * 3600)))
        assert bucket["count"] == len(v1)
        assert set(bucket["fields"]) == {"v1", "ep_imp"}  # strings and nulls are not numeric
        stats = bucket["fields"]["v1"]
        assert (stats["count"], stats["min"], stats["max"]) == (len(v1), min(v1), max(v1))
        assert abs(stats["avg"] - mean(v1)) < 1e-9
        assert "increase" not in stats
        assert bucket["fields"]["ep_imp"]["increase"] == max(energy) - min(energy)


async def test_csv_export(console: Console, device_id: str) -> None:
    start = int(time.time()) - 3 * DAY_S
    records = [{"ts": start + i * 60, "data": {"v1": 230.5, "note": "=HYPERLINK(\"x\")",
                                               "label": "a,b \"c\"", "neg": -3.5}}
               for i in range(3)]
    records.append({"ts": start + 180, "data": {"v1": 1.0, "note": "-12.5", "label": "+cmd"}})
    await publish(topic(console, device_id), {"source": "sd", "connection": "gsm",
                                              "records": records})
    window = {"from": start, "to": start + 3600}
    async with console.client("viewer") as client:
        await wait_total(client, device_id, 4, **window)
        reply = await client.get(f"/api/devices/{device_id}/telemetry/export", params=window)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/csv")
    assert "attachment" in reply.headers["content-disposition"]
    assert "\r\n" in reply.text
    rows = list(csv.reader(io.StringIO(reply.text)))
    assert rows[0] == ["timestamp", "source", "connection", "clock_unsynced",
                       "label", "neg", "note", "v1"]
    assert len(rows) == 5
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["note"] == "'=HYPERLINK(\"x\")"
    assert first["label"] == 'a,b "c"'
    assert first["neg"] == "-3.5" and first["v1"] == "230.5"
    assert first["source"] == "sd" and first["connection"] == "gsm"
    last = dict(zip(rows[0], rows[4], strict=True))
    assert last["note"] == "-12.5"  # a plain number is left alone
    assert last["label"] == "'+cmd" and last["neg"] == ""


async def test_csv_export_pages_and_field_selection(console: Console, device_id: str) -> None:
    start = int(time.time()) - 4 * DAY_S
    records = [{"ts": start + i * 60, "data": {"v1": float(i), "v2": 2.0}} for i in range(4500)]
    await publish_many(console, device_id, [{"source": "sd", "records": records[i:i + 1500]}
                                            for i in range(0, 4500, 1500)])
    window = {"from": start, "to": start + 4500 * 60}
    async with console.client("viewer") as client:
        await wait_total(client, device_id, 4500, **window)
        reply = await client.get(f"/api/devices/{device_id}/telemetry/export",
                                 params={**window, "fields": "v1"})
    rows = list(csv.reader(io.StringIO(reply.text)))
    assert rows[0][-1] == "v1" and len(rows[0]) == 5
    assert [float(r[-1]) for r in rows[1:]] == [float(i) for i in range(4500)]


async def test_csv_export_of_wide_readings_finishes_each_chunk_in_order(
        console: Console, device_id: str) -> None:
    # ~1.1 KB lines: a chunk of the plan (500 readings) does not fit one answer (~400 KiB), so
    # the gateway finishes it with more pages while the next chunks are already asked for.
    start = int(time.time()) - 5 * DAY_S
    wide = {f"r{n:03d}": 10000.125 + n for n in range(110)}
    records = [{"ts": start + i * 60, "data": {**wide, "i": i}} for i in range(1300)]
    await publish_many(console, device_id, [{"source": "sd", "records": records[i:i + 60]}
                                            for i in range(0, 1300, 60)])
    window = {"from": start, "to": start + 1300 * 60}
    async with console.client("viewer") as client:
        await wait_total(client, device_id, 1300, **window)
        reply = await client.get(f"/api/devices/{device_id}/telemetry/export", params=window)
    assert reply.status_code == 200, reply.text
    assert len(reply.content) > 1300 * 1000  # lines of ~1.1 KB: 500 of them exceed 400 KiB
    rows = list(csv.reader(io.StringIO(reply.text)))
    assert len(rows[0]) == 4 + 111
    column = rows[0].index("i")
    assert [int(r[column]) for r in rows[1:]] == list(range(1300))
    assert {r[rows[0].index("r109")] for r in rows[1:]} == {"10109.125"}


async def test_stats_count_messages_and_readings(console: Console, device_id: str) -> None:
    import nats

    from libs.common.rpc import RpcClient
    from libs.common.subjects import Subjects
    from tests.support.console import NATS_URL

    await publish(topic(console, device_id), {"ts": int(time.time()) - 1, "data": {"v1": 1}})
    nc = await nats.connect(NATS_URL)
    try:
        rpc = RpcClient(nc, Subjects(console.bus_root))

        async def counted() -> dict[str, Any]:
            stats: dict[str, Any] = await rpc.call("telemetry", "stats")
            assert stats["messages_per_minute"] > 0 and stats["readings_per_minute"] > 0
            return stats

        await eventually(counted, timeout_s=20, what="ingest rates")
    finally:
        await nc.close()
