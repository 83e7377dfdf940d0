"""Request-reply over NATS: typed errors instead of silent timeouts.

Server side: each service registers operations on `{root}.rpc.{service}.{operation}` in a queue
group (so replicas share the load); each request runs in its own task. A ConsoleError travels
back as the micro error headers (`Nats-Service-Error`, `Nats-Service-Error-Code` = HTTP status);
an invalid payload is a 422; anything unexpected is logged and answered as a 500 with no detail.

Client side: `RpcClient.call` raises the typed error back, and ServiceUnavailable (503) when no
replica is running or none answered in time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import msgspec
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.common import metrics
from libs.common.codec import decode, encode
from libs.common.errors import ConsoleError, ServiceUnavailable, error_for_status
from libs.common.subjects import Subjects

log = logging.getLogger(__name__)

ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"
# Requests served at once per replica; more wait in the NATS subscription buffer.
MAX_CONCURRENT_REQUESTS = 256

T = TypeVar("T")
Handler = Callable[[Any], Awaitable[Any]]


class Empty(msgspec.Struct, frozen=True):
    """The payload of an operation that takes nothing."""


class RpcServer:
    def __init__(self, nc: NATS, subjects: Subjects, service: str) -> None:
        self.nc = nc
        self.subjects = subjects
        self.service = service
        self._routes: dict[str, tuple[type[Any], Handler]] = {}
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        self._health_checks: list[Callable[[], Awaitable[None]]] = []
        self.route("health", Empty)(self._health)

    def route(self, operation: str,
              request_type: type[Any] = Empty) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._routes[operation] = (request_type, handler)
            return handler

        return register

    def add_health_check(self, check: Callable[[], Awaitable[None]]) -> None:
        """A check that raises when a dependency (e.g. the database) is not usable."""
        self._health_checks.append(check)

    async def _health(self, _: Empty) -> dict[str, Any]:
        for check in self._health_checks:
            try:
                await asyncio.wait_for(check(), timeout=2.0)
            except Exception as exc:
                raise ServiceUnavailable(f"{self.service}: {type(exc).__name__}: {exc}") from exc
        return {"service": self.service, "status": "ok"}

    async def start(self) -> None:
        for operation, (request_type, handler) in self._routes.items():
            subject = self.subjects.rpc(self.service, operation)
            sub = await self.nc.subscribe(
                subject, queue=self.service, cb=self._dispatcher(operation, request_type, handler),
                pending_msgs_limit=65536,
            )
            self._subs.append(sub)

    async def stop(self) -> None:
        """Stop taking requests and let those under way finish."""
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)

    def _dispatcher(self, operation: str, request_type: type[Any],
                    handler: Handler) -> Callable[[Msg], Awaitable[None]]:
        async def dispatch(msg: Msg) -> None:
            await self._slots.acquire()
            task = asyncio.create_task(self._serve(operation, request_type, handler, msg))
            self._tasks.add(task)
            task.add_done_callback(self._done)

        return dispatch

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _serve(self, operation: str, request_type: type[Any], handler: Handler,
                     msg: Msg) -> None:
        started = time.perf_counter()
        headers: dict[str, str] | None = None
        outcome = "ok"
        try:
            request = decode(msg.data or b"{}", request_type)
            body = encode(await handler(request))
        except ConsoleError as exc:
            outcome = str(exc.status)
            body = b""
            headers = {ERROR_HEADER: exc.detail[:2000], ERROR_CODE_HEADER: str(exc.status)}
        except Exception:
            outcome = "500"
            log.exception("rpc %s.%s failed", self.service, operation)
            body = b""
            headers = {ERROR_HEADER: "internal error", ERROR_CODE_HEADER: "500"}
        metrics.RPC_REQUESTS.labels(operation=operation, outcome=outcome).inc()
        metrics.RPC_SECONDS.labels(operation=operation).observe(time.perf_counter() - started)
        if msg.reply:
            try:
                await msg.respond(body) if headers is None else await self.nc.publish(
                    msg.reply, body, headers=headers)
            except nats.errors.Error as exc:
                log.warning("could not answer %s: %r", operation, exc)


class RpcClient:
    def __init__(self, nc: NATS, subjects: Subjects, timeout_s: float = 5.0) -> None:
        self.nc = nc
        self.subjects = subjects
        self.timeout_s = timeout_s

    @overload
    async def call(self, service: str, operation: str, payload: Any = ..., *,
                   into: type[T], timeout_s: float | None = ...) -> T: ...

    @overload
    async def call(self, service: str, operation: str, payload: Any = ..., *,
                   into: None = ..., timeout_s: float | None = ...) -> Any: ...

    async def call(self, service: str, operation: str, payload: Any = None, *,
                   into: type[Any] | None = None, timeout_s: float | None = None) -> Any:
        subject = self.subjects.rpc(service, operation)
        timeout = timeout_s or self.timeout_s
        data = b"{}" if payload is None else encode(payload)
        try:
            reply = await self.nc.request(subject, data, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise ServiceUnavailable(f"the {service} service is not running") from None
        except (TimeoutError, nats.errors.TimeoutError):
            raise ServiceUnavailable(
                f"the {service} service did not answer within {timeout:g} s") from None
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                nats.errors.OutboundBufferLimitError):
            raise ServiceUnavailable("the message bus is not reachable") from None
        code = (reply.headers or {}).get(ERROR_CODE_HEADER)
        if code:
            detail = (reply.headers or {}).get(ERROR_HEADER, "")
            raise error_for_status(int(code) if code.isdigit() else 500, detail)
        if into is None:
            return msgspec.json.decode(reply.data) if reply.data else None
        return decode(reply.data, into)
