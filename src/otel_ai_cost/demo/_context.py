"""What the demo's sections share: the client, the fake server, the spans, the output, and the
switchable cost processor through which a section runs its calls under its own budgets."""
from __future__ import annotations

import contextlib
import textwrap
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Sequence, TextIO

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ._fake_openai import FakeOpenAIServer

# The demo's output fits a terminal this wide.
WIDTH = 100


class CostProcessorSwitch(SpanProcessor):
    """Delegates to one AICostSpanProcessor, which a demo section may replace for its calls."""

    def __init__(self, processor: SpanProcessor) -> None:
        self.processor = processor
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def using(self, processor: SpanProcessor) -> Iterator[SpanProcessor]:
        """Send the spans started in the block to ``processor`` (which the caller shuts down)."""
        with self._lock:
            previous, self.processor = self.processor, processor
        try:
            yield processor
        finally:
            with self._lock:
                self.processor = previous

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        self.processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        on_ending = getattr(self.processor, "_on_ending", None)
        if on_ending is not None:
            on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.processor.on_end(span)

    def shutdown(self) -> None:
        self.processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.processor.force_flush(timeout_millis)


@dataclass
class DemoContext:
    """What a demo section works with."""

    client: Any
    server: FakeOpenAIServer
    spans: Callable[[], Sequence[ReadableSpan]]
    out: TextIO
    errors: List[str] = field(default_factory=list)
    cost_processor: Optional[CostProcessorSwitch] = None  # the tracer provider's AICostSpanProcessor
    settings: Any = None  # otel_ai_cost.config.Settings of the demo's processors

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def wrap(self, text: str, indent: str = "  ", subsequent: Optional[str] = None) -> None:
        """Print ``text`` wrapped to the demo's width."""
        for line in textwrap.wrap(text, width=WIDTH - 4, initial_indent=indent,
                                  subsequent_indent=indent if subsequent is None else subsequent,
                                  break_on_hyphens=False, break_long_words=False):
            self.print(line)
