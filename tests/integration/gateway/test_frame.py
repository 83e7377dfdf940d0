"""The frame of the API on a real gateway: problem details, security headers, offline Swagger
UI and its document, CORS off by default, Prometheus metrics."""

from __future__ import annotations

import re

from tests.integration.gateway.conftest import assert_problem
from tests.support.console import Console

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


async def test_every_error_is_a_problem_document(gateway: Console) -> None:
    async with gateway.client("viewer") as http:
        malformed = await http.post("/api/auth/login", content=b"{not json",
                                    headers={"content-type": "application/json"})
        assert_problem(malformed, 400)
        assert_problem(await http.get("/api/devices", headers={"Authorization": "Bearer x"}), 401)
        assert_problem(await http.post("/api/auth/register", json={
            "email": "a@b.c", "password": "long-enough", "role": "viewer"}), 403)
        assert_problem(await http.get("/api/no-such-thing"), 404)
        not_allowed = await http.delete("/api/auth/login")
        assert_problem(not_allowed, 405)
        assert "POST" in not_allowed.headers["allow"]
        too_big = await http.post("/api/auth/login", content=b"x" * (2 * 1024 * 1024),
                                  headers={"content-type": "application/json"})
        assert_problem(too_big, 413)
        wrong_fields = await http.post("/api/auth/refresh", json={"refresh": 1})
        assert_problem(wrong_fields, 422)


async def test_a_missing_token_is_401_with_a_bearer_challenge(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        reply = await http.get("/api/auth/me")
    assert_problem(reply, 401)
    assert reply.headers["www-authenticate"] == "Bearer"


async def test_security_headers_on_every_kind_of_response(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        replies = [await http.get(path) for path in (
            "/api/health", "/api/no-such-thing", "/swagger", "/swagger/assets/swagger-ui.css",
            "/metrics")]
        replies.append(await http.post("/api/auth/login", json={}))
    for reply in replies:
        for name, value in SECURITY_HEADERS.items():
            assert reply.headers.get(name) == value, (reply.url, name)
        csp = reply.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "access-control-allow-origin" not in reply.headers  # CORS is off by default


async def test_swagger_ui_uses_only_local_assets(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        page = await http.get("/swagger")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert urls, page.text
        assert not [u for u in urls if re.match(r"^(https?:)?//", u)], urls
        assert "<script>" not in page.text  # no inline script: the CSP forbids it
        for url in urls:
            asset = await http.get(url)
            assert asset.status_code == 200, url
            assert asset.content, url
        init = await http.get("/swagger/init.js")
    assert "/swagger/openapi.json" in init.text
    assert not re.search(r"https?://", init.text)


async def test_openapi_document_shows_bearer_auth_and_auth_schemas(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        reply = await http.get("/swagger/openapi.json")
    assert reply.status_code == 200
    doc = reply.json()
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert {"bearer": []} in doc["security"]
    schemas = doc["components"]["schemas"]
    for name in ("LoginRequest", "RefreshRequest", "RegisterRequest", "TokenPair", "UserOut"):
        assert name in schemas, sorted(schemas)
    assert set(schemas["RegisterRequest"]["properties"]["role"]["enum"]) == {
        "admin", "operator", "viewer"}
    for path in ("/api/auth/login", "/api/auth/refresh", "/api/auth/register",
                 "/api/auth/logout", "/api/auth/me"):
        assert path in doc["paths"], path
    # Login and refresh need no token; the rest inherit the document's bearer requirement.
    assert doc["paths"]["/api/auth/login"]["post"]["security"] == [{}]
    assert doc["paths"]["/api/auth/refresh"]["post"]["security"] == [{}]
    assert "security" not in doc["paths"]["/api/auth/me"]["get"]


async def test_metrics_are_public_prometheus_text(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        await http.post("/api/auth/login", json={"email": "x@y.z", "password": "wrong-one"})
        reply = await http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert 'acuvim_gateway_logins_total{outcome="refused"}' in reply.text
    assert "acuvim_gateway_http_responses_total" in reply.text
