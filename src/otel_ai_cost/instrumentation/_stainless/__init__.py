"""What the Stainless-generated SDKs (``openai``, ``groq``, ``anthropic``) share besides the chat format.

- ``_router``: ``RequestRouter``, the instrumentation in force and the clients' ``request`` fallback
  (``with_raw_response`` / ``with_streaming_response`` are cached per resource object, bound to the
  ``create`` they found first);
- ``_raw``: ``StainlessCall`` (streams, raw responses, the body the user read) and the one
  raw-response proxy of ``with_raw_response`` / ``with_streaming_response`` results.
"""
from ._raw import (
    APIResponseProxy,
    AsyncAPIResponseProxy,
    LegacyResponseProxy,
    RawResponseProxy,
    StainlessCall,
    held_body,
    sdk_types,
    sse_chunks,
)
from ._router import RequestRouter

__all__ = [
    "APIResponseProxy", "AsyncAPIResponseProxy", "LegacyResponseProxy", "RawResponseProxy", "RequestRouter",
    "StainlessCall", "held_body", "sdk_types", "sse_chunks",
]
