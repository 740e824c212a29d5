"""A real OTLP/gRPC trace receiver for tests, on 127.0.0.1 with a free port.

    with OTLPReceiver() as receiver:
        ... run something with OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint ...
        span = receiver.wait_for(lambda spans: next((s for s in spans if s["name"] == "x"), None))
"""
from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Any, Callable, Dict, List, Optional, TypeVar

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

T = TypeVar("T")
FlatSpan = Dict[str, Any]

_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_KIND = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(pairs: Any) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        result[pair.key] = any_value(pair.value)
    return result


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: "OTLPReceiver") -> None:
        self._receiver = receiver

    def Export(  # noqa: N802 - gRPC name
            self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        spans: List[FlatSpan] = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        {
                            "name": span.name,
                            "kind": _KIND.get(span.kind, str(span.kind)),
                            "attributes": attributes(span.attributes),
                            "status": _STATUS.get(span.status.code, str(span.status.code)),
                            "status_message": span.status.message,
                            "resource": resource,
                            "scope": scope_spans.scope.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "events": [{"name": e.name, "attributes": attributes(e.attributes)} for e in span.events],
                        }
                    )
        self._receiver._add(spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class OTLPReceiver:
    """Collects the spans exported to it. ``endpoint`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self._spans: List[FlatSpan] = []
        self._changed = threading.Condition()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        if not self.port:
            raise RuntimeError("OTLP test receiver could not bind a port on 127.0.0.1")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> "OTLPReceiver":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def __enter__(self) -> "OTLPReceiver":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def spans(self) -> List[FlatSpan]:
        with self._changed:
            return list(self._spans)

    def _add(self, spans: List[FlatSpan]) -> None:
        with self._changed:
            self._spans.extend(spans)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[List[FlatSpan]], Optional[T]], timeout: float = 10.0) -> T:
        """The first truthy ``predicate(spans)`` within ``timeout`` seconds; AssertionError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = predicate(list(self._spans))
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [s["name"] for s in self._spans]
                    raise AssertionError(f"no matching span within {timeout}s; received: {names}")
                self._changed.wait(remaining)
