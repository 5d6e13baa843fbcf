"""LOYALTY_KAFKA_* settings into librdkafka's and Faust's configuration, without a broker."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from streams.broker.security import (
    KafkaAccessError,
    KafkaConnection,
    faust_broker_options,
    librdkafka_config,
    raise_access_errors,
)
from streams.settings import Settings
from tests.security.tls import Issued, make_ca


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Issued]:
    ca = make_ca(tmp_path_factory.mktemp("tls"))
    return ca.ca_file, ca.issue("loyalty-worker")


def test_plaintext_by_default_and_a_bare_address_still_works() -> None:
    config = librdkafka_config("127.0.0.1:9092", {"group.id": "g"})
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert config["security.protocol"] == "plaintext"
    assert config["group.id"] == "g"
    assert not any(key.startswith(("sasl.", "ssl.")) for key in config)
    assert "broker_credentials" not in faust_broker_options(Settings().kafka)


def test_sasl_ssl_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tls_files: tuple[Path, Issued]
) -> None:
    ca_file, _ = tls_files
    monkeypatch.setenv("LOYALTY_BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("LOYALTY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LOYALTY_KAFKA_SASL_USERNAME", "loyalty-worker")
    monkeypatch.setenv("LOYALTY_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("LOYALTY_KAFKA_SSL_CA_FILE", str(ca_file))
    settings = Settings()
    config = librdkafka_config(settings.kafka)
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("loyalty-worker", "s3cret")
    assert config["ssl.ca.location"] == str(ca_file)
    # the password never shows in the settings' repr (logs, tracebacks)
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(settings.kafka)

    options = faust_broker_options(settings.kafka)
    assert options["broker"] == "kafka://k1:9093;kafka://k2:9093"
    credentials = options["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_SSL"
    assert (credentials.username, credentials.password) == ("loyalty-worker", "s3cret")
    context = credentials.ssl_context
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_mutual_tls_passes_the_client_certificate(tls_files: tuple[Path, Issued]) -> None:
    ca_file, client = tls_files
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=ca_file,
        kafka_ssl_cert_file=client.cert_file,
        kafka_ssl_key_file=client.key_file,
    )
    config = librdkafka_config(settings.kafka)
    assert config["security.protocol"] == "ssl"
    assert config["ssl.certificate.location"] == str(client.cert_file)
    assert config["ssl.key.location"] == str(client.key_file)
    credentials = faust_broker_options(settings.kafka)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs LOYALTY_KAFKA_SASL_USERNAME"),
        ({"kafka_ssl_ca_file": "/etc/hostname"}, "LOYALTY_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/etc/hostname"},
            "go together",
        ),
    ],
)
def test_inconsistent_settings_are_refused_naming_the_variable(
    settings: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**settings)  # type: ignore[arg-type]


def test_a_missing_file_is_named_when_a_client_is_made_not_with_the_settings() -> None:
    # a Kubernetes manifest names a mounted Secret's file that exists only in the pod
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_ca_file="/no/such/ca.pem")
    for make in (librdkafka_config, faust_broker_options):
        with pytest.raises(KafkaAccessError, match=r"LOYALTY_KAFKA_SSL_CA_FILE=/no/such/ca\.pem"):
            make(settings.kafka)


def test_an_empty_secret_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_API_TOKEN", "")
    monkeypatch.setenv("LOYALTY_LOG_KEY", "")
    settings = Settings()
    assert settings.api_token is None and settings.log_key is None


class _Reported:
    def __init__(self, code: int, text: str) -> None:
        self._code, self._text = code, text

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return self._text


def test_only_refusals_end_a_call_other_errors_are_retried_by_librdkafka() -> None:
    with pytest.raises(KafkaAccessError, match="refused our credentials: b:9093/1: SASL auth"):
        raise_access_errors(_Reported(-169, "b:9093/1: SASL auth (after 310ms in state AUTH)"))  # type: ignore[arg-type]
    with pytest.raises(KafkaAccessError, match="TLS with Kafka failed"):
        raise_access_errors(_Reported(-181, "handshake failed"))  # type: ignore[arg-type]
    raise_access_errors(_Reported(-195, "Broker transport failure"))  # type: ignore[arg-type]
    # a connection lost mid-handshake is reported as an authentication failure: retried
    lost = "b:9093/1: SASL SCRAM-SHA-512 mechanism handshake failed: Local: Broker transport "
    lost += "failure: broker's supported mechanisms: (n/a)"
    raise_access_errors(_Reported(-169, lost))  # type: ignore[arg-type]
    with pytest.raises(KafkaAccessError, match="Unsupported SASL mechanism"):
        refused = "b:9093/1: SASL PLAIN mechanism handshake failed: Broker: Unsupported SASL "
        refused += "mechanism: broker's supported mechanisms: SCRAM-SHA-512"
        raise_access_errors(_Reported(-169, refused))  # type: ignore[arg-type]
    raise_access_errors(_Reported(-187, "1/1 brokers are down"))  # type: ignore[arg-type]


def test_a_connection_prints_as_its_bootstrap_servers() -> None:
    assert str(KafkaConnection("a:1,b:2")) == "a:1,b:2"
