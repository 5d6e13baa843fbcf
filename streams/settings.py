"""Settings shared by every command: flags override `LOYALTY_*` environment variables,
which override the defaults. One model, so that `loyalty publish`, `loyalty worker` and the
tests all read the same names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.broker.security import (
    KafkaConnection,
    KafkaSecurity,
    SaslMechanism,
    SecurityProtocol,
)
from streams.paths import xdg_cache_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = REPO_ROOT / "loyalty-program.toml"
# A day: far more than any POS clock drifts or a store's outbox holds events back with a
# clock set right, far less than a clock set to the wrong year or century.
DEFAULT_MAX_EVENT_TIME_AHEAD_SECONDS = 86_400.0
# Of a worker's RocksDB memory (`store_memory_mb`), what its write buffers may take; the rest
# caches the blocks read, customers' states looked up before each event among them.
STORE_WRITE_BUFFERS_SHARE = 0.5


class Settings(BaseSettings):
    """Runtime settings. Environment: `LOYALTY_<FIELD>` (upper case), except the schema registry,
    which takes the ecosystem's usual `SCHEMA_REGISTRY_URL`."""

    model_config = SettingsConfigDict(env_prefix="LOYALTY_", extra="ignore", populate_by_name=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    # how every Kafka client authenticates and encrypts (README, "Security")
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL (mutual TLS with a cert), SASL_SSL"
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512", description="SASL mechanism under SASL_SSL/SASL_PLAINTEXT"
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL username")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password")
    kafka_ssl_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle the brokers' certificates chain to"
    )
    kafka_ssl_cert_file: Path | None = Field(
        default=None, description="PEM client certificate, for mutual TLS"
    )
    kafka_ssl_key_file: Path | None = Field(
        default=None, description="PEM private key of the client certificate"
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None, description="password of the private key, if it is encrypted"
    )
    rules: Path = Field(default=DEFAULT_RULES, description="the loyalty program rules file (TOML)")
    data_dir: Path = Field(
        default_factory=lambda: xdg_cache_dir() / "data",
        description="where workers keep local state (RocksDB) and other run-time files",
    )
    web_port: int = Field(default=6066, ge=1, le=65535, description="HTTP port of the worker")
    web_host: str = Field(
        default="127.0.0.1",
        description="address the worker's HTTP API binds to and other workers reach it at",
    )
    partitions: int = Field(default=8, ge=1, le=1024, description="partitions of every topic")
    replication_factor: int = Field(default=1, ge=1, description="replication of our topics")
    topic_prefix: str = Field(default="loyalty", description="prefix of every topic name")
    schema_registry_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SCHEMA_REGISTRY_URL", "schema_registry_url"),
        description="Confluent-compatible schema registry; unset = Avro single-object encoding",
    )
    schema_dir: Path | None = Field(
        default=None,
        description="the Avro schemas (.avsc, with history/) to read and write; unset = the "
        "schemas of this release (set it to roll out a newer schema version to workers first)",
    )
    cache_dir: Path = Field(default_factory=xdg_cache_dir, description="jars and default data")

    # the worker
    app_id: str = Field(
        default="loyalty-worker",
        description="the workers' consumer group; names their changelog and tick topics",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="at_least_once: outputs at least once with stable ids; exactly_once: "
        "Kafka transactions, read_committed consumers",
    )
    clock: Literal["live", "event"] = Field(
        default="live",
        description="live: wall-clock ticks move idle partitions on; event: time only from "
        "events (deterministic replay)",
    )
    late_grace_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="how late an event may be before time-driven work "
        "that it would have changed is done without it",
    )
    tick_seconds: float = Field(default=1.0, gt=0, description="wall-clock tick interval")
    merge_delay_seconds: float = Field(
        default=2.0,
        ge=0,
        description="how long a record waits for one published just before "
        "it on the partition's other input topic, when that topic looks idle",
    )
    # An event dated after its record reached the broker comes from a POS whose clock is wrong:
    # applied, it moves its partition's clock, and the due work after it, that far ahead (a
    # POS at the year 2400 expired every customer's points). The broker's receive time is in
    # the log (the input topics' LogAppendTime), so a replay of the log refuses the same events.
    max_event_time_ahead_seconds: float = Field(
        default=DEFAULT_MAX_EVENT_TIME_AHEAD_SECONDS,
        ge=0,
        allow_inf_nan=False,
        description="how far an event's occurred_at may be ahead of the time the broker "
        "received its record before the worker dead-letters it (EVENT_TIME_AHEAD); 0: no limit",
    )
    log_key: SecretStr | None = Field(
        default=None,
        description="key of the HMAC-SHA256 that pseudonymises customer ids in the worker's "
        "logs; unset: a plain SHA-256",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="bearer token the worker's HTTP API requires (except /healthz, /readyz); "
        "unset: no token",
    )
    store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb", description="where the worker keeps its table locally"
    )
    standby_replicas: int = Field(
        default=0, ge=0, description="standby copies of each table partition"
    )
    # Kafka's static membership (KIP-345): a worker that restarts under the same id within
    # the session timeout gets its partitions back without a rebalance, so it recovers from
    # its local RocksDB at once and the other workers are not interrupted. Unique per worker
    # (a StatefulSet pod's name); two live workers with one id fence each other.
    group_instance_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=249,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="the worker's static group membership id, unique in the group; unset: "
        "dynamic membership (every restart rebalances the group)",
    )
    # RocksDB keeps one database per table partition. Each had its own block cache and write
    # buffers, so a worker's memory grew with every partition it took over (issue #8: the
    # soak's worker stepped from 150 to 281 MB at takeovers); now all of a worker's databases
    # share one budget (see `streams.worker.rocksdb_memory`)
    store_memory_mb: int = Field(
        default=128, ge=16, le=65536,
        description="RocksDB memory of a worker, all its table partitions together: one "
        "block cache, of which the write buffers may take up to half",
    )  # fmt: skip
    store_write_buffer_mb: int = Field(
        default=8, ge=1, le=1024,
        description="size of one RocksDB write buffer: a table partition writes it to disk "
        "when it is full, or earlier when all partitions' buffers fill their half of "
        "store_memory_mb",
    )  # fmt: skip
    # was a cache per partition: read only to tell whoever still sets it that it is ignored
    store_block_cache_mb: int | None = Field(
        default=None,
        description="deprecated, ignored: the block cache is one per worker, of store_memory_mb",
    )

    @field_validator(
        "kafka_sasl_password", "kafka_ssl_key_password", "log_key", "api_token", mode="before"
    )
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        # `LOYALTY_API_TOKEN=` (a Compose default, an empty Secret) means no token, not ""
        return None if value == "" else value

    @property
    def kafka_security(self) -> KafkaSecurity:
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ca_file=self.kafka_ssl_ca_file,
            cert_file=self.kafka_ssl_cert_file,
            key_file=self.kafka_ssl_key_file,
            key_password=self.kafka_ssl_key_password,
        )

    @property
    def max_event_time_ahead_ms(self) -> int | None:
        """The limit as the worker's processor takes it: None for no limit."""
        seconds = self.max_event_time_ahead_seconds
        return None if seconds == 0 else round(seconds * 1000)

    @property
    def kafka(self) -> KafkaConnection:
        """The connection every Kafka client of ours is made from."""
        return KafkaConnection(self.bootstrap_servers, self.kafka_security)

    @property
    def store_write_buffers_budget_mb(self) -> float:
        """The part of `store_memory_mb` all write buffers together may take."""
        return self.store_memory_mb * STORE_WRITE_BUFFERS_SHARE

    @model_validator(mode="after")
    def _write_buffer_within_budget(self) -> Settings:
        # a single buffer past the share would be flushed before it is full, every time
        if self.store_write_buffer_mb > self.store_write_buffers_budget_mb:
            raise ValueError(
                f"store_write_buffer_mb ({self.store_write_buffer_mb}) must fit in the write "
                f"buffers' share of store_memory_mb ({self.store_memory_mb}): at most "
                f"{self.store_write_buffers_budget_mb:g}"
            )
        return self

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        # made once here so that a missing password or file fails at start, with its name
        try:
            _ = self.kafka_security
        except ValidationError as error:
            raise ValueError("; ".join(str(e["ctx"]["error"]) for e in error.errors())) from None
        return self

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from the environment with the given flag values on top; `None` means
        'flag not given' and leaves the environment's or the default value in place."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return cls(**given)
