"""Start and stop a service process: settings, logging, signals, dependency waits, shutdown.

`run_service(name, main)` loads settings (a bad value: one clear line, exit code 2), sets up the
logger and metrics, and runs `main(settings, stopping)` until SIGTERM/SIGINT sets `stopping`;
`main` then finishes in-flight work and returns. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from libs.common.logs import setup_logging
from libs.common.metrics import serve_metrics
from libs.common.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Waits between attempts to reach a dependency that is not up yet (seconds).
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 5.0)


async def retry_until_ready(what: str, attempt: Callable[[], Awaitable[T]],
                            stopping: asyncio.Event) -> T:
    """Call `attempt` until it succeeds: a dependency down at start is waited for, not fatal."""
    tries = 0
    while True:
        try:
            return await attempt()
        except SettingsError:  # a value the dependency refuses: waiting will not change it
            raise
        except Exception as exc:
            if stopping.is_set():
                raise
            delay = RETRY_DELAYS_S[min(tries, len(RETRY_DELAYS_S) - 1)]
            if tries == 0 or tries % 10 == 0:
                log.warning("%s not ready (%s: %s); retrying", what, type(exc).__name__, exc)
            tries += 1
            try:
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            except TimeoutError:
                continue
            raise


def run_service(name: str, main: Callable[[Settings, asyncio.Event], Awaitable[None]]) -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        setup_logging(name, "auto")
        log.error("bad setting: %s", exc)
        sys.exit(2)
    setup_logging(name, settings.log_format)
    serve_metrics(settings.metrics_port, name)

    async def supervise() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stopping.is_set():
                log.warning("second signal: exiting now")
                sys.exit(1)
            log.info("stopping")
            stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await main(settings, stopping)

    try:
        import uvloop

        uvloop.run(supervise())
    except SettingsError as exc:
        log.error("bad setting: %s", exc)
        sys.exit(2)
    log.info("stopped")
