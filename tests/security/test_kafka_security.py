"""Our Kafka clients against a real broker with a SASL_SSL (SCRAM-SHA-512) listener and a
mutual-TLS one, certificates made here: the right credentials publish, a worker processes
and our consumers read; wrong ones end with our message, in bounded time, and write nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.broker import TopicNames, ensure_topics, free_port
from streams.broker.embedded import EmbeddedKafka, SecureListeners
from streams.broker.security import (
    KafkaAccessError,
    KafkaConnection,
    KafkaSecurity,
    faust_broker_options,
)
from streams.contract import make_codec
from streams.settings import Settings
from streams.tools.acls import acl_bindings, apply_acls, grants
from streams.tools.audit import audit, read_output_log
from streams.tools.lag import wait_idle
from streams.tools.publish import EventPublisher
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.topic_census import read_topic
from streams.tools.worker_process import WorkerProcess
from tests.conftest import TEST_PARTITIONS, start_test_broker
from tests.security.tls import Issued, make_ca

pytestmark = pytest.mark.broker

WORKER_USER, WORKER_PASSWORD = "loyalty-worker", "worker-secret-9d1c"
PUBLISHER_USER, PUBLISHER_PASSWORD = "loyalty-publisher", "publisher-secret-51ab"
READER_USER, READER_PASSWORD = "loyalty-audit", "reader-secret-0c77"
# the mutual-TLS client's principal: Kafka's default mapping takes the certificate's DN
MTLS_PRINCIPAL = "User:CN=loyalty-audit"
# every client but the plaintext listener's (the broker itself, and the tests' admin) is
# held to the ACLs granted: those of streams/tools/acls.py, as the README lists them
AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:ANONYMOUS",
}
TOKEN = "api-token-for-tests-3f2e"


@dataclass(frozen=True)
class SecureBroker:
    broker: EmbeddedKafka
    ca_file: Path
    client: Issued  # a client certificate for the mutual-TLS listener

    def sasl(self, user: str, password: str) -> KafkaConnection:
        return KafkaConnection(
            self.broker.sasl_ssl_bootstrap_servers,
            KafkaSecurity(
                protocol="SASL_SSL",
                sasl_username=user,
                sasl_password=password,
                ca_file=self.ca_file,
            ),
        )

    def sasl_env(self, user: str, password: str) -> dict[str, str]:
        return {
            "LOYALTY_BOOTSTRAP_SERVERS": self.broker.sasl_ssl_bootstrap_servers,
            "LOYALTY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "LOYALTY_KAFKA_SASL_USERNAME": user,
            "LOYALTY_KAFKA_SASL_PASSWORD": password,
            "LOYALTY_KAFKA_SSL_CA_FILE": str(self.ca_file),
        }

    def mtls(self) -> KafkaConnection:
        return KafkaConnection(
            self.broker.mtls_bootstrap_servers,
            KafkaSecurity(
                protocol="SSL",
                ca_file=self.ca_file,
                cert_file=self.client.cert_file,
                key_file=self.client.key_file,
            ),
        )


@pytest.fixture(scope="module")
def secure_broker(
    kafka_libs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureBroker]:
    directory = tmp_path_factory.mktemp("kafka-secure")
    ca = make_ca(directory / "tls")
    keystore = ca.issue("localhost", server=True).keystore_pem(directory / "tls" / "broker.pem")
    listeners = SecureListeners(
        ca_file=ca.ca_file,
        keystore_file=keystore,
        sasl_ssl_port=free_port(),
        mtls_port=free_port(),
        scram_users={
            WORKER_USER: WORKER_PASSWORD,
            PUBLISHER_USER: PUBLISHER_PASSWORD,
            READER_USER: READER_PASSWORD,
        },
    )
    broker = start_test_broker(directory / "data", secure=listeners, overrides=AUTHORIZER)
    try:
        yield SecureBroker(broker, ca.ca_file, ca.issue("loyalty-audit"))
    finally:
        broker.stop(timeout=15)


def topics_on(secure_broker: SecureBroker, app_id: str = "none") -> TopicNames:
    """New topics, made by an admin, and the ACLs each of our users has on them: nothing
    more, so that a component that needs more fails here."""
    topics = TopicNames(f"sec-{uuid.uuid4().hex[:8]}")
    admin_kafka = secure_broker.broker.bootstrap_servers  # plaintext: a super user
    ensure_topics(admin_kafka, topics.all, TEST_PARTITIONS)
    needs = grants(topics, app_id)
    bindings = [
        *acl_bindings(f"User:{WORKER_USER}", needs["worker"]),
        *acl_bindings(f"User:{PUBLISHER_USER}", needs["publisher"]),
        *acl_bindings(f"User:{READER_USER}", needs["reader"]),
        *acl_bindings(MTLS_PRINCIPAL, [*needs["publisher"], *needs["reader"]]),
    ]
    apply_acls(admin_kafka, bindings)
    return topics


def reader(secure_broker: SecureBroker) -> KafkaConnection:
    return secure_broker.sasl(READER_USER, READER_PASSWORD)


def loyalty(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_KAFKA_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def records_on(kafka: KafkaConnection, topics: TopicNames) -> int:
    return sum(1 for topic in topics.inputs for _ in read_topic(kafka, topic))


def test_publisher_worker_and_readers_over_sasl_ssl(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    app_id = f"sec-{uuid.uuid4().hex[:8]}"
    topics = topics_on(secure_broker, app_id)
    publisher_env = {
        **secure_broker.sasl_env(PUBLISHER_USER, PUBLISHER_PASSWORD),
        "LOYALTY_TOPIC_PREFIX": topics.prefix,
    }
    published = loyalty(["simulate", "--customers", "40", "--events", "600", "--seed", "8"],
                        publisher_env)  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert records_on(reader(secure_broker), topics) == 600

    worker_env = {
        **secure_broker.sasl_env(WORKER_USER, WORKER_PASSWORD),
        "LOYALTY_TOPIC_PREFIX": topics.prefix,
        "LOYALTY_APP_ID": app_id,
        "LOYALTY_PARTITIONS": str(TEST_PARTITIONS),
        "LOYALTY_CLOCK": "event",
        "LOYALTY_LATE_GRACE_SECONDS": "0",
    }
    workers = [
        WorkerProcess(
            f"secure-{i}", tmp_path, free_port(), {**worker_env, "LOYALTY_API_TOKEN": TOKEN}
        )
        for i in range(2)
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        wait_idle(reader(secure_broker), app_id, topics.inputs, timeout_s=180)
        for worker in workers:
            worker.wait_ready()
        assert_api_asks_the_token_and_forwards_it(workers)
    finally:
        for worker in workers:
            worker.kill()

    produced = read_output_log(reader(secure_broker), topics, make_codec(Settings()))
    assert sum(produced.ids.values()) > 0
    reader_env = {**worker_env, **secure_broker.sasl_env(READER_USER, READER_PASSWORD)}
    settings = Settings.load(
        **{key.removeprefix("LOYALTY_").lower(): value for key, value in reader_env.items()}
    )
    assert settings.kafka.security.protocol == "SASL_SSL"
    report = audit(settings, view_only=True)
    assert report.ok, report.mismatches[:10]


def http_get(worker: WorkerProcess, path: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def assert_api_asks_the_token_and_forwards_it(workers: list[WorkerProcess]) -> None:
    owned = {
        worker.web_port: [
            line["customer_id"]
            for line in http_get(worker, "/customers?limit=1000", TOKEN)[1]["customers"]
        ]
        for worker in workers
    }
    first, second = owned.values()
    assert first and second and not set(first) & set(second)
    for worker in workers:
        assert http_get(worker, "/customers?limit=10", None)[0] == 401
        assert http_get(worker, "/metrics", None)[0] == 401
        assert http_get(worker, "/readyz", None)[0] == 200
        for port, customers in owned.items():
            status, body = http_get(worker, f"/customers/{customers[0]}", TOKEN)
            # the other worker's customers are forwarded to it, with the token
            assert status == 200, body
            assert body["served_by"].endswith(f":{port}")
    request = urllib.request.Request(
        f"http://127.0.0.1:{workers[0].web_port}/customers/x", method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=20)
    assert refused.value.code == 405


def test_mutual_tls_publishes_and_reads_with_librdkafka_and_aiokafka(
    secure_broker: SecureBroker,
) -> None:
    topics = topics_on(secure_broker)
    kafka = secure_broker.mtls()
    codec = make_codec(Settings())
    with EventPublisher(kafka, topics, codec) as publisher:
        publisher.check_access()
        for schema_name, record in simulate(SimulationConfig(customers=3, events=20)):
            publisher.write(schema_name, record)
    assert publisher.tally.acknowledged == 20
    assert records_on(kafka, topics) == 20
    # the worker's side: Faust's credentials as aiokafka takes them, over the same listener
    assert asyncio.run(_aiokafka_round_trip(kafka, topics.purchases)) == b"over mutual TLS"


async def _aiokafka_round_trip(kafka: KafkaConnection, topic: str) -> bytes:
    options = faust_broker_options(kafka)
    auth = credentials_to_aiokafka_auth(options["broker_credentials"])
    assert auth["security_protocol"] == "SSL"
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, **auth)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"over mutual TLS", key=b"c-2")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, **auth)
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        tp = TopicPartition(topic, sent.partition)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        record = await asyncio.wait_for(consumer.getone(), 30)
        return bytes(record.value or b"")
    finally:
        await consumer.stop()


def assert_our_message(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_wrong_password_is_refused_with_our_message_and_writes_nothing(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    topics = topics_on(secure_broker)
    env = {
        **secure_broker.sasl_env(PUBLISHER_USER, "not-the-password"),
        "LOYALTY_TOPIC_PREFIX": topics.prefix,
    }
    result = loyalty(["simulate", "--customers", "5", "--events", "50"], env)
    assert_our_message(result, "Kafka refused our credentials", "LOYALTY_KAFKA_SASL_PASSWORD")
    assert PUBLISHER_PASSWORD not in result.stderr and "not-the-password" not in result.stderr
    worker = loyalty(["worker"], {**env, "LOYALTY_DATA_DIR": str(tmp_path)})
    assert_our_message(worker, "Kafka refused our credentials")
    assert records_on(reader(secure_broker), topics) == 0


def test_plaintext_client_on_the_tls_listener_gets_our_message_and_writes_nothing(
    secure_broker: SecureBroker,
) -> None:
    topics = topics_on(secure_broker)
    env = {
        "LOYALTY_BOOTSTRAP_SERVERS": secure_broker.broker.sasl_ssl_bootstrap_servers,
        "LOYALTY_TOPIC_PREFIX": topics.prefix,
    }
    started = time.monotonic()
    result = loyalty(["simulate", "--customers", "5", "--events", "50"], env)
    assert_our_message(result, "no Kafka broker answers", "LOYALTY_KAFKA_SECURITY_PROTOCOL")
    assert time.monotonic() - started < 60  # a bound on a hang, not a speed figure
    assert records_on(reader(secure_broker), topics) == 0


def test_an_unknown_certificate_authority_is_a_tls_error_not_a_retry(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    stranger = make_ca(tmp_path / "other-ca", name="someone-else")
    kafka = KafkaConnection(
        secure_broker.broker.sasl_ssl_bootstrap_servers,
        KafkaSecurity(
            protocol="SASL_SSL",
            sasl_username=WORKER_USER,
            sasl_password=WORKER_PASSWORD,
            ca_file=stranger.ca_file,
        ),
    )
    with pytest.raises(KafkaAccessError, match=r"TLS with Kafka failed.*certificate verify failed"):
        ensure_topics(kafka, TopicNames("never").all, TEST_PARTITIONS)
