"""One Bedrock call: prepare (the span, the request, the lazy estimate), the budget decision, the
call through ``_make_api_call``, and the result (the outcome, or the stream behind a proxy); and
the reading of a sync InvokeModel body, handed back to the user as an identical ``StreamingBody``.

The wrappers are Bedrock's own rather than ``_core.sync_call_wrapper`` / ``async_call_wrapper``:
``_make_api_call(operation_name, api_params)`` gets both positionally, most of its calls (other
services, other operations) must go straight through, and the budget decision edits a copy of
``api_params``, which the core wrappers (``prepare(instance, kwargs)``, then
``wrapped(*args, **call_kwargs)``) can neither see nor pass on.
"""
from __future__ import annotations

import io
import json
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ... import _semconv as sc
from ..._request import LLMRequest, TokenCount
from .. import _core as c
from .._core import Operation, StreamState, _content, log_once, safe
from ._attributes import (
    converse_attributes,
    converse_outcome,
    endpoint,
    invoke_attributes,
    invoke_operation,
    invoke_outcome,
    json_body,
    response_headers,
    service_name,
    service_tier,
    to_int,
)
from ._estimate import estimate_converse_input, estimate_invoke_input
from ._streams import AsyncEventStreamProxy, ConverseStreamState, EventStreamProxy, InvokeStreamState

PROVIDER = "aws.bedrock"
SERVICE = "bedrock-runtime"

CONVERSE = "Converse"
CONVERSE_STREAM = "ConverseStream"
INVOKE = "InvokeModel"
INVOKE_STREAM = "InvokeModelWithResponseStream"
_OPERATIONS = frozenset({CONVERSE, CONVERSE_STREAM, INVOKE, INVOKE_STREAM})

# Bodies larger than this are not read by the instrumentor (usage from the headers only).
MAX_BODY_READ = 8 * 1024 * 1024

# ---------------------------------------------------------------------------------------------
# One call


class BedrockCall(c.Call):
    """One instrumented Bedrock call: its ``Operation``, its API operation (``kind``: Converse,
    ConverseStream, InvokeModel or InvokeModelWithResponseStream) and the copy of ``api_params``
    that is sent (a budget downgrade edits its ``modelId``)."""

    def __init__(self, operation: Operation, api_operation: str, params: Dict[str, Any]) -> None:
        super().__init__(operation, api_operation)
        self.params = params

    def handle_result(self, result: Any, is_async: bool) -> Any:
        """What the user gets back: the result (an InvokeModel body read here is replaced by an
        identical one), a stream behind its proxy; on an internal error the result untouched, the
        span ended without a response."""
        try:
            if not isinstance(result, dict):
                self.finish_without_response()
                return result
            name = self.kind
            # The tier the response reports prices the call; else the one the request asked for.
            requested = self.operation.request.service_tier
            if name in (CONVERSE, INVOKE):
                read_error: Optional[BaseException] = None
                if name == CONVERSE:
                    outcome = converse_outcome(result)
                else:
                    body, read_error = (None, None) if is_async else self._read_body(result)
                    outcome = invoke_outcome(result, body)
                outcome.service_tier = outcome.service_tier or requested
                self.operation.finish(outcome, error=read_error)
            else:
                key = "stream" if name == CONVERSE_STREAM else "body"
                tier = service_tier(result.get("serviceTier")) or requested
                state: StreamState = (ConverseStreamState(self.operation, tier) if name == CONVERSE_STREAM
                                      else InvokeStreamState(self.operation, tier))
                stream = result.get(key)
                if stream is None:
                    self.finish_without_response()
                    return result
                proxy_class = AsyncEventStreamProxy if is_async else EventStreamProxy
                result[key] = proxy_class(stream, state)
            return result
        except Exception as exc:
            log_once(f"bedrock {self.kind} result", exc)
            self.finish_without_response()
            return result

    def _read_body(self, result: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], Optional[BaseException]]:
        """Read the (already generated, not streamed) InvokeModel body once and give the user an
        identical ``StreamingBody`` over the same bytes. Returns (parsed JSON body, read error).

        If reading fails (the connection broke), the user's body raises that same error when read,
        as it would have without us, and the span records it.
        """
        from botocore.response import StreamingBody

        body = result.get("body")
        if not isinstance(body, StreamingBody):
            return None, None
        headers = {str(k).lower(): v for k, v in response_headers(result).items()}
        length = to_int(headers.get("content-length"))
        if length is not None and length > MAX_BODY_READ:
            return None, None
        # Without a Content-Length (a chunked body) the size is known only by reading: never more
        # than the cap + 1 bytes.
        parts: List[bytes] = []
        size = 0
        try:
            while size <= MAX_BODY_READ:
                part = body.read(MAX_BODY_READ + 1 - size)
                if not part:
                    break
                parts.append(part)
                size += len(part)
        except Exception as exc:  # the user's read would have failed the same way
            result["body"] = _failed_body(exc)
            return None, exc
        data = b"".join(parts)
        if size > MAX_BODY_READ:
            # Too large to parse: the user reads the bytes buffered so far, then the rest (unread by us).
            result["body"] = StreamingBody(_PrefixedStream(data, body), None)
            return None, None
        result["body"] = StreamingBody(io.BytesIO(data), len(data))
        try:
            parsed = json.loads(data)
        except ValueError:
            return None, None
        return (parsed if isinstance(parsed, dict) else None), None


class _PrefixedStream:
    """The raw stream of a body the instrumentor started to read: ``prefix`` (the bytes it read),
    then the rest of the original ``StreamingBody`` (which still verifies its Content-Length)."""

    def __init__(self, prefix: bytes, rest: Any) -> None:
        self._prefix = prefix
        self._offset = 0
        self._rest = rest

    def read(self, amt: Optional[int] = None) -> bytes:
        start = self._offset
        if amt is None or amt < 0:
            self._offset = len(self._prefix)
            rest: bytes = self._rest.read()
            return self._prefix[start:] + rest
        head = self._prefix[start:start + amt]
        self._offset += len(head)
        if len(head) < amt:
            more: bytes = self._rest.read(amt - len(head))
            return head + more
        return head

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def readlines(self) -> List[bytes]:
        return self.read().splitlines(True)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._rest.close()


def _failed_body_class() -> Any:
    from botocore.response import StreamingBody

    class FailedBody(StreamingBody):
        """A response body whose reading failed while the instrumentor read it: raises that error."""

        def __init__(self, error: BaseException) -> None:
            super().__init__(io.BytesIO(b""), 0)
            self._error = error

        def read(self, amt: Optional[int] = None) -> bytes:
            raise self._error

        def readinto(self, b: Any) -> int:
            raise self._error

    return FailedBody


def _failed_body(error: BaseException) -> Any:
    return _failed_body_class()(error)


def _prepare(config: c.WrapContext, client: Any, api_operation: str, params: Mapping[str, Any]) -> BedrockCall:
    """Start the span of a Bedrock call (request attributes, ``LLMRequest`` with a lazy estimate)."""
    _content.not_supported("bedrock")  # the variable may be set after instrument()
    call_params = dict(params)
    model_id = call_params.get("modelId") if isinstance(call_params.get("modelId"), str) else None
    if api_operation in (CONVERSE, CONVERSE_STREAM):
        operation = "chat"
        attrs = converse_attributes(call_params)

        def estimate() -> TokenCount:
            return estimate_converse_input(call_params.get("modelId"), call_params)
    else:
        body = json_body(call_params.get("body"))
        operation = invoke_operation(model_id, body)
        attrs = invoke_attributes(model_id, body)

        def estimate() -> TokenCount:
            return estimate_invoke_input(model_id, body)
    start: Dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_PROVIDER_NAME: PROVIDER}
    if model_id:
        start[sc.GEN_AI_REQUEST_MODEL] = model_id
    host, port = endpoint(client)
    if host:
        start[sc.SERVER_ADDRESS] = host
        start[sc.SERVER_PORT] = port
    start.update(attrs)
    if api_operation in (CONVERSE_STREAM, INVOKE_STREAM):
        start[sc.GEN_AI_REQUEST_STREAM] = True
    tier = call_params.get("serviceTier")
    request = LLMRequest(
        provider=PROVIDER,
        operation=operation,
        model=model_id,
        max_output_tokens=attrs.get(sc.GEN_AI_REQUEST_MAX_TOKENS),
        service_tier=service_tier(tier),
        estimate_input=estimate,
    )
    name = f"{operation} {model_id}" if model_id else operation
    op = Operation(config.telemetry, request, name, start, catalog=config.catalog)
    return BedrockCall(op, api_operation, call_params)


def _arguments(args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> Tuple[Any, Any]:
    operation_name = args[0] if args else kwargs.get("operation_name")
    api_params = args[1] if len(args) > 1 else kwargs.get("api_params")
    return operation_name, api_params


def _targets(instance: Any, args: Tuple[Any, ...],
             kwargs: Mapping[str, Any]) -> Optional[Tuple[str, Mapping[str, Any]]]:
    operation_name, api_params = _arguments(args, kwargs)
    if operation_name not in _OPERATIONS or not isinstance(api_params, Mapping):
        return None
    if service_name(instance) != SERVICE:
        return None
    return operation_name, api_params


def _model_key(api_operation: str) -> Optional[str]:
    # Only the Converse body is model-agnostic: an InvokeModel body is in one family's format,
    # so a budget downgrade cannot swap its model (the call goes ahead, recorded as allowed).
    return "modelId" if api_operation in (CONVERSE, CONVERSE_STREAM) else None


def sync_wrapper(config: c.WrapContext) -> Callable[..., Any]:
    """The wrapper of ``BaseClient._make_api_call``: prepare -> budget decision -> (throttle) ->
    call -> result. An exception (an interrupt while throttled included) fails the span and
    propagates; only a budget block raises from our side (BudgetExceededError)."""

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        target = _targets(instance, args, kwargs)  # None: another service or operation
        call = None if target is None else safe(f"bedrock {target[0]} request", _prepare, config, instance, *target)
        if call is None:  # not Bedrock's, or preparing failed (logged once): the SDK untouched
            return wrapped(*args, **kwargs)
        delay = call.operation.apply_decision(call.params, _model_key(call.kind))  # raises on a block
        try:
            if delay:
                time.sleep(delay)  # interrupted while throttled: the call is never sent
            with call.operation.calling():  # spans started inside (botocore's own instrumentation) are part of it
                result = wrapped(call.kind, call.params)
        except BaseException as exc:
            call.operation.fail(exc)
            raise
        return call.handle_result(result, is_async=False)

    return wrapper


def async_wrapper(config: c.WrapContext) -> Callable[..., Any]:
    """The ``sync_wrapper`` of ``AioBaseClient._make_api_call`` (aiobotocore); the throttle is
    awaited (a cancellation while throttled fails the span)."""

    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        target = _targets(instance, args, kwargs)  # None: another service or operation
        call = None if target is None else safe(f"bedrock {target[0]} request", _prepare, config, instance, *target)
        if call is None:  # not Bedrock's, or preparing failed (logged once): the SDK untouched
            return await wrapped(*args, **kwargs)
        delay = call.operation.apply_decision(call.params, _model_key(call.kind))  # raises on a block
        try:
            if delay:
                await c.async_sleep(delay)  # cancelled while throttled: the call is never sent
            with call.operation.calling():
                result = await wrapped(call.kind, call.params)
        except BaseException as exc:
            call.operation.fail(exc)
            raise
        return call.handle_result(result, is_async=True)

    return wrapper
