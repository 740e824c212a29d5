"""Small pure readers of SDK objects (models, dicts, the Stainless sentinels), shared by every provider."""
from __future__ import annotations

from collections.abc import Iterator as _IteratorABC
from collections.abc import Mapping as _MappingABC
from typing import Any, Dict, Optional, Tuple

MISSING = object()


def given(value: Any) -> bool:
    """False for None and the Stainless SDKs' ``NOT_GIVEN`` / ``omit`` sentinels."""
    if value is None:
        return False
    name = type(value).__name__
    return name not in ("NotGiven", "Omit")


def get(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``: attribute first (SDK models), Mapping only as the fallback.

    For a name the SDK model does not declare (an extra field at most), ``get_extra`` is cheaper."""
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    try:
        value = getattr(obj, name, MISSING)
    except Exception:
        value = MISSING
    if value is not MISSING:
        return value
    if isinstance(obj, _MappingABC):
        try:
            return obj.get(name)
        except Exception:
            return None
    return None


# (pydantic model class, name) -> whether ``name`` is neither a field nor a class attribute of it, so
# that ``getattr`` could only find it among the instance's extra fields, by way of pydantic's
# ``__getattr__``, which raises (and the exception costs more than the rest of the read) when it is
# not there.
_EXTRA_ONLY: Dict[Tuple[type, str], bool] = {}
_EXTRA_ONLY_SIZE = 1024


def _pydantic_getattr_only(cls: type) -> bool:
    """Whether the only ``__getattr__`` of ``cls`` is pydantic's own (extra fields, then AttributeError)."""
    return all("__getattr__" not in vars(k) for k in cls.__mro__ if not k.__module__.startswith("pydantic."))


def _extra_only(cls: type, name: str) -> bool:
    key = (cls, name)
    known = _EXTRA_ONLY.get(key)
    if known is None:
        fields = getattr(cls, "__pydantic_fields__", None)
        known = (isinstance(fields, dict) and name not in fields and not name.startswith("_")
                 and not hasattr(cls, name) and _pydantic_getattr_only(cls))
        if len(_EXTRA_ONLY) >= _EXTRA_ONLY_SIZE:
            _EXTRA_ONLY.clear()
        _EXTRA_ONLY[key] = known
    return known


def get_extra(obj: Any, name: str) -> Any:
    """``get`` for a name that the SDK's model may lack, so that it is at most an extra field (a
    gateway's ``usage.cost``, ``cached_tokens_details``, a field of a newer API than the SDK): read
    from the instance's extra fields without pydantic's AttributeError when it is absent. Only at the
    few sites that read such names: every other read is ``get``'s plain ``getattr``."""
    if obj is None:
        return None
    cls = type(obj)
    if cls is not dict and _extra_only(cls, name):
        try:  # what pydantic's __getattr__ would find, without its AttributeError when it is absent
            value = obj.__dict__.get(name, MISSING)
            if value is MISSING:
                extra = obj.__pydantic_extra__
                value = extra.get(name) if extra else None
            return value
        except Exception:
            return None
    return get(obj, name)


def as_int(value: Any) -> Optional[int]:
    """``value`` if it is an int (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def as_num(value: Any) -> Optional[float]:
    """``value`` as a float if it is an int or a float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def as_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def materialize(kwargs: Dict[str, Any], key: str) -> None:
    """Turn a one-shot iterator argument into a list so the lazy estimate cannot consume it."""
    value = kwargs.get(key)
    if isinstance(value, _IteratorABC):
        kwargs[key] = list(value)


# id(base_url) -> (base_url, (host, port)): a client's URL object is immutable and long-lived,
# so host and port are parsed once per URL, not twice per call. The URL is kept in the value so
# a reused id() cannot match.
_HOST_PORT: Dict[int, Tuple[Any, Tuple[Optional[str], Optional[int]]]] = {}
_HOST_PORT_SIZE = 256


def host_port(client: Any) -> Tuple[Optional[str], Optional[int]]:
    """``server.address`` and ``server.port`` of a Stainless SDK client (openai, groq, anthropic),
    from its ``base_url``."""
    url = get(client, "base_url")
    if url is None or type(url) is str or type(url) is dict:
        return _parse_host_port(url)
    hit = _HOST_PORT.get(id(url))
    if hit is not None and hit[0] is url:
        return hit[1]
    result = _parse_host_port(url)
    if len(_HOST_PORT) >= _HOST_PORT_SIZE:
        _HOST_PORT.clear()
    _HOST_PORT[id(url)] = (url, result)
    return result


def _parse_host_port(url: Any) -> Tuple[Optional[str], Optional[int]]:
    host = as_str(get(url, "host"))
    if not host:
        return None, None
    port = as_int(get(url, "port"))
    if port is None:
        port = 443 if get(url, "scheme") == "https" else 80
    return host, port
