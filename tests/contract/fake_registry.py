"""A stand-in for a Confluent-compatible registry over HTTP on loopback: the three calls the
codec's client makes (register, look up, fetch by id), kept in memory, with every request
logged. Not a real registry (none could be installed here); it exists so the tests exercise
confluent-kafka's real HTTP client and its caches, which the `mock://` client bypasses."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass
class RegistryState:
    schemas: list[str] = field(default_factory=list)  # id - 1 -> schema string
    subjects: dict[str, list[int]] = field(default_factory=dict)  # subject -> ids, by version
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, decoded path)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, subject: str, schema: str) -> int:
        if schema not in self.schemas:
            self.schemas.append(schema)
        schema_id = self.schemas.index(schema) + 1
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id


class _Handler(BaseHTTPRequestHandler):
    state: RegistryState

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _path(self) -> list[str]:
        path = unquote(urlsplit(self.path).path)
        with self.state.lock:
            self.state.requests.append((self.command, path))
        return path.strip("/").split("/")

    def do_GET(self) -> None:
        parts = self._path()
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            schema_id = int(parts[2])
            if 1 <= schema_id <= len(self.state.schemas):
                self._reply(200, {"schema": self.state.schemas[schema_id - 1]})
                return
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})
            return
        self._reply(404, {"error_code": 404, "message": "not in this fake"})

    def do_POST(self) -> None:
        parts = self._path()
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
            with self.state.lock:
                schema_id = self.state.register(parts[1], body["schema"])
            self._reply(200, {"id": schema_id})
            return
        if len(parts) == 2 and parts[0] == "subjects":
            versions = self.state.subjects.get(parts[1], [])
            for version, schema_id in enumerate(versions, start=1):
                if self.state.schemas[schema_id - 1] == body["schema"]:
                    reply = {"subject": parts[1], "id": schema_id, "version": version}
                    self._reply(200, {**reply, "schema": body["schema"]})
                    return
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})
            return
        self._reply(404, {"error_code": 404, "message": "not in this fake"})


@contextmanager
def fake_registry() -> Iterator[tuple[str, RegistryState]]:
    """A running fake registry on 127.0.0.1 (a free port) and its state; stopped on exit."""
    state = RegistryState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
