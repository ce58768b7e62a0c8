"""An OTLP/HTTP trace receiver on loopback: what a collector's port 4318 takes, decoded.

It answers ``POST /v1/traces`` (protobuf, gzip or not) as a collector does and keeps each
span with the resource it came from, for the tests to read.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.faults import free_port

PATH = "/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    span: Span
    resource: dict[str, str]

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_span_id(self) -> str:
        return self.span.parent_span_id.hex()

    def attribute(self, key: str) -> str | int | None:
        for item in self.span.attributes:
            if item.key == key:
                return _value(item)
        return None


def _value(item: KeyValue) -> str | int:
    kind = item.value.WhichOneof("value")
    return item.value.int_value if kind == "int_value" else str(getattr(item.value, kind or "string_value"))


class Receiver:
    """The spans every export has brought so far, and how many exports there were."""

    def __init__(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.spans: list[ReceivedSpan] = []
        self.exports = 0
        self.lock = threading.Lock()

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            self.exports += 1
            for resource_spans in request.resource_spans:
                resource = {item.key: str(_value(item)) for item in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(ReceivedSpan(span, resource) for span in scope_spans.spans)

    def wait_for(self, name: str, timeout: float = 10.0) -> ReceivedSpan:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [span for span in self.spans if span.name == name]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no span named {name!r} arrived; got {[span.name for span in self.spans]}")


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """A receiver on a free loopback port, stopped when the block ends."""
    port = free_port()
    receiver = Receiver(port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != PATH:
                self.send_error(404)
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            receiver.add(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
