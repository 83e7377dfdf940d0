from __future__ import annotations

import pytest

from libs.common.devicetime import normalize_ts

NOW = 1_764_842_400.0  # 2025-12-04


@pytest.mark.parametrize(("raw", "expected"), [
    (1764842000, (1764842000.0, False)),
    (1764842000.5, (1764842000.5, False)),
    ("2025-12-04T09:53:20Z", (1764842000.0, False)),
    ("2025-12-04T10:53:20+01:00", (1764842000.0, False)),
    ("1764842000", (1764842000.0, False)),
    (None, (NOW, True)),
    (0, (NOW, True)),
    (1262304000, (NOW, True)),            # 2010: before 2020
    (NOW + 301, (NOW, True)),             # more than 5 minutes ahead
    (NOW + 299, (NOW + 299, False)),
    ("yesterday", (NOW, True)),
    ("2025-12-04T09:53:20", (NOW, True)),  # no zone: not a time we can place
    (True, (NOW, True)),
    ([1], (NOW, True)),
    (float("nan"), (NOW, True)),
])
def test_device_time_is_kept_or_replaced_and_marked(raw: object, expected: tuple[float, bool]
                                                    ) -> None:
    assert normalize_ts(raw, NOW) == expected
