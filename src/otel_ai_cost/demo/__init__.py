"""The ``otel-ai-cost demo``: an instrumented app against a local fake OpenAI API."""
from ._app import run_demo
from ._fake_openai import FakeOpenAIServer

__all__ = ["FakeOpenAIServer", "run_demo"]
