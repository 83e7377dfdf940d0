"""Transport: telemetry bundles from JetStream into the store, facts out, RPC in.

The consumer takes what JetStream has ready (up to FETCH_BUNDLES bundles per fetch, so batches
grow with the load and stay small when it is quiet), stores it in transactions of about
MAX_BATCH_ROWS rows and acknowledges each bundle only after its transaction committed. Up to
COMMITS_IN_FLIGHT transactions run at once: the next batch is built while PostgreSQL works on
the last one, and a replay's batches use more than one backend. A bundle
that cannot be decoded is dead-lettered; a database outage fails the batch, which JetStream
delivers again (to this or another replica); nothing is acknowledged unstored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, cast

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Counter, Histogram

from libs.common import bus
from libs.common.codec import decode, encode
from libs.common.db import TRANSIENT_ERRORS
from libs.common.errors import InvalidInput
from libs.common.messages.events import DeviceDeleted, TelemetryReceived
from libs.common.rpc import Empty
from libs.common.runtime import Runtime
from libs.common.subjects import Subjects
from services.telemetry.rows import Batch, decode_bundle
from services.telemetry.schemas import (
    DeviceQuery,
    ExportPage,
    ExportPageQuery,
    ExportPlan,
    ExportPlanQuery,
    HistoryPage,
    HistoryQuery,
    Latest,
    Stats,
)
from services.telemetry.service import StoreOutcome, TelemetryService

log = logging.getLogger(__name__)

ROWS_STORED = Counter("acuvim_telemetry_rows_stored_total", "Readings stored")
DUPLICATES = Counter("acuvim_telemetry_duplicates_total",
                     "Readings skipped because they were stored already")
RECORDS_DROPPED = Counter("acuvim_telemetry_records_dropped_total",
                          "Readings that could not be stored", ["reason"])
FACTS_FAILED = Counter("acuvim_telemetry_facts_failed_total",
                       "TelemetryReceived facts that could not be published")
BATCH_ROWS = Histogram("acuvim_telemetry_batch_rows", "Rows per stored batch",
                       buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000))
STORE_SECONDS = Histogram("acuvim_telemetry_store_seconds", "Time to store one batch")

# Bundles taken per fetch (each bundle holds up to a few hundred MQTT messages).
FETCH_BUNDLES = 64
# Rows per transaction: large enough for COPY to pay off, small enough to commit promptly.
MAX_BATCH_ROWS = 5000
# Concurrent store transactions of one consumer. They cannot deadlock: each takes its row locks
# in (device_id, ts) order (MOVE_STAGED: records, then latest readings), then the one
# ingest_minutes row.
COMMITS_IN_FLIGHT = 2
# A replica that dies holding a batch: its bundles go to another replica after this long
# (a batch commits in well under a second).
ACK_WAIT_S = 10.0
# Errors that a later delivery may not meet again: the batch is handed back for redelivery.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    *TRANSIENT_ERRORS, asyncpg.DeadlockDetectedError, asyncpg.SerializationError,
    asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError,
)


class TelemetryConsumer:
    def __init__(self, service: TelemetryService, nc: NATS, js: JetStreamContext,
                 subjects: Subjects) -> None:
        self.service = service
        self.nc = nc
        self.js = js
        self.subjects = subjects

    async def handle(self, msgs: Sequence[Msg]) -> None:
        """Store the bundles in batches, COMMITS_IN_FLIGHT at a time; the first failure stops
        the rest (left unacked, so redelivered) once the batches already started have ended."""
        cutoff_ts = self.service.retention_cutoff_ts()
        batch, taken = Batch(), []
        in_flight: set[asyncio.Task[None]] = set()
        try:
            for msg in msgs:
                try:
                    bundle = decode_bundle(msg.data)
                except InvalidInput as exc:
                    await bus.dead_letter(self.js, msg, exc.detail)
                    continue
                batch.add(bundle, cutoff_ts)
                taken.append(msg)
                if len(batch.rows) >= MAX_BATCH_ROWS:
                    await self._start(in_flight, batch, taken)
                    batch, taken = Batch(), []
            if taken:
                await self._start(in_flight, batch, taken)
        finally:
            ended = await asyncio.gather(*in_flight, return_exceptions=True)
        for outcome in ended:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _start(self, in_flight: set[asyncio.Task[None]], batch: Batch,
                     msgs: list[Msg]) -> None:
        while len(in_flight) >= COMMITS_IN_FLIGHT:
            done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            in_flight.difference_update(done)
            for task in done:
                task.result()  # a failed batch: stop here (the caller waits for the others)
        in_flight.add(asyncio.create_task(self._commit(batch, msgs)))
        await asyncio.sleep(0)  # let it send its COPY before the next batch is built

    async def _commit(self, batch: Batch, msgs: list[Msg]) -> None:
        started = time.perf_counter()
        try:
            outcome = await self._store(batch)
        except asyncpg.CheckViolationError:
            # No partition for a row: another replica dropped one this process had cached.
            self.service.partitions.forget()
            raise
        except RETRYABLE_ERRORS:
            raise
        except asyncpg.PostgresError as exc:
            log.error("batch refused by the database (%r); storing bundle by bundle", exc)
            await self._one_by_one(msgs)
            return
        STORE_SECONDS.observe(time.perf_counter() - started)
        for msg in msgs:
            await msg.ack()
        await self._publish_facts(batch, outcome)

    async def _store(self, batch: Batch) -> StoreOutcome:
        outcome = await self.service.store(batch)
        BATCH_ROWS.observe(outcome.rows)
        ROWS_STORED.inc(outcome.rows - outcome.duplicates)
        DUPLICATES.inc(outcome.duplicates)
        for reason, count in outcome.dropped.items():
            RECORDS_DROPPED.labels(reason=reason).inc(count)
        return outcome

    async def _one_by_one(self, msgs: list[Msg]) -> None:
        cutoff_ts = self.service.retention_cutoff_ts()
        for msg in msgs:
            batch = Batch()
            batch.add(decode_bundle(msg.data), cutoff_ts)
            try:
                outcome = await self._store(batch)
            except RETRYABLE_ERRORS:
                raise
            except asyncpg.PostgresError as exc:
                await bus.dead_letter(self.js, msg, f"refused by the database: {exc!r}")
                continue
            await msg.ack()
            await self._publish_facts(batch, outcome)

    async def _publish_facts(self, batch: Batch, outcome: StoreOutcome) -> None:
        """One TelemetryReceived per device with new readings: its newest one and the count.

        Published without waiting for JetStream's confirmation (the EVENTS stream stores them
        all the same): facts are notifications, the readings themselves are stored, and a
        confirmation per fact cost this consumer about a quarter of its CPU under load. While
        NATS is away the client buffers them and sends them on reconnecting."""
        now = time.time()
        failed = 0
        for device_id, count in outcome.stored.items():
            newest = batch.latest.get(device_id)
            if newest is None:
                continue
            # The reading's JSON goes out as it came (msgspec encodes a Raw verbatim): no
            # decode and re-encode per fact.
            fact = TelemetryReceived(
                occurred_at=now, device_id=device_id, ts=newest.ts, source=newest.source,
                connection=newest.connection, readings=count,
                data=cast(dict[str, Any], newest.data))
            try:
                await self.nc.publish(self.subjects.telemetry_received(device_id), encode(fact))
            except Exception as exc:
                failed += 1
                if failed == 1:
                    log.warning("could not publish TelemetryReceived: %r", exc)
        if failed:
            FACTS_FAILED.inc(failed)


def register(rt: Runtime, service: TelemetryService) -> None:
    consumer = TelemetryConsumer(service, rt.nc, rt.js, rt.subjects)
    rt.consume(stream=rt.subjects.device_in_stream, durable="telemetry",
               filter_subjects=[rt.subjects.telemetry_in], handler=consumer.handle,
               batch_size=FETCH_BUNDLES, fetch_timeout_s=1.0, ack_wait_s=ACK_WAIT_S)

    async def on_device_deleted(msg: Msg) -> None:
        fact = decode(msg.data, DeviceDeleted)
        removed = await service.forget_device(fact.device_id)
        log.info("deleted telemetry of a deleted device",
                 extra={"device_id": fact.device_id, "rows": removed})

    rt.consume(stream=rt.subjects.events_stream, durable="telemetry-device-deleted",
               filter_subjects=[rt.subjects.device_deleted("*")],
               handler=bus.each(on_device_deleted), batch_size=10, deliver_new=True)

    @rt.rpc.route("latest", DeviceQuery)
    async def latest(q: DeviceQuery) -> Latest:
        return await service.latest(q.device_id)

    @rt.rpc.route("history", HistoryQuery)
    async def history(q: HistoryQuery) -> HistoryPage:
        return await service.history(q)

    @rt.rpc.route("export.page", ExportPageQuery)
    async def export_page(q: ExportPageQuery) -> ExportPage:
        return await service.export_page(q)

    @rt.rpc.route("export.plan", ExportPlanQuery)
    async def export_plan(q: ExportPlanQuery) -> ExportPlan:
        return await service.export_plan(q)

    @rt.rpc.route("stats", Empty)
    async def stats(_: Empty) -> Stats:
        return await service.stats()
