"""Rollout planning: which stage each device belongs to, and when a stage has failed too much."""

from __future__ import annotations

import math

from libs.common.errors import InvalidInput

MAX_DEVICES_PER_ROLLOUT = 10_000


def plan_stages(stages: list[float] | None, unit: str, device_count: int) -> list[float]:
    """Validated cumulative targets, ending with everything (e.g. [5, 25] -> [5, 25, 100])."""
    targets = list(stages or [])
    if any(not math.isfinite(t) or t <= 0 for t in targets):
        raise InvalidInput("stages must be positive numbers")
    if targets != sorted(targets):
        raise InvalidInput("stages are cumulative: each must be at least the one before")
    if unit == "percent":
        if targets and targets[-1] > 100:
            raise InvalidInput("a percent stage may not exceed 100")
        if not targets or targets[-1] < 100:
            targets.append(100.0)
    elif not targets or targets[-1] < device_count:
        targets.append(float(device_count))
    return targets


def stage_sizes(targets: list[float], unit: str, device_count: int) -> list[int]:
    """How many devices each stage adds (a stage may add none when the fleet is small)."""
    reached = 0
    sizes = []
    for target in targets:
        cumulative = (math.ceil(device_count * target / 100) if unit == "percent"
                      else int(target))
        cumulative = min(device_count, max(cumulative, reached, 1))
        sizes.append(cumulative - reached)
        reached = cumulative
    return sizes


def assign_stages(device_ids: list[str], sizes: list[int]) -> list[int]:
    """The stage of each device, in the order given."""
    out: list[int] = []
    for stage, size in enumerate(sizes):
        out += [stage] * size
    assert len(out) == len(device_ids)
    return out


def allowed_failures(threshold: float, stage_size: int) -> float:
    """Below 1 the threshold is a fraction of the stage, from 1 a count of devices."""
    return threshold if threshold >= 1 else threshold * stage_size


def check_deploy_limits(device_count: int, max_concurrent: int, failure_threshold: float,
                        device_timeout_s: float) -> None:
    if device_count == 0:
        raise InvalidInput("no devices to deploy to")
    if device_count > MAX_DEVICES_PER_ROLLOUT:
        raise InvalidInput(f"a rollout may cover at most {MAX_DEVICES_PER_ROLLOUT} devices")
    if max_concurrent < 1:
        raise InvalidInput("max_concurrent must be at least 1")
    if not failure_threshold >= 0 or not math.isfinite(failure_threshold):
        raise InvalidInput("failure_threshold must be a fraction (below 1) or a count")
    if not device_timeout_s > 0:
        raise InvalidInput("device_timeout_s must be positive")
