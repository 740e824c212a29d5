"""The Redis client of the budget store: URL, AUTH, TLS and timeouts (see ``RedisBudgetStore``)."""
from __future__ import annotations

from typing import Any, Optional

# Seconds: connect and command timeout unless the URL says otherwise.
DEFAULT_TIMEOUT = 1.0


def connect(
    url: str, client: Any, *, username: Optional[str], password: Optional[str], ca_file: Optional[str],
    cert_file: Optional[str], key_file: Optional[str], timeout: float,
) -> Any:
    """A client for ``url`` with these options (``client``, when given, is used as it is, once the
    options are checked). A CA file or a client certificate needs ``rediss://``; ``username`` and
    ``password`` win over the URL's; no retries in the client."""
    import redis  # optional dependency: pip install redis

    tls = {"ssl_ca_certs": ca_file, "ssl_certfile": cert_file, "ssl_keyfile": key_file}
    tls = {k: v for k, v in tls.items() if v}
    if tls and not url.startswith("rediss://"):
        raise ValueError("a CA file or client certificate needs TLS: write the URL as rediss://host:port")
    if tls.get("ssl_certfile") and not tls.get("ssl_keyfile"):
        tls["ssl_keyfile"] = tls["ssl_certfile"]  # one PEM with both
    auth = {k: v for k, v in (("username", username), ("password", password)) if v is not None}
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if client:
        return client
    made = redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # No retries in the client (redis-py retries a timed-out command up to 10 times): a store
        # that does not answer is the circuit breaker's business (ResilientStore).
        retry=Retry(NoBackoff(), 0),
        **tls,
    )
    if auth:
        # Explicit options win over the URL's (from_url lets the URL's win over keyword arguments).
        made.connection_pool.connection_kwargs.update(auth)
    return made
