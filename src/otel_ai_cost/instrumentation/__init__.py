"""Auto-instrumentors, one package per provider SDK, around one core (``_core``).

``flush_abandoned_streams`` ends, at shutdown, the spans of streams the application dropped
without closing; ``set_stream_idle_timeout`` sets how long an unread stream may wait before the
reaper looks at it.
"""
from ._core import flush_abandoned_streams, set_stream_idle_timeout

__all__ = ["flush_abandoned_streams", "set_stream_idle_timeout"]
