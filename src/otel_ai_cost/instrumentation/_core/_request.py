"""The request attributes every provider builds the same way: the span name, the attributes every
request has (operation, provider, model, server), the server of a base URL, and the sampling
numbers. What a provider reads them from (keyword arguments, a config object) stays its own."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

from ... import _semconv as sc
from ._readers import as_num

# (argument name, attribute) of the sampling numbers most SDKs name alike; a provider with other
# names passes its own pairs to ``number_attributes``.
SAMPLING_NUMBERS: Tuple[Tuple[str, str], ...] = (
    ("temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", sc.GEN_AI_REQUEST_TOP_P),
    ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY),
)


def span_name(operation: str, model: Optional[str]) -> str:
    """The GenAI span name: ``"{operation} {model}"``, or the operation alone without a model."""
    return f"{operation} {model}" if model else operation


def url_host_port(url: Any) -> Tuple[Optional[str], Optional[int]]:
    """``server.address`` and ``server.port`` of a base URL string; the port defaults to the
    scheme's (80 for http, 443 otherwise). ``(None, None)`` when there is no host."""
    if not isinstance(url, str) or not url:
        return None, None
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return None, None
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: the default one
        port = None
    if port is None:
        port = 80 if parts.scheme == "http" else 443
    return host, port


def base_attributes(operation: str, provider: str, model: Any,
                    server: Tuple[Optional[str], Optional[int]]) -> Dict[str, Any]:
    """The attributes every request has: operation, provider, the model when it is a non-empty
    string, and the server (``server`` is a ``(host, port)`` pair; no host, no server attributes)."""
    attrs: Dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_PROVIDER_NAME: provider}
    if isinstance(model, str) and model:
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    host, port = server
    if host:
        attrs[sc.SERVER_ADDRESS] = host
        attrs[sc.SERVER_PORT] = port
    return attrs


def number_attributes(attrs: Dict[str, Any], read: Callable[[str], Any],
                      names: Iterable[Tuple[str, str]] = SAMPLING_NUMBERS,
                      convert: Callable[[Any], Any] = as_num) -> None:
    """Set ``attrs[attribute] = convert(read(argument))`` for each ``(argument, attribute)`` of
    ``names`` whose converted value is not None (``as_num``: numbers as floats, bools are not
    numbers; ``as_int`` for counts such as max tokens or a seed)."""
    for key, attr in names:
        value = convert(read(key))
        if value is not None:
            attrs[attr] = value


def string_list(value: Any) -> Optional[List[str]]:
    """The strings of a list or tuple argument (stop sequences, formats); None for anything else."""
    if isinstance(value, (list, tuple)):
        return [s for s in value if isinstance(s, str)]
    return None
