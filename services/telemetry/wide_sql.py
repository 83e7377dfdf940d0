"""Read-side SQL generated per number of columns: the CSV lines of an export and the one-pass
hourly statistics. Field names never enter the text: they stay parameters that the statement
refers to by position."""

from __future__ import annotations

import functools

# Hourly statistics of the fields named by parameters in one pass over the readings: one
# aggregate per field and hour (no row per value to sort, unlike jsonb_each). `extra` marks an
# hour whose readings hold keys outside the list; such hours are computed the generic way.
_HOURLY_WIDE = """
SELECT {group}, count(*) AS readings, bool_or(extra) AS extra, {aggs}
FROM (
    SELECT {group}, extra, {numbers} FROM (
        SELECT {device} date_bin('1 hour', timestamp, TIMESTAMPTZ '2000-01-01T00:00:00Z')
               AS hour, data - ${keys}::text[] <> '{{}}'::jsonb AS extra, {values}
        FROM telemetry_records WHERE {where}
        OFFSET 0
    ) AS v OFFSET 0
) AS n GROUP BY {group}
"""


def _hourly_wide(fields: int, *, every_device: bool) -> str:
    # Each name is also its own parameter ($5..): a text[] element costs a walk through the
    # array for every reading.
    numbered = range(1, fields + 1)
    return _HOURLY_WIDE.format(
        group="device_id, hour" if every_device else "hour",
        device="device_id," if every_device else "",
        keys=3 if every_device else 4,
        where=("device_id = ANY($4::text[]) AND timestamp >= $1 AND timestamp < $2"
               if every_device
               else "device_id = $1 AND timestamp >= $2 AND timestamp < $3"),
        values=", ".join(f"data -> ${4 + i}::text AS j{i}" for i in numbered),
        numbers=", ".join(f"CASE WHEN jsonb_typeof(j{i}) = 'number' THEN j{i}::float8 END"
                          f" AS c{i}" for i in numbered),
        aggs=", ".join(f"count(c{i}) AS n{i}, min(c{i}) AS min{i}, max(c{i}) AS max{i},"
                       f" sum(c{i}) AS sum{i}" for i in numbered))


@functools.lru_cache(maxsize=64)
def hourly_wide_sql(fields: int) -> str:
    """Hourly statistics of one device ($1, [$2, $3)) for `fields` fields ($4 all, $5.. each);
    per field i: n_i, min_i, max_i, sum_i."""
    return _hourly_wide(fields, every_device=False)


@functools.lru_cache(maxsize=64)
def all_hourly_wide_sql(fields: int) -> str:
    """The same per device and hour for the devices $4 in [$1, $2) ($3 all fields, $5..
    each)."""
    return _hourly_wide(fields, every_device=True)


# One CSV cell of the text `{v}`: NULL empty, a spreadsheet formula neutralised with a leading
# quote (a plain number such as -12.5 is left alone), quoted when it holds , " CR or LF. The
# subquery (evaluated once) runs only for the rare text that starts with or holds such a
# character.
_RISKY_TEXT = r"""'^[-=+@\t\r]|[",\r\n]'"""
# A plain number after its sign (queries._PLAIN_NUMBER): a cell starting with - or + that is one
# is left alone, by the cell rule and by the line check below alike.
_UNSIGNED_NUMBER = r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"
_CSV_CELL = r"""CASE WHEN {v} ~ {risky} THEN
    (SELECT CASE WHEN c ~ '[",\r\n]' THEN '"' || replace(c, '"', '""') || '"' ELSE c END
     FROM (SELECT CASE WHEN {v} ~ '^[-=+@\t\r]'
                            AND {v} !~ '^[+-]?""" + _UNSIGNED_NUMBER + r"""$'
                       THEN '''' || {v} ELSE {v} END AS c OFFSET 0) AS n)
    ELSE coalesce({v}, '') END"""
# A line is first written the fast way: every cell as it is, joined with commas (one `->>` per
# column). It is kept when a check of the whole line shows that no cell needed care: no quote,
# CR or LF, as many commas as between the columns (so no value holds one: strings, objects and
# arrays with commas show there), and no cell that starts like a formula (a plain number such
# as -12.5 passes). Nearly every line passes; the others are written again cell by cell.
_LINE_NEEDS_CARE = (r"""'(^|,)([=@\t\r]|[-+](?!""" + _UNSIGNED_NUMBER
                    + r"""(,|$)))|["\r\n]'""")
# The time of a reading: whole seconds without a fraction (nearly all), else microseconds.
_TIME_CELL = r"""to_char(p.timestamp AT TIME ZONE 'UTC', CASE WHEN date_trunc('second',
    p.timestamp) = p.timestamp THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
    ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END)"""
_EXPORT_CSV = r"""
WITH page AS (
    SELECT timestamp, source, connection, clock_unsynced, data FROM telemetry_records
    WHERE device_id = $1 AND timestamp > $2 AND timestamp < $3
    ORDER BY timestamp ASC LIMIT $5
), lines AS MATERIALIZED (
    SELECT p.timestamp, CASE
        WHEN f.line ~ {needs_care}
             OR octet_length(f.line) - octet_length(replace(f.line, ',', '')) <> {commas}
        THEN concat_ws(',', {time}, {source}, {connection}, p.clock_unsynced::text, (
            SELECT string_agg({slow_cell}, ',' ORDER BY u.o)
            FROM unnest($4::text[]) WITH ORDINALITY AS u(k, o),
                 LATERAL (SELECT p.data ->> u.k AS v OFFSET 0) AS x))
        ELSE f.line END || E'\r\n' AS line
    FROM page p, LATERAL (
        SELECT concat_ws(',', {time}, p.source, p.connection, p.clock_unsynced::text,
                         {fast_cells}) AS line OFFSET 0) AS f
), sized AS (
    SELECT timestamp, line, row_number() OVER w AS n, sum(octet_length(line)) OVER w AS upto
    FROM lines WINDOW w AS (ORDER BY timestamp ROWS UNBOUNDED PRECEDING)
)
SELECT coalesce(string_agg(line, '' ORDER BY timestamp), '') AS csv, count(*) AS rows,
       max(timestamp) AS last_ts, (SELECT count(*) FROM page) AS fetched
FROM sized WHERE upto <= $6 OR n = 1
"""


def _cell(value: str) -> str:
    return _CSV_CELL.format(v=value, risky=_RISKY_TEXT)


# The first parameter holding one field name in export_csv_sql ($7).
EXPORT_FIELD_PARAMS = 7
CONCAT_GROUP = 90
# hourly_wide_sql selects 4 aggregates per field (PostgreSQL: at most 1,664 columns).
MAX_WIDE_FIELDS = 400


@functools.lru_cache(maxsize=128)
def export_csv_sql(fields: int) -> str:
    """The export statement for `fields` columns. The names are parameters: all of them as
    $4 (text[], the slow path) and each one again as $7, $8, ... (the fast path: a text[]
    element costs a walk through the array for every reading)."""
    cells = [f"coalesce(p.data ->> ${EXPORT_FIELD_PARAMS + i}::text, '')"
             for i in range(fields)]
    # A function takes at most 100 arguments: wide readings are joined in groups.
    fast = " || ',' || ".join(f"concat_ws(',', {', '.join(cells[i:i + CONCAT_GROUP])})"
                              for i in range(0, fields, CONCAT_GROUP))
    return _EXPORT_CSV.format(
        time=_TIME_CELL, source=_cell("p.source"), connection=_cell("p.connection"),
        needs_care=_LINE_NEEDS_CARE, commas=3 + fields, slow_cell=_cell("x.v"),
        fast_cells=fast if fields else "NULL")
