"""Raw responses of the Stainless-generated SDKs: ``with_raw_response`` / ``with_streaming_response``.

The SDK hands back an ``APIResponse`` (or ``AsyncAPIResponse``; ``openai`` and ``anthropic`` 0.x
a ``LegacyAPIResponse``, whose body is read at once) instead of the parsed result. Its span ends:

- at once, for a non-streaming response whose body httpx has already read (``with_raw_response``):
  with the usage of those bytes, whatever the user reads later;
- when the user parses it (usage from the parsed object, or the stream proxy handed out, which then
  owns the span), reads the whole body (``read()`` / ``text()`` / ``json()``: usage from those
  bytes), closes it (leaving the ``with`` block) or drops it. Closed or dropped with a body we cannot
  see (nothing read, only the headers, ``iter_*``), the span ends with the input estimate,
  ``ai_cost.usage.source=estimated``: no byte the user did not read is ever read.

A provider's call class derives from ``StainlessCall`` and supplies only what differs: ``sdk`` (the
package whose ``Stream`` / ``_response`` types are used), ``stream_state()`` (reads its chunks, from
the SDK's stream or from the SSE body), ``outcome`` / ``finish_with`` (reads a parsed result or
the body's JSON) and, if the response says it better than the request, ``body_is_stream(raw)``.
"""
from __future__ import annotations

import functools
import importlib
import json
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import wrapt

from ... import _semconv as sc
from .._core import (
    AsyncStreamProxy,
    Call,
    CharCounter,
    Operation,
    Outcome,
    StreamProxy,
    StreamState,
    end_stream_proxy,
    end_when_collected,
    error_event_type,
    estimated_usage,
    safe,
)

# sdk -> (Stream, AsyncStream, BaseAPIResponse, AsyncAPIResponse, LegacyAPIResponse), imported once per SDK.
_TYPES: Dict[str, Tuple[Any, Any, Any, Any, Any]] = {}


def sdk_types(sdk: str) -> Tuple[Any, Any, Any, Any, Any]:
    """(Stream, AsyncStream, BaseAPIResponse, AsyncAPIResponse, LegacyAPIResponse) of the installed
    ``sdk`` (``()`` for a raw response type the SDK lacks, so ``isinstance`` is False)."""
    types = _TYPES.get(sdk)
    if types is None:
        module = importlib.import_module(sdk)
        try:
            response = importlib.import_module(f"{sdk}._response")
            raw: Tuple[Any, Any] = (response.BaseAPIResponse, response.AsyncAPIResponse)
        except (ImportError, AttributeError):  # pragma: no cover - SDKs without them
            raw = ((), ())
        try:
            legacy: Any = importlib.import_module(f"{sdk}._legacy_response").LegacyAPIResponse
        except (ImportError, AttributeError):  # groq, anthropic >= 1
            legacy = ()
        types = _TYPES[sdk] = (module.Stream, module.AsyncStream, *raw, legacy)
    return types


def held_body(raw: Any) -> Optional[Union[bytes, bytearray]]:
    """The body bytes of a raw response if they were already read (never reads the network)."""
    http: Any = getattr(raw, "http_response", None)
    try:
        data = http.content  # httpx raises ResponseNotRead for a body not read yet
    except Exception:
        return None
    return data if isinstance(data, (bytes, bytearray)) else None


def sse_chunks(data: Union[bytes, bytearray]) -> Iterator[Any]:
    """The JSON chunks of a server-sent-events body (``data: {...}`` lines)."""
    for line in bytes(data).decode("utf-8", "replace").splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == "[DONE]":
            continue
        try:
            yield json.loads(payload)
        except ValueError:
            continue


class StainlessCall(Call):
    """A ``_core.Call`` of a Stainless SDK: streams, raw responses, and the body the user read."""

    sdk = ""  # the SDK package: "openai", "groq", ...
    # Whether a body httpx already holds (not read through the proxy) settles the span: at once for a
    # non-streaming raw response, else when it is closed or dropped unparsed. Without it such a
    # response ends with the input estimate, unless the user reads the whole body through the proxy.
    uses_held_body = True

    def __init__(self, operation: Operation, kind: str, is_stream: bool) -> None:
        super().__init__(operation, kind)
        self.is_stream = is_stream

    def stream_state(self) -> StreamState:  # pragma: no cover - overridden
        """A new state that reads this call's stream chunks."""
        raise NotImplementedError

    def wrap_stream(self, stream: Any) -> Any:
        """The SDK stream behind a proxy that ends the span; the stream itself (span ended) if unknown."""
        stream_type, async_stream_type, *_ = sdk_types(self.sdk)
        if isinstance(stream, async_stream_type):
            return AsyncStreamProxy(stream, self.stream_state())
        if isinstance(stream, stream_type):
            return StreamProxy(stream, self.stream_state())
        self.finish_without_response()
        return stream

    def handle_result(self, result: Any) -> Any:
        """The object handed back to the user for the SDK's ``result``: itself, or a proxy."""
        _, _, raw_type, async_raw_type, legacy_type = sdk_types(self.sdk)
        if raw_type and isinstance(result, raw_type):
            if not self.is_stream and self.uses_held_body:
                data = held_body(result)
                if data is not None:
                    # with_raw_response: the whole body is already here, so the call is over. The
                    # span ends now with the usage of those bytes, whatever the user reads later.
                    self.finish_from_body(result, data)
                    return result
            cls = AsyncAPIResponseProxy if isinstance(result, async_raw_type) else APIResponseProxy
            return cls(result, self)
        if legacy_type and isinstance(result, legacy_type):
            if self.is_stream:
                return LegacyResponseProxy(result, self, stream=self.wrap_stream(result.parse()))
            # The body is read; the SDK caches parse() per type: the user's parse() gets this same object.
            self.finish_with(result.parse())
            return result
        if self.is_stream:
            return self.wrap_stream(result)
        self.finish_with(result)
        return result

    def body_is_stream(self, raw: Any) -> bool:
        """Whether the body of the raw response ``raw`` is an SSE stream (else JSON): the request's word."""
        return self.is_stream

    def finish_from_body(self, raw: Any, data: Union[bytes, bytearray]) -> None:
        """End the span with what the body of ``raw`` the user read says (a JSON response or an SSE stream)."""
        if self.body_is_stream(raw):
            state = self.stream_state()
            for chunk in sse_chunks(data):
                kind = error_event_type(chunk)
                if kind is not None:  # the SDK would raise here: the stream ends with the provider's error
                    state.error_kind = kind
                    break
                state.observe_safely(chunk)
            state.end()
            return
        try:
            body = json.loads(bytes(data))
        except ValueError:
            body = None
        if isinstance(body, dict):
            self.finish_with(body)
        else:
            self.finish_estimated()

    def finish_estimated(self) -> None:
        """End the span of a response whose body the user never read: the request was sent and its
        input billed, so the input estimate is settled (marked estimated), not nothing."""
        usage = estimated_usage(self.operation.request, CharCounter(), f"{self.log_prefix}raw response input estimate")
        self.operation.finish(Outcome(usage=usage, usage_source=sc.AiCostUsageSourceValues.ESTIMATED))

    def finish_unparsed(self, raw: Any, body_read: bool = False) -> None:
        """End the span of a raw response closed, dropped or read (``body_read``: ``read()``,
        ``text()``, ``json()``) without ``parse()``: from the body bytes it holds, else with the input
        estimate."""
        if self.operation.ended:
            return
        data = held_body(raw) if body_read or self.uses_held_body else None
        if data is not None:
            self.finish_from_body(raw, data)
        else:
            self.finish_estimated()


class RawResponseProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]  # wrapt's proxy is untyped
    """A raw response not parsed yet: the span ends when the body is parsed, read, closed (leaving
    the ``with`` block) or the response dropped (see the module doc).

    ``stream``: the stream proxy already made from the parsed response (it owns the span).
    """

    def __init__(self, wrapped: Any, call: StainlessCall, stream: Any = None) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_parsed: Any = stream  # what parse() handed out (the stream proxy of a stream)
        # References the SDK response, never this proxy (the finalizer must not keep it alive).
        self._self_finalizer = (None if stream is not None
                                else end_when_collected(self, functools.partial(call.finish_unparsed, wrapped)))

    def _self_detach(self) -> None:
        if self._self_finalizer is not None:
            self._self_finalizer.detach()

    def _self_handle(self, parsed: Any) -> Any:
        if self._self_parsed is not None:
            return self._self_parsed
        call = self._self_call
        if call.is_stream:
            stream = safe(f"{call.log_prefix}raw stream", call.wrap_stream, parsed)
            if stream is None:  # not wrapped: the finalizer still ends the span
                return parsed
            self._self_parsed = stream
        else:
            safe(f"{call.log_prefix}raw response", call.finish_with, parsed)
            self._self_parsed = parsed
        self._self_detach()  # the span is ended, or the stream proxy now owns it
        return self._self_parsed

    def _self_body_read(self) -> None:
        """The user read the whole body without parse(): end the span from those bytes."""
        if self._self_parsed is not None:
            return
        self._self_detach()
        safe(f"{self._self_call.log_prefix}raw body", self._self_call.finish_unparsed, self.__wrapped__, True)

    def _self_closed(self) -> None:
        call = self._self_call
        if self._self_parsed is not None:
            if call.is_stream:
                safe(f"{call.log_prefix}raw stream close", end_stream_proxy, self._self_parsed)
            return
        self._self_detach()
        safe(f"{call.log_prefix}raw close", call.finish_unparsed, self.__wrapped__)

    def _self_failed(self, exc: BaseException) -> None:
        self._self_detach()
        self._self_call.operation.fail(exc)



class LegacyResponseProxy(RawResponseProxy):
    """A synchronous raw response whose ``parse()`` and ``close()`` only are intercepted: the
    ``LegacyAPIResponse`` of ``openai`` (``text`` is a property there, its body is read at once)."""

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            parsed = self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:  # cancellation ends the span too
            self._self_failed(exc)
            raise
        if args or kwargs.get("to") is not None:
            return parsed
        return self._self_handle(parsed)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_closed()


class APIResponseProxy(LegacyResponseProxy):
    """An ``APIResponse``: ``parse()``, ``close()``, and the whole-body reads ``read()`` / ``text()`` / ``json()``."""

    def _self_read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = getattr(self.__wrapped__, method)(*args, **kwargs)
        except BaseException as exc:  # a broken connection, an interrupt
            self._self_failed(exc)
            raise
        self._self_body_read()
        return result

    def read(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_read("read", *args, **kwargs)

    def text(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_read("text", *args, **kwargs)

    def json(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_read("json", *args, **kwargs)


class AsyncAPIResponseProxy(RawResponseProxy):
    """The ``AsyncAPIResponse`` counterpart of ``APIResponseProxy``."""

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            parsed = await self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:  # cancellation ends the span too
            self._self_failed(exc)
            raise
        if args or kwargs.get("to") is not None:
            return parsed
        return self._self_handle(parsed)

    async def _self_read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await getattr(self.__wrapped__, method)(*args, **kwargs)
        except BaseException as exc:  # a broken connection, a cancellation
            self._self_failed(exc)
            raise
        self._self_body_read()
        return result

    async def read(self, *args: Any, **kwargs: Any) -> Any:
        return await self._self_read("read", *args, **kwargs)

    async def text(self, *args: Any, **kwargs: Any) -> Any:
        return await self._self_read("text", *args, **kwargs)

    async def json(self, *args: Any, **kwargs: Any) -> Any:
        return await self._self_read("json", *args, **kwargs)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_closed()
