"""Notification rules and their delivery logs (owned by the notify service), operator and up.

A webhook rule's secret is in the answer of its creation (and of `rotate_secret`) only.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post, put

from services.gateway.api.forward import actor, query_dict, rpc_of
from services.gateway.auth.guard import operator

# A test sends at once and waits for the receiver (its timeout is 10 s).
TEST_TIMEOUT_S = 20.0


class NotificationsController(Controller):
    path = "/api/notifications/rules"
    tags = ["notifications"]
    guards = [operator]

    @get("/", summary="List notification rules")
    async def list_rules(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("notify", "rules.list", query_dict(request))

    @post("/", status_code=201,
          summary="Create a rule ({name, events, target, scope?, min_severity?, "
                  "digest_minutes?}); a webhook's secret is shown once, here")
    async def create_rule(self, request: Request[Any, Any, Any], data: dict[str, Any]) -> Any:
        return await rpc_of(request).call("notify", "rules.create",
                                          {**data, "created_by": actor(request)})

    @get("/{rule_id:uuid}", summary="Get a rule (state: active or paused)")
    async def get_rule(self, request: Request[Any, Any, Any], rule_id: UUID) -> Any:
        return await rpc_of(request).call("notify", "rules.get", {"rule_id": str(rule_id)})

    @put("/{rule_id:uuid}",
         summary="Update a rule; {state: active} resumes a paused one, {rotate_secret: true} "
                 "answers a new webhook secret once")
    async def update_rule(self, request: Request[Any, Any, Any], rule_id: UUID,
                          data: dict[str, Any]) -> Any:
        return await rpc_of(request).call("notify", "rules.update",
                                          {**data, "rule_id": str(rule_id)})

    @delete("/{rule_id:uuid}", status_code=204, summary="Delete a rule and its delivery log")
    async def delete_rule(self, request: Request[Any, Any, Any], rule_id: UUID) -> None:
        await rpc_of(request).call("notify", "rules.delete", {"rule_id": str(rule_id)})

    @post("/{rule_id:uuid}/test", status_code=200,
          summary="Send a sample notification now (once, no retry); the logged delivery")
    async def test_rule(self, request: Request[Any, Any, Any], rule_id: UUID) -> Any:
        return await rpc_of(request).call("notify", "rules.test", {"rule_id": str(rule_id)},
                                          timeout_s=TEST_TIMEOUT_S)

    @get("/{rule_id:uuid}/deliveries",
         summary="The rule's delivery log, newest first (status, limit, offset)")
    async def deliveries(self, request: Request[Any, Any, Any], rule_id: UUID) -> Any:
        return await rpc_of(request).call("notify", "deliveries.list",
                                          {**query_dict(request), "rule_id": str(rule_id)})
