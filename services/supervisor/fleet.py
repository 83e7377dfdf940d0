"""The six services as separate processes: started together, restarted when one crashes.

A crash is restarted after a growing delay (logged), reset once the service has run a while.
Exit code 2 is a bad setting: restarting cannot help, so the whole console stops with it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from services.supervisor.processes import Child, LogSink

log = logging.getLogger(__name__)

# Delays before restarting a crashed service (s); a service that ran this long starts over.
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER_S = 60.0
STOP_TIMEOUT_S = 15.0
BAD_SETTING_EXIT_CODE = 2


class Fleet:
    def __init__(self, names: tuple[str, ...], env: Mapping[str, str], root: Path,
                 sink: LogSink) -> None:
        self.names = names
        self.env = env
        self.root = root
        self.sink = sink
        self.children: dict[str, Child] = {}
        self.stopping = asyncio.Event()
        self.exit_code = 0

    async def run(self) -> int:
        """Keep every service running until `stop`; answer the console's exit code."""
        await asyncio.gather(*(self._keep(name) for name in self.names))
        return self.exit_code

    def stop(self) -> None:
        self.stopping.set()

    def kill_now(self) -> None:
        """Second Ctrl-C: no more waiting."""
        for child in self.children.values():
            child.kill_group()

    def _child(self, name: str) -> Child:
        return Child(name, [sys.executable, "-m", f"services.{name}"], self.sink,
                     env=self.env_for(name), cwd=self.root)

    def env_for(self, name: str) -> dict[str, str]:
        env = dict(self.env)
        base = int(env.get("ACUVIM_METRICS_PORT") or 0)
        if base and name != "gateway":  # one port each; the gateway serves /metrics itself
            env["ACUVIM_METRICS_PORT"] = str(base + self.names.index(name))
        elif base:
            env["ACUVIM_METRICS_PORT"] = "0"
        return env

    async def _keep(self, name: str) -> None:
        """Run one service until `stop` (then stop it: each keeper stops its own child)."""
        attempt = 0
        while not self.stopping.is_set():
            child = self._child(name)
            self.children[name] = child
            started_s = time.monotonic()
            await child.start()
            code = await self._wait_or_stop(child)
            if code is None:
                return
            if code == BAD_SETTING_EXIT_CODE:
                log.error("%s stopped on a bad setting (exit code 2): stopping the console",
                          name)
                self.exit_code = BAD_SETTING_EXIT_CODE
                self.stop()
                return
            if time.monotonic() - started_s > STABLE_AFTER_S:
                attempt = 0
            delay_s = RESTART_DELAYS_S[min(attempt, len(RESTART_DELAYS_S) - 1)]
            attempt += 1
            log.error("%s exited with code %s; restarting it in %.0f s (restart %d)",
                      name, code, delay_s, attempt, extra={"restarts": attempt})
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=delay_s)
            except TimeoutError:
                continue

    async def _wait_or_stop(self, child: Child) -> int | None:
        """The child's exit code if it exits by itself; None once it was stopped by us."""
        exited = asyncio.create_task(child.wait())
        stop = asyncio.create_task(self.stopping.wait())
        await asyncio.wait([exited, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not self.stopping.is_set():
            return exited.result()
        exited.cancel()
        await child.stop(STOP_TIMEOUT_S)
        return None
