"""``python -m otel_ai_cost``: the same as the ``otel-ai-cost`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
