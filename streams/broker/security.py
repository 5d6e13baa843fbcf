"""How every Kafka client of ours authenticates and encrypts: one model of the settings
(`LOYALTY_KAFKA_*`), one function that turns it into librdkafka's configuration (publisher,
audit, tail, census, lag probe, topic admin, bench) and one into Faust's (the worker, on
aiokafka). No client is configured by hand.

Two set-ups are meant for production: SASL_SSL with SCRAM-SHA-512 (a username and password
over TLS), and mutual TLS (SSL with a client certificate; Kafka's principal is then
`User:CN=<the certificate's common name>`). PLAINTEXT is the default, for the local broker.

A client with wrong credentials or a broker certificate it cannot verify is not left to
retry for ever: librdkafka reports the failure to `error_cb`, which raises
`KafkaAccessError` (our message, naming the setting to fix) out of the call that served it
(`poll`, `flush`, `consume`)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from streams.broker.errors import BrokerError

if TYPE_CHECKING:
    from confluent_kafka import KafkaError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

# librdkafka's error codes for a refused login and for a failed TLS handshake
_AUTHENTICATION = -169
_SSL = -181


class KafkaAccessError(BrokerError):
    """The broker refused our credentials, or TLS could not be set up with it."""


class KafkaSecurity(BaseModel):
    """The security part of a Kafka connection, checked for consistency when made."""

    model_config = ConfigDict(frozen=True)

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol.endswith("SSL")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        if self.uses_sasl and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"LOYALTY_KAFKA_SECURITY_PROTOCOL={self.protocol} needs "
                f"LOYALTY_KAFKA_SASL_USERNAME and LOYALTY_KAFKA_SASL_PASSWORD"
            )
        tls_files = {
            "LOYALTY_KAFKA_SSL_CA_FILE": self.ca_file,
            "LOYALTY_KAFKA_SSL_CERT_FILE": self.cert_file,
            "LOYALTY_KAFKA_SSL_KEY_FILE": self.key_file,
        }
        given = [name for name, path in tls_files.items() if path is not None]
        if given and not self.uses_tls:
            # a CA or certificate set for a plaintext connection means someone believes
            # the traffic is encrypted: say it is not, rather than ignore the files
            raise ValueError(
                f"{', '.join(given)} set, but LOYALTY_KAFKA_SECURITY_PROTOCOL is "
                f"{self.protocol}: use SSL or SASL_SSL"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "LOYALTY_KAFKA_SSL_CERT_FILE and LOYALTY_KAFKA_SSL_KEY_FILE go together "
                "(a client certificate and its private key)"
            )
        return self

    def check_files(self) -> None:
        """Raises KafkaAccessError naming a CA, certificate or key file that is not there.
        Checked when a client is made, not with the settings: a deployment's settings name
        files that exist only where the worker runs (a mounted Secret)."""
        tls_files = {
            "LOYALTY_KAFKA_SSL_CA_FILE": self.ca_file,
            "LOYALTY_KAFKA_SSL_CERT_FILE": self.cert_file,
            "LOYALTY_KAFKA_SSL_KEY_FILE": self.key_file,
        }
        for name, path in tls_files.items():
            if path is not None and not path.is_file():
                raise KafkaAccessError(f"{name}={path}: no such file")


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how to talk to them. Prints as its bootstrap servers, so
    messages that name 'the broker at X' stay as they were."""

    bootstrap_servers: str
    security: KafkaSecurity = field(default_factory=KafkaSecurity)

    def __str__(self) -> str:
        return self.bootstrap_servers


# A plain "host:port,..." still means a plaintext connection: tests, benchmarks and the
# embedded broker's own checks pass bootstrap servers alone.
KafkaTarget = str | KafkaConnection


def as_connection(kafka: KafkaTarget) -> KafkaConnection:
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection(kafka)


def librdkafka_config(
    kafka: KafkaTarget, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The configuration of a confluent-kafka Producer, Consumer or AdminClient for
    `kafka`, with the client's own `overrides` (librdkafka's names) on top."""
    connection = as_connection(kafka)
    security = connection.security
    security.check_files()
    config: dict[str, Any] = {
        "bootstrap.servers": connection.bootstrap_servers,
        "security.protocol": security.protocol.lower(),
        "error_cb": raise_access_errors,
    }
    if security.uses_sasl:
        assert security.sasl_username and security.sasl_password  # checked by the model
        config |= {
            "sasl.mechanisms": security.sasl_mechanism,
            "sasl.username": security.sasl_username,
            "sasl.password": security.sasl_password.get_secret_value(),
        }
    if security.uses_tls:
        # hostname verification stays on (librdkafka's default): the broker's certificate
        # must name the address we dial
        if security.ca_file:
            config["ssl.ca.location"] = str(security.ca_file)
        if security.cert_file and security.key_file:
            config["ssl.certificate.location"] = str(security.cert_file)
            config["ssl.key.location"] = str(security.key_file)
        if security.key_password:
            config["ssl.key.password"] = security.key_password.get_secret_value()
    return config | dict(overrides or {})


def raise_access_errors(error: KafkaError) -> None:
    """librdkafka's error callback: a refused login or a failed TLS handshake ends the call
    that served it with our message; anything else (a broker restarting, a connection
    lost) librdkafka retries by itself, as before."""
    code = error.code()
    if code == _AUTHENTICATION and not _lost_mid_handshake(error):
        raise KafkaAccessError(
            f"Kafka refused our credentials: {_reason(error)}; check "
            f"LOYALTY_KAFKA_SASL_USERNAME, LOYALTY_KAFKA_SASL_PASSWORD and "
            f"LOYALTY_KAFKA_SASL_MECHANISM"
        )
    if code == _SSL:
        raise KafkaAccessError(
            f"TLS with Kafka failed: {_reason(error)}; check LOYALTY_KAFKA_SSL_CA_FILE (the CA "
            f"that signed the broker's certificate) and, for mutual TLS, "
            f"LOYALTY_KAFKA_SSL_CERT_FILE and LOYALTY_KAFKA_SSL_KEY_FILE"
        )


def _lost_mid_handshake(error: KafkaError) -> bool:
    """librdkafka reports a connection that broke during the SASL handshake as an
    authentication failure too ("SASL SCRAM-SHA-512 mechanism handshake failed: Local: Broker
    transport failure: broker's supported mechanisms: (n/a)"); the broker refused nothing
    (its own refusals read "Broker: ..."), and the next connection may well succeed: a
    reader with the right password got this once on a busy machine, and was told its
    credentials were refused."""
    return "handshake failed: Local:" in str(error.str())


def _reason(error: KafkaError) -> str:
    # librdkafka's text: "<broker>: SASL authentication error: ... (after 310ms in state ...)"
    text = str(error.str())
    return text.split(" (after ", maxsplit=1)[0]


def unreachable_hint(kafka: KafkaTarget) -> str:
    """What to check when no broker answers: a plaintext client dialling a TLS listener
    sees only closed connections."""
    protocol = as_connection(kafka).security.protocol
    return (
        f"start one with `loyalty kafka start` or pass --bootstrap-servers; this client speaks "
        f"{protocol} (LOYALTY_KAFKA_SECURITY_PROTOCOL): a listener that expects another "
        f"protocol closes the connection"
    )


def tls_context(security: KafkaSecurity) -> ssl.SSLContext:
    """A TLS client context: the given CA (else the system's), verifying the broker's
    certificate and host name, with our client certificate for mutual TLS."""
    context = ssl.create_default_context(cafile=str(security.ca_file) if security.ca_file else None)
    if security.cert_file and security.key_file:
        context.load_cert_chain(
            str(security.cert_file),
            str(security.key_file),
            security.key_password.get_secret_value() if security.key_password else None,
        )
    return context


def faust_broker_options(kafka: KafkaTarget, scheme: str = "kafka") -> dict[str, Any]:
    """`broker` and `broker_credentials` for `faust.App(...)`: the same connection the
    librdkafka clients make, for aiokafka (`scheme` names Faust's transport)."""
    import faust

    connection = as_connection(kafka)
    security = connection.security
    security.check_files()
    servers = connection.bootstrap_servers.split(",")
    options: dict[str, Any] = {
        "broker": ";".join(f"{scheme}://{server.strip()}" for server in servers)
    }
    context = tls_context(security) if security.uses_tls else None
    if security.uses_sasl:
        assert security.sasl_password is not None  # checked by the model
        options["broker_credentials"] = faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=security.sasl_mechanism,
        )
    elif context is not None:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options
