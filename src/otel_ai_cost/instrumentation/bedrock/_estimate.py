"""The input estimate of a Bedrock call, before it is sent (for the budget decision).

No public tokenizer exists for most Bedrock models: the text of the request is counted with the
calibrated heuristic (``otel_ai_cost.tokens``) and the per-vendor overhead below is added.
"""
from __future__ import annotations

import json
from typing import Any, List, Mapping, Optional, Tuple

from ..._request import TokenCount
from ._attributes import as_dict, as_list, is_embedding_model, model_family

# Calibrated on the recorded requests (benchmarks/estimation_error_bedrock.py): tokens added
# around the text, per model vendor: (per request, per message, tools block, per tool-call block).
# The tools block is the system prompt the model adds when tools are given: Anthropic documents
# it per model (264 Claude 3 / 3.5 Haiku, 294 Claude 3.5 Sonnet, 346 the Claude 3.7 / 4 family,
# "auto" tool choice); Nova's was measured on the recordings. A tool call or tool result in the
# history costs more than its JSON (the model's own call format around it).
_OVERHEAD = {
    "anthropic": (6, 3, 346, 35),
    "amazon": (0, 0, 348, 13),
    "meta": (0, 0, 0, 0),
    "mistral": (1, 0, 0, 0),
    "cohere": (0, 0, 0, 0),
}
_DEFAULT_OVERHEAD = (0, 3, 0, 0)
_ANTHROPIC_TOOLS_PROMPT = (("claude-3-haiku", 264), ("claude-3-5-haiku", 264), ("claude-3-5-sonnet", 294),
                           ("claude-3-opus", 530), ("claude-3-sonnet", 159))
_TITAN_CONVERSE_PER_MESSAGE = 3
_TOOL_BLOCK_KEYS = ("toolUse", "toolResult")
_TOOL_BLOCK_TYPES = ("tool_use", "tool_result")


def _overhead(model_id: Optional[str]) -> Tuple[int, int, int, int]:
    vendor, model = model_family(model_id)
    per_request, per_message, per_tools, per_call = _OVERHEAD.get(vendor, _DEFAULT_OVERHEAD)
    if vendor == "anthropic":
        for prefix, tokens in _ANTHROPIC_TOOLS_PROMPT:
            if model.startswith(prefix):
                per_tools = tokens
                break
    return per_request, per_message, per_tools, per_call


def _tool_blocks(messages: List[Any]) -> int:
    count = 0
    for message in messages:
        for block in as_list(as_dict(message).get("content")):
            if isinstance(block, dict) and (any(k in block for k in _TOOL_BLOCK_KEYS)
                                            or block.get("type") in _TOOL_BLOCK_TYPES):
                count += 1
    return count


def _texts(value: Any, out: List[str]) -> None:
    """Every text in a Converse / Anthropic / Nova content structure (images and documents skipped)."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _texts(item, out)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("image", "document", "video", "source", "cachePoint", "cache_control", "bytes",
                       "toolUseId", "tool_use_id", "id", "type", "role", "signature", "p"):
                continue
            if key in ("input", "json", "inputSchema", "input_schema") and not isinstance(item, str):
                out.append(json.dumps(item, separators=(",", ":")))
                continue
            _texts(item, out)


def _count(texts: List[str], model: str) -> Tuple[int, str]:
    from ...tokens import count_text

    total = 0
    method = "heuristic"
    for text in texts:
        counted = count_text(text, model)
        total += counted.tokens
        method = counted.method
    return total, method


def estimate_converse_input(model_id: Optional[str], params: Mapping[str, Any]) -> TokenCount:
    vendor, model = model_family(model_id)
    per_request, per_message, per_tools, per_call = _overhead(model_id)
    if vendor == "amazon" and model.startswith("titan"):
        per_message = _TITAN_CONVERSE_PER_MESSAGE
    messages = as_list(params.get("messages"))
    texts: List[str] = []
    _texts(messages, texts)
    _texts(params.get("system"), texts)
    tools = as_list(as_dict(params.get("toolConfig")).get("tools"))
    _texts(tools, texts)
    tokens, method = _count(texts, model_id or "")
    tokens += per_request + per_message * len(messages) + (per_tools if tools else 0)
    tokens += per_call * _tool_blocks(messages)
    return TokenCount(tokens, method)


def estimate_invoke_input(model_id: Optional[str], body: Optional[Mapping[str, Any]]) -> TokenCount:
    if body is None:
        return TokenCount(0, "heuristic")
    per_request, per_message, per_tools, per_call = _overhead(model_id)
    texts: List[str] = []
    messages = as_list(body.get("messages"))
    if is_embedding_model(model_id):
        per_request = per_message = per_tools = per_call = 0
        _texts(body.get("inputText"), texts)
        _texts(body.get("texts"), texts)
    elif messages:
        _texts(messages, texts)
        _texts(body.get("system"), texts)
    else:
        per_message = 0
        for key in ("inputText", "prompt", "message", "chat_history", "documents"):
            _texts(body.get(key), texts)
    tools = as_list(body.get("tools")) or as_list(as_dict(body.get("toolConfig")).get("tools"))
    _texts(tools, texts)
    tokens, method = _count(texts, model_id or "")
    tokens += per_request + per_message * len(messages) + (per_tools if tools else 0)
    tokens += per_call * _tool_blocks(messages)
    return TokenCount(tokens, method)


