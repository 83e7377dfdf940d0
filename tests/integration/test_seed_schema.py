"""Every table and column of the seed's schema (phase 8, §8.3) exists, in the schema of the
service that owns it (one schema per service; no foreign keys across services)."""

from __future__ import annotations

import asyncpg

from tests.support.console import Console

SEED_COLUMNS: dict[tuple[str, str], set[str]] = {
    ("health", "devices"): {
        "id", "device_id", "name", "description", "mac_address", "imei", "iccid", "hardware",
        "firmware_version", "capabilities", "status", "last_heartbeat", "last_telemetry",
        "connection_type", "signal_strength", "ip_address", "boot_count", "group_id", "tags",
        "created_at", "updated_at"},
    ("health", "device_groups"): {"id", "name", "description", "created_at"},
    ("health", "alerts"): {
        "id", "device_id", "alert_type", "severity", "message", "value", "threshold",
        "metadata", "acknowledged", "acknowledged_by", "acknowledged_at", "created_at",
        "resolved_at"},
    ("telemetry", "telemetry_records"): {
        "device_id", "timestamp", "data", "source", "connection", "received_at"},
    ("commands", "commands"): {
        "id", "device_id", "request_id", "command", "params", "status", "response",
        "created_by", "created_at", "sent_at", "completed_at"},
    ("firmware", "firmware_versions"): {
        "id", "version", "filename", "file_path", "file_size", "checksum", "release_notes",
        "hardware", "mandatory", "active", "uploaded_by", "created_at"},
    ("gateway", "users"): {"id", "email", "password_hash", "role", "created_at"},
}


async def test_every_seed_column_exists_in_its_owners_schema(console: Console) -> None:
    conn = await asyncpg.connect(console.database_url)
    try:
        rows = await conn.fetch(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns")
        foreign = await conn.fetch("""
            SELECT tc.table_schema, ccu.table_schema AS referenced_schema
            FROM information_schema.table_constraints tc
            JOIN information_schema.constraint_column_usage ccu
              ON tc.constraint_name = ccu.constraint_name
             AND tc.constraint_schema = ccu.constraint_schema
            WHERE tc.constraint_type = 'FOREIGN KEY'""")
    finally:
        await conn.close()
    columns: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        columns.setdefault((row["table_schema"], row["table_name"]), set()).add(
            row["column_name"])
    for table, expected in SEED_COLUMNS.items():
        assert table in columns, f"missing table {table}"
        assert expected <= columns[table], f"{table} lacks {sorted(expected - columns[table])}"
    assert all(r["table_schema"] == r["referenced_schema"] for r in foreign)
