"""The input estimate of Cohere v2 requests (billed input tokens, for budgets): Cohere's tokenizer is
not available offline, so a heuristic calibrated on the recorded requests counts the message texts,
tool definitions, tool calls and results (see the package doc)."""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from ..._request import TokenCount
from .._core import log_once, tokens_module
from ._attributes import plain

TOOL_DEFINITION_TOKENS = 2
TOOL_CALL_TOKENS = 1
TOOL_RESULT_TOKENS = 1


def _count(text: Any) -> int:
    if not isinstance(text, str) or not text:
        return 0
    count: int = tokens_module().heuristic_tokens(text)
    return count


def _heuristic() -> str:
    method: str = tokens_module().HEURISTIC
    return method


def _parameter_tokens(name: Any, schema: Any) -> int:
    """One parameter of a tool definition (v2 JSON-schema property, v1 parameter definition): its
    name, type and description."""
    tokens = _count(str(name))
    if isinstance(schema, Mapping):
        tokens += _count(schema.get("type") if isinstance(schema.get("type"), str) else "")
        tokens += _count(schema.get("description"))
    return tokens


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return _count(content)
    tokens = 0
    for part in content or () if isinstance(content, (list, tuple)) else ():
        part = plain(part)
        if isinstance(part, Mapping):
            text = part.get("text")
            if isinstance(text, str):
                tokens += _count(text)
            elif isinstance(part.get("document"), Mapping):
                tokens += _count(json.dumps(part["document"], default=str))
        elif isinstance(part, str):
            tokens += _count(part)
    return tokens


def _tool_tokens(tool: Any) -> int:
    tool = plain(tool)
    if not isinstance(tool, Mapping):
        return 0
    function = plain(tool.get("function")) if "function" in tool else tool
    if not isinstance(function, Mapping):
        return 0
    tokens = TOOL_DEFINITION_TOKENS + _count(function.get("name")) + _count(function.get("description"))
    params = function.get("parameters") or {}
    props = params.get("properties") if isinstance(params, Mapping) else None
    if isinstance(props, Mapping):
        for name, schema in props.items():
            tokens += _parameter_tokens(name, schema)
    elif params:
        tokens += _count(json.dumps(params, default=str))
    return tokens


def estimate_chat(messages: Any, tools: Any = None, documents: Any = None) -> TokenCount:
    """Billed input tokens of a Cohere v2 chat request (calibrated heuristic)."""
    try:
        tokens = 0
        for message in messages or ():
            m = plain(message)
            if not isinstance(m, Mapping):
                tokens += _count(str(m))
                continue
            tokens += _content_tokens(m.get("content"))
            if m.get("role") == "tool":
                tokens += TOOL_RESULT_TOKENS
            tokens += _count(m.get("tool_plan"))
            for call in m.get("tool_calls") or ():
                call = plain(call)
                function = plain(call.get("function")) if isinstance(call, Mapping) else None
                if isinstance(function, Mapping):
                    args = function.get("arguments")
                    args = args if isinstance(args, str) else json.dumps(args, default=str)
                    tokens += TOOL_CALL_TOKENS + _count(function.get("name")) + _count(args)
        for tool in tools or ():
            tokens += _tool_tokens(tool)
        for document in documents or ():
            document = plain(document)
            tokens += _count(document if isinstance(document, str) else json.dumps(document, default=str))
        return TokenCount(tokens, _heuristic())
    except Exception as exc:  # noqa: BLE001
        log_once("cohere estimate", exc)
        return TokenCount(0, _heuristic())


def estimate_embed(texts: Any) -> TokenCount:
    if isinstance(texts, str):
        texts = [texts]
    return TokenCount(sum(_count(t) for t in texts or () if isinstance(t, str)), _heuristic())


def lazy_estimate(kind: str, kwargs: Mapping[str, Any]) -> Callable[[], TokenCount]:
    """The input estimate of a call, computed only when a span processor asks for it."""
    if kind == "embeddings":
        def estimate() -> TokenCount:
            return estimate_embed(kwargs.get("texts"))
    else:
        def estimate() -> TokenCount:
            tools = kwargs.get("tools")
            documents = kwargs.get("documents")
            return estimate_chat(kwargs.get("messages") or [],
                                 tools if isinstance(tools, (list, tuple)) else None,
                                 documents if isinstance(documents, (list, tuple)) else None)
    return estimate


# ---------------------------------------------------------------------------------------------
# API v1: ``message`` + ``preamble`` + ``chat_history``, v1 tools (``parameter_definitions``),
# ``tool_results``, ``documents``; ``generate``'s ``prompt``. Same weights as v2.


def _json_tokens(value: Any) -> int:
    value = plain(value)
    return _count(value if isinstance(value, str) else json.dumps(value, default=str))


def _v1_tool_tokens(tool: Any) -> int:
    tool = plain(tool)
    if not isinstance(tool, Mapping):
        return 0
    tokens = TOOL_DEFINITION_TOKENS + _count(tool.get("name")) + _count(tool.get("description"))
    params = plain(tool.get("parameter_definitions"))
    if isinstance(params, Mapping):
        for name, schema in params.items():
            tokens += _parameter_tokens(name, plain(schema))
    return tokens


def _v1_calls_tokens(calls: Any) -> int:
    tokens = 0
    for call in calls or () if isinstance(calls, (list, tuple)) else ():
        call = plain(call)
        if isinstance(call, Mapping):
            tokens += TOOL_CALL_TOKENS + _count(call.get("name")) + _json_tokens(call.get("parameters") or {})
    return tokens


def _v1_results_tokens(results: Any) -> int:
    tokens = 0
    for result in results or () if isinstance(results, (list, tuple)) else ():
        result = plain(result)
        if isinstance(result, Mapping):
            tokens += TOOL_RESULT_TOKENS + _json_tokens(result.get("outputs") or [])
    return tokens


def estimate_v1_chat(message: Any, preamble: Any = None, chat_history: Any = None, tools: Any = None,
                     tool_results: Any = None, documents: Any = None) -> TokenCount:
    """Billed input tokens of a Cohere v1 chat request (the v2 heuristic, on the v1 fields)."""
    try:
        tokens = _count(message) + _count(preamble)
        for entry in chat_history or () if isinstance(chat_history, (list, tuple)) else ():
            entry = plain(entry)
            if not isinstance(entry, Mapping):
                continue
            tokens += _count(entry.get("message"))
            tokens += _v1_calls_tokens(entry.get("tool_calls"))
            tokens += _v1_results_tokens(entry.get("tool_results"))
        for tool in tools or () if isinstance(tools, (list, tuple)) else ():
            tokens += _v1_tool_tokens(tool)
        tokens += _v1_results_tokens(tool_results)
        for document in documents or () if isinstance(documents, (list, tuple)) else ():
            tokens += _json_tokens(document)
        return TokenCount(tokens, _heuristic())
    except Exception as exc:  # noqa: BLE001
        log_once("cohere v1 estimate", exc)
        return TokenCount(0, _heuristic())


def estimate_generate(prompt: Any) -> TokenCount:
    """Billed input tokens of a v1 ``generate`` request: its prompt."""
    return TokenCount(_count(prompt), _heuristic())


def lazy_v1_estimate(kind: str, kwargs: Mapping[str, Any]) -> Callable[[], TokenCount]:
    """The input estimate of a v1 call (``generate*`` or ``chat*``), computed only when asked for."""
    if kind.startswith("generate"):
        def estimate() -> TokenCount:
            return estimate_generate(kwargs.get("prompt"))
    else:
        def estimate() -> TokenCount:
            return estimate_v1_chat(kwargs.get("message"), kwargs.get("preamble"), kwargs.get("chat_history"),
                                    kwargs.get("tools"), kwargs.get("tool_results"), kwargs.get("documents"))
    return estimate
