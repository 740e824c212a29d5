"""The OpenAI chat format that ``openai``, ``groq`` and ``mistralai`` share.

- ``_format``: request attributes of chat completions and embeddings, the text of message content;
- ``_response``: usage, finish reasons and the outcomes of chat completions and embeddings;
- ``_stream``: ``ChatStreamState``, the state of a stream of chat completion chunks.

The ``openai.*`` attributes set here are those of the OpenAI API itself; a provider that is not
OpenAI drops them.
"""
from ._format import (
    chat_request_attributes,
    content_text,
    embeddings_request_attributes,
    max_tokens,
    output_type_from_format,
    penalty_attributes,
    plain,
    request_attributes,
    sampling_attributes,
    stop_seed_choices_attributes,
)
from ._response import UsageReader, chat_outcome, chat_usage, embeddings_outcome, finish_reasons
from ._stream import ChatStreamState

__all__ = [
    "ChatStreamState", "UsageReader",
    "chat_outcome", "chat_request_attributes", "chat_usage", "content_text", "embeddings_outcome",
    "embeddings_request_attributes", "finish_reasons", "max_tokens", "output_type_from_format",
    "penalty_attributes", "plain", "request_attributes", "sampling_attributes", "stop_seed_choices_attributes",
]
