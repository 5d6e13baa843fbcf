"""The worker API's guard on a real aiohttp server: read-only, the bearer token (probes open),
JSON errors without tracebacks; and the bounds on what a query may ask."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.worker.http_guard import api_guard
from streams.worker.views import (
    MAX_CUSTOMER_ID,
    QueryError,
    as_of_query,
    customer_id_path,
    decode_cursor,
    encode_cursor,
)

TOKEN = "t0ken-for-tests"


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"path": request.path})


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret detail of customer c-0000042")


def _app(token: str | None) -> web.Application:
    app = web.Application(middlewares=[api_guard(token)])
    for path in ("/healthz", "/readyz", "/metrics", "/customers/{customer_id}"):
        app.router.add_get(path, _ok)
    app.router.add_get("/boom", _boom)
    return app


Call = Callable[..., Awaitable[tuple[int, dict[str, str], Any]]]


def _with_client(token: str | None, scenario: Callable[[Call], Awaitable[None]]) -> None:
    async def run() -> None:
        async with TestClient(TestServer(_app(token))) as client:

            async def call(
                method: str, path: str, **headers: str
            ) -> tuple[int, dict[str, str], Any]:
                response = await client.request(method, path, headers=headers)
                body = await response.json() if method != "HEAD" else None
                return response.status, dict(response.headers), body

            await scenario(call)

    asyncio.run(run())


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_only_reads_are_allowed(method: str) -> None:
    async def scenario(call: Call) -> None:
        status, headers, body = await call(method, "/customers/c-1")
        assert status == 405 and headers["Allow"] == "GET, HEAD"
        assert body == {"error": f"{method} is not allowed: this API is read-only (GET, HEAD)",
                        "status": 405}  # fmt: skip
        assert (await call("HEAD", "/customers/c-1"))[0] == 200

    _with_client(None, scenario)


def test_with_a_token_everything_but_the_probes_needs_it() -> None:
    async def scenario(call: Call) -> None:
        for path in ("/customers/c-1", "/metrics"):
            status, headers, body = await call("GET", path)
            assert status == 401 and body["status"] == 401
            assert headers["WWW-Authenticate"].startswith("Bearer")
            assert (await call("GET", path, Authorization="Bearer wrong"))[0] == 401
            assert (await call("GET", path, Authorization=TOKEN))[0] == 401  # no scheme
            assert (await call("GET", path, Authorization=f"Bearer {TOKEN}"))[0] == 200
        for probe in ("/healthz", "/readyz"):
            assert (await call("GET", probe))[0] == 200

    _with_client(TOKEN, scenario)


def test_without_a_token_setting_no_token_is_asked() -> None:
    async def scenario(call: Call) -> None:
        assert (await call("GET", "/customers/c-1"))[0] == 200
        assert (await call("GET", "/metrics"))[0] == 200

    _with_client(None, scenario)


def test_an_internal_error_is_a_json_500_without_traceback_or_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(call: Call) -> None:
        status, headers, body = await call("GET", "/boom")
        assert status == 500 and headers["Content-Type"].startswith("application/json")
        assert body == {"error": "internal error: RuntimeError", "status": 500}
        status, _, body = await call("GET", "/no/such/path")
        assert status == 404 and body["status"] == 404

    _with_client(None, scenario)
    # the traceback is in the worker's log, under the route's name and not the path asked
    [record] = [r for r in caplog.records if r.exc_info]
    assert "/boom" in record.getMessage() and record.exc_info is not None


def test_query_values_are_bounded() -> None:
    assert customer_id_path("c" * MAX_CUSTOMER_ID) == "c" * MAX_CUSTOMER_ID
    with pytest.raises(QueryError, match="at most 256") as too_long:
        customer_id_path("c" * (MAX_CUSTOMER_ID + 1))
    assert too_long.value.status == 400
    longest = encode_cursor(b"c" * MAX_CUSTOMER_ID)
    assert decode_cursor(longest) == b"c" * MAX_CUSTOMER_ID
    for bad in (longest + "AAAA", "YWJj!", "YW Jj", "YWJj=="):
        with pytest.raises(QueryError, match="not one this API gave out"):
            decode_cursor(bad)
    with pytest.raises(QueryError, match="characters long"):
        as_of_query("2026-01-01" + " " * 100)


def test_the_customer_command_reads_only_http_urls() -> None:
    # urllib would read a local file for a file:// "worker"
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "customer", "c-1", "--worker", "file:///etc/passwd"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    words = " ".join(result.stderr.replace("│", " ").split())  # rich boxes and wraps it
    assert "give the worker's http:// or https:// URL" in words and "root:" not in result.stdout
