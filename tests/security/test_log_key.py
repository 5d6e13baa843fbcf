"""Customer ids in the worker's logs: HMAC-SHA256 under LOYALTY_LOG_KEY when it is set."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest

from streams.settings import Settings
from streams.worker.logs import customer_ref, redacted, use_log_key


@pytest.fixture(autouse=True)
def _no_key_after() -> Iterator[None]:
    yield
    use_log_key(None)


def test_without_a_key_the_ref_is_the_plain_hash() -> None:
    use_log_key(None)
    assert customer_ref("c-0001234") == hashlib.sha256(b"c-0001234").hexdigest()[:16]


def test_with_a_key_the_ref_is_an_hmac_that_a_guessed_id_does_not_reproduce() -> None:
    use_log_key("k-1")
    keyed = customer_ref("c-0001234")
    assert keyed == hmac.new(b"k-1", b"c-0001234", hashlib.sha256).hexdigest()[:16]
    # someone hashing candidate ids without the key never finds this ref
    assert keyed != hashlib.sha256(b"c-0001234").hexdigest()[:16]
    assert customer_ref("c-0001234") == keyed != customer_ref("c-0001235")
    assert (
        redacted("customer c-0001234 unknown", "c-0001234")
        == f"customer <customer {keyed}> unknown"
    )
    use_log_key("k-2")
    assert customer_ref("c-0001234") != keyed


def test_the_key_is_a_secret_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_LOG_KEY", "pepper-77")
    settings = Settings()
    assert settings.log_key is not None and settings.log_key.get_secret_value() == "pepper-77"
    assert "pepper-77" not in repr(settings)
