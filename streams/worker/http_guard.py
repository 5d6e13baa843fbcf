"""What every request to a worker's HTTP server passes before any view (an aiohttp middleware,
so Faust's own routes are covered too):

- the API is read-only: GET and HEAD; any other method is a JSON 405;
- with `LOYALTY_API_TOKEN` set, a request needs `Authorization: Bearer <token>` (else a JSON
  401), except the Kubernetes probes `/healthz` and `/readyz`, which a kubelet calls without
  credentials; `/metrics` needs it (it shows the program's figures: Prometheus sends it with
  its scrape config's `authorization`);
- whatever fails inside is a JSON 500 naming the error's type; the traceback goes to the
  worker's log, never to the client. Unknown paths are a JSON 404."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD"})
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


def bearer_token(token: str) -> str:
    """The `Authorization` header value that carries `token`."""
    return f"Bearer {token}"


def route_of(request: web.Request) -> str:
    """`/customers/{customer_id}` rather than the path asked for (personal data in logs)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def api_guard(token: str | None) -> Middleware:
    """The middleware for a worker whose API takes `token` (None: no token asked)."""
    expected = bearer_token(token).encode() if token else None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in READ_METHODS:
            return json_error(
                405,
                f"{request.method} is not allowed: this API is read-only (GET, HEAD)",
                {"Allow": "GET, HEAD"},
            )
        if expected is not None and request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode()
            # constant time: a token must not be guessable from how long a refusal takes
            if not hmac.compare_digest(given, expected):
                return json_error(
                    401,
                    "this API needs `Authorization: Bearer <LOYALTY_API_TOKEN>`",
                    {"WWW-Authenticate": 'Bearer realm="loyalty-streams"'},
                )
        try:
            return await handler(request)
        except web.HTTPException as error:
            if error.status < 400:
                raise  # redirects and the like are answers, not errors
            return json_error(error.status, error.reason)
        except Exception as error:
            # the route's pattern, not the path: a path holds a customer id
            log.exception("HTTP %s %s failed", request.method, route_of(request))
            return json_error(500, f"internal error: {type(error).__name__}")

    return guard
