"""Request-reply over the real NATS server: typed errors travel, a missing service is a 503."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import nats
import pytest

from libs.common.errors import Conflict, InvalidInput, ServiceUnavailable
from libs.common.rpc import RpcClient, RpcServer
from libs.common.subjects import Subjects
from tests.support.console import NATS_URL


class Greeting(msgspec.Struct, frozen=True):
    name: str


async def test_answers_errors_and_absence() -> None:
    subjects = Subjects("t" + uuid.uuid4().hex[:8])
    nc = await nats.connect(NATS_URL)
    server = RpcServer(nc, subjects, "demo")
    in_flight = [0, 0]  # now, most at once

    @server.route("greet", Greeting)
    async def greet(req: Greeting) -> dict[str, str]:
        if req.name == "taken":
            raise Conflict("that name is taken")
        if req.name == "boom":
            raise RuntimeError("secret internals")
        if req.name == "slow":
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
            await asyncio.sleep(0.3)
            in_flight[0] -= 1
        return {"hello": req.name}

    await server.start()
    client = RpcClient(nc, subjects, timeout_s=2)
    try:
        assert await client.call("demo", "greet", {"name": "ada"}) == {"hello": "ada"}
        with pytest.raises(Conflict, match="taken"):
            await client.call("demo", "greet", {"name": "taken"})
        with pytest.raises(InvalidInput):
            await client.call("demo", "greet", {"nom": 1})
        with pytest.raises(Exception) as err:
            await client.call("demo", "greet", {"name": "boom"})
        assert "secret" not in str(err.value)
        with pytest.raises(ServiceUnavailable, match="not running"):
            await client.call("absent", "greet", {"name": "x"})
        # Requests run concurrently: one slow request does not hold up the others.
        await asyncio.gather(*(client.call("demo", "greet", {"name": "slow"}) for _ in range(10)))
        assert in_flight[1] == 10
        assert (await client.call("demo", "health"))["status"] == "ok"
    finally:
        await server.stop()
        await nc.close()
