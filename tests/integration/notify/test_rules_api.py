"""The rules API through the gateway of the session console: operator and up, validation as
problem details, the secret shown once, updates, rotation, deletion."""

from __future__ import annotations

import uuid

from tests.support.console import Console

RULES = "/api/notifications/rules"
HOOK = {"kind": "webhook", "url": "https://hooks.example.com/acuvim"}


async def test_viewers_may_not_see_or_change_rules(console: Console) -> None:
    async with console.client("viewer") as http:
        assert (await http.get(RULES)).status_code == 403
        reply = await http.post(RULES, json={"name": "x", "events": ["device_offline"],
                                             "target": HOOK})
        assert reply.status_code == 403


async def test_a_rule_lives_through_the_api(console: Console) -> None:
    async with console.client("operator") as http:
        reply = await http.post(RULES, json={
            "name": "north pager", "events": ["device_offline", "device_online"],
            "scope": {"kind": "tag", "tag": "north"}, "target": HOOK, "digest_minutes": 5})
        assert reply.status_code == 201, reply.text
        rule = reply.json()
        assert rule["secret"].startswith("whsec_") and rule["state"] == "active"
        assert rule["created_by"] == "operator@example.com"
        assert rule["scope"] == {"kind": "tag", "tag": "north"}
        path = f"{RULES}/{rule['id']}"
        got = (await http.get(path)).json()
        assert "secret" not in got and got["name"] == "north pager"
        listed = (await http.get(RULES, params={"limit": 1000})).json()
        assert rule["id"] in [r["id"] for r in listed["items"]]

        paused = (await http.put(path, json={"state": "paused"})).json()
        assert (paused["state"], paused["paused_reason"]) == ("paused", "paused by an operator")
        rotated = (await http.put(path, json={"rotate_secret": True, "name": "n2"})).json()
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != rule["secret"]
        assert rotated["name"] == "n2" and rotated["events"] == rule["events"]
        log = (await http.get(f"{path}/deliveries")).json()
        assert log == {"items": [], "total": 0, "limit": 50, "offset": 0}

        assert (await http.delete(path)).status_code == 204
        assert (await http.get(path)).status_code == 404
        assert (await http.get(f"{path}/deliveries")).status_code == 404


async def test_bad_rules_are_refused_with_problem_details(console: Console) -> None:
    bad = [
        {"name": "x", "events": ["device_exploded"], "target": HOOK},
        {"name": "x", "events": ["device_online"], "target": HOOK},  # no offline to clear
        {"name": "x", "events": ["alert_opened"], "target": {"kind": "webhook", "url": "ftp://h/x"}},
        {"name": "x", "events": ["alert_opened"], "target": {"kind": "email",
                                                              "addresses": ["not-an-address"]}},
        # The session console has no SMTP server configured.
        {"name": "x", "events": ["alert_opened"], "target": {"kind": "email",
                                                              "addresses": ["a@example.com"]}},
        {"name": "x", "events": ["alert_opened"], "target": HOOK, "min_severity": "doom"},
        {"name": "x", "events": ["alert_opened"], "target": HOOK, "digest_minutes": -1},
    ]
    async with console.client("operator") as http:
        for body in bad:
            reply = await http.post(RULES, json=body)
            assert reply.status_code == 422, (body, reply.text)
            assert reply.headers["content-type"].startswith("application/problem+json")
        missing = f"{RULES}/{uuid.uuid4()}"
        assert (await http.get(missing)).status_code == 404
        assert (await http.put(missing, json={"name": "y"})).status_code == 404
        assert (await http.post(f"{missing}/test")).status_code == 404
        assert (await http.get(f"{RULES}/not-a-uuid")).status_code in (400, 404)
