"""Device timestamps as the device contract defines them.

`ts` is epoch seconds (int or float) or an RFC 3339 string. Missing, zero, before 2020-01-01 or
more than 5 minutes ahead of the console: the console uses its receive time and marks the record
`clock_unsynced`, never rejecting the message for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

EARLIEST_SYNCED_TS = 1577836800.0  # 2020-01-01T00:00:00Z
MAX_CLOCK_AHEAD_S = 300.0


def parse_device_ts(raw: Any) -> float | None:
    """Epoch seconds from what a device sent, or None when it is not a time at all."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        return parsed.timestamp()
    return None


def normalize_ts(raw: Any, received_at: float) -> tuple[float, bool]:
    """(timestamp to store, clock_unsynced) for a device-sent `ts`."""
    ts = parse_device_ts(raw)
    if ts is None or ts != ts or ts < EARLIEST_SYNCED_TS or ts > received_at + MAX_CLOCK_AHEAD_S:
        return received_at, True
    return ts, False
