"""Redis AUTH (password, ACL user) and TLS (rediss://, CA file, client certificate), against a real
redis-server started by each test (issue 8, item 4). The installed redis-server supports TLS
(``--tls-port``); these tests fail, not skip, if it does not.
"""
from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
import redis

from _redis_server import redis_server
from otel_ai_cost.budgets import HoldRequest, load_budget_config
from otel_ai_cost.budgets._redis import RedisBudgetStore
from otel_ai_cost.errors import ConfigError
from test_budgets_resilience import Pipeline, to_nanos, unwrap

PASSWORD = "s3cret-Pa55"
SLOT = ("team", "", "lifetime")


def round_trip(store) -> None:
    """A hold and its settle, read back: the store works with these credentials."""
    assert store.reserve([HoldRequest(*SLOT, 100, 5)], "r1", 60).ok
    store.settle("r1", {SLOT: 7})
    assert store.spent(SLOT[0], SLOT[1], [SLOT[2]]).spent == 7


def config_file(tmp_path: Path, url: str, store_extra: str = "", on_store_error: str = "closed") -> Path:
    path = tmp_path / "otel-ai-cost.yaml"
    path.write_text(textwrap.dedent(f"""\
        budgets:
          - {{id: team, limit_usd: 100, window: lifetime}}
        store:
          url: {url}
          on_store_error: {on_store_error}
          journal: false
        """) + textwrap.indent(textwrap.dedent(store_extra), "  "))
    return path


def test_password_in_the_url(tmp_path):
    with redis_server(tmp_path, password=PASSWORD) as url:
        assert f":{PASSWORD}@" in url
        store = RedisBudgetStore(url)
        round_trip(store)
        store.close()


def test_password_from_the_environment_through_the_sdk(tmp_path, monkeypatch, caplog):
    with redis_server(tmp_path, password=PASSWORD) as url:
        bare = url.replace(f":{PASSWORD}@", "")
        monkeypatch.setenv("TEST_REDIS_PASSWORD", PASSWORD)
        p = Pipeline(config_file(tmp_path, bare, "password_env: TEST_REDIS_PASSWORD\n"))
        try:
            p.chat(model="gpt-4o-mini", max_tokens=20)
            assert unwrap(p.store).spent(*SLOT[:2], [SLOT[2]]).spent == to_nanos(p.costs()) > 0
        finally:
            p.close()
        assert PASSWORD not in caplog.text


def test_a_wrong_password_refuses_calls_when_closed_without_showing_the_password(tmp_path, caplog):
    with redis_server(tmp_path, password=PASSWORD) as url:
        wrong = url.replace(PASSWORD, "not-the-password")
        p = Pipeline(config_file(tmp_path, wrong))
        try:
            with pytest.raises(Exception) as raised:
                p.chat(model="gpt-4o-mini", max_tokens=20)
            assert type(raised.value).__name__ == "BudgetExceededError"
            message = str(raised.value)
            assert "budget store redis://:***@127.0.0.1" in message
            assert "invalid username-password pair" in message or "WRONGPASS" in message
            assert "not-the-password" not in message and "not-the-password" not in caplog.text
            assert p.fake.requests == []
        finally:
            p.close()


def test_acl_user_in_the_url_and_in_the_configuration(tmp_path):
    with redis_server(tmp_path, acl_user=("budgets", PASSWORD)) as url:
        # The default user is off: without the user, nothing works.
        with pytest.raises(Exception, match="NOAUTH|Authentication required"
                                             "|must be called with the client already authenticated"):
            RedisBudgetStore(url).controls()
        store = RedisBudgetStore(url.replace("://", f"://budgets:{PASSWORD}@", 1), prefix="in-url")
        round_trip(store)
        store.close()
        config = load_budget_config(config_file(tmp_path, url, f"username: budgets\npassword: {PASSWORD}\n"))
        opened = config.open_store()
        assert not opened.down
        unwrap(opened)._prefix = "in-config"
        round_trip(opened)
        opened.close()


def test_tls_with_the_ca_in_the_url(tmp_path):
    with redis_server(tmp_path, tls=True) as url:
        assert url.startswith("rediss://")
        store = RedisBudgetStore(url)
        round_trip(store)
        store.close()


def test_tls_with_a_ca_file_and_a_client_certificate_through_the_sdk(tmp_path):
    with redis_server(tmp_path, tls=True, client_certs=True, acl_user=("budgets", PASSWORD)) as url:
        bare = f"rediss://127.0.0.1:{url.port}/0"
        # No client certificate: the server refuses the handshake.
        without = RedisBudgetStore(bare, ca_file=url.ca_file, username="budgets", password=PASSWORD)
        with pytest.raises(redis.exceptions.ConnectionError):
            without.controls()
        # Not trusting the server's certificate: refused too.
        with pytest.raises(Exception, match="certificate verify failed"):
            RedisBudgetStore(bare, cert_file=url.client_cert, username="budgets", password=PASSWORD).controls()
        extra = f"username: budgets\npassword_env: TEST_PW\nca_file: {url.ca_file}\ncert_file: {url.client_cert}\n"
        import os

        os.environ["TEST_PW"] = PASSWORD
        try:
            p = Pipeline(config_file(tmp_path, bare, extra))
            try:
                p.chat(model="gpt-4o-mini", max_tokens=20)
                p.chat(model="gpt-4o-mini", max_tokens=20)
                assert not p.store.down
                assert unwrap(p.store).spent(*SLOT[:2], [SLOT[2]]).spent == to_nanos(p.costs()) > 0
                assert len(unwrap(p.store).ledger(kind="settle")) == 2
            finally:
                p.close()
        finally:
            del os.environ["TEST_PW"]


def test_configuration_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"store.ca_file: a CA file or client certificate needs TLS: use rediss://"):
        load_budget_config(config_file(tmp_path, "redis://127.0.0.1:6379/0", f"ca_file: {tmp_path}\n"))
    with pytest.raises(ConfigError, match=r"store.ca_file: no such file"):
        load_budget_config(config_file(tmp_path, "rediss://127.0.0.1:6379/0", "ca_file: missing.pem\n"))
    with pytest.raises(ConfigError, match=r"store.username: applies to a Redis store only"):
        load_budget_config(config_file(tmp_path, "sqlite://b.db", "username: me\n"))
    with pytest.raises(ConfigError, match=r"store.password_env: give password or password_env, not both"):
        load_budget_config(config_file(tmp_path, "redis://h:1/0", "password: a\npassword_env: B\n"))


def test_an_unset_password_variable_refuses_calls_with_its_name(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("NO_SUCH_REDIS_PASSWORD", raising=False)
    caplog.set_level(logging.WARNING)
    config = load_budget_config(config_file(tmp_path, "redis://127.0.0.1:1/0",
                                            "password_env: NO_SUCH_REDIS_PASSWORD\n"))
    store = config.open_store()
    assert store.down and "the environment variable NO_SUCH_REDIS_PASSWORD is not set" in store.reason
    store.close()
