"""k8s/: both overlays rendered by the real kustomize, every object validated offline (the
built-in kinds by kubernetes-validate in strict mode against a pinned Kubernetes version, the
KEDA and Prometheus Operator resources by their projects' published CRD schemas, Strimzi's
KafkaTopic by its published API model), and what the objects say checked against the code
and each other: topic names, partitions, settings, ports, probes, the rules file."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from streams.settings import Settings
from tests.deploy import tools
from tests.deploy.checks import dockerfile_stages, parse_loyalty_command, settings_from_env

K8S = tools.REPO_ROOT / "k8s"
OVERLAYS = ("dev", "prod")
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
}


@pytest.fixture(scope="module")
def rendered(kustomize_binary: Path) -> dict[str, list[dict[str, Any]]]:
    return {overlay: tools.kustomize_build(K8S / "overlays" / overlay) for overlay in OVERLAYS}


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [each for each in objects if each["kind"] == kind]
    return found


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [each for each in objects if each["kind"] == kind]


def worker_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = only(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


# what the downward API gives the first pod of the StatefulSet, for expanding $(VAR)s
DOWNWARD_API_SAMPLE = {"metadata.name": "loyalty-worker-0", "metadata.namespace": "loyalty"}


def worker_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The worker's environment as the pod gets it: the ConfigMaps' data, then `env`."""
    container = worker_container(objects)
    maps = {
        each["metadata"]["name"]: each.get("data", {}) for each in of_kind(objects, "ConfigMap")
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    for variable in container.get("env", []):
        if "value" in variable:
            # Kubernetes expands $(VAR) from the variables defined before it
            env[variable["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda ref: env.get(ref.group(1), ref.group(0)),
                variable["value"],
            )
        else:
            field = variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            env[variable["name"]] = DOWNWARD_API_SAMPLE.get(field, "<from the downward API>")
    return env


def worker_settings(objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Settings:
    return settings_from_env(worker_env(objects), monkeypatch)


def strict(schema: Any) -> Any:
    """A CRD's openAPIV3Schema as the API server applies it, but refusing unknown fields
    instead of pruning them silently (a misspelt field is a bug in our file)."""
    if isinstance(schema, list):
        return [strict(each) for each in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


def custom_resource_errors(
    resource: dict[str, Any], crd_schemas: dict[tuple[str, str], dict[str, Any]]
) -> Iterator[str]:
    key = (resource["apiVersion"], resource["kind"])
    assert key in crd_schemas, f"no published schema for {key}: {sorted(crd_schemas)}"
    schema = strict(crd_schemas[key])
    # metadata is the API server's ObjectMeta, not in the CRD's schema beyond `type: object`
    for error in jsonschema.Draft7Validator(schema).iter_errors(resource):
        yield f"{'.'.join(map(str, error.absolute_path))}: {error.message}"


@pytest.mark.parametrize("version", tools.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_builtin_object_is_valid_kubernetes(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, version: str
) -> None:
    objects = rendered[overlay]
    builtin = [each for each in objects if (each["apiVersion"], each["kind"]) not in CUSTOM_KINDS]
    assert {each["kind"] for each in builtin} >= {"StatefulSet", "Service", "PodDisruptionBudget"}
    for resource in builtin:
        # raises ValidationError, or SchemaNotFoundError for a kind this version lacks
        assert kubernetes_validate.validate(resource, version, strict=True) == version


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_custom_resource_is_valid_by_its_published_schema(
    rendered: dict[str, list[dict[str, Any]]],
    crd_schemas: dict[tuple[str, str], dict[str, Any]],
    overlay: str,
) -> None:
    custom = [
        each for each in rendered[overlay] if (each["apiVersion"], each["kind"]) in CUSTOM_KINDS
    ]
    kinds = {each["kind"] for each in custom}
    assert kinds >= {"ServiceMonitor", "KafkaTopic"}
    for resource in custom:
        errors = list(custom_resource_errors(resource, crd_schemas))
        assert errors == [], f"{resource['kind']}/{resource['metadata']['name']}"


def test_the_validators_refuse_a_misspelt_field(
    rendered: dict[str, list[dict[str, Any]]],
    crd_schemas: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """The checks above have teeth: a typo in a built-in object, in a published-CRD resource
    and in a KafkaTopic each fails."""
    objects = rendered["prod"]
    statefulset = copy.deepcopy(only(objects, "StatefulSet"))
    statefulset["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="httpGett"):
        kubernetes_validate.validate(statefulset, tools.KUBERNETES_VERSIONS[0], strict=True)
    for kind, field in (("ScaledObject", "maxReplicas"), ("ServiceMonitor", "endpoint")):
        broken = copy.deepcopy(only(objects, kind))
        broken["spec"][field] = 1
        assert any(field in error for error in custom_resource_errors(broken, crd_schemas))
    topic = copy.deepcopy(of_kind(objects, "KafkaTopic")[0])
    topic["spec"]["partition"] = 8
    assert any("partition" in error for error in custom_resource_errors(topic, crd_schemas))
    # Strimzi 1.x serves KafkaTopic as v1 only: the older v1beta2 would be refused
    topic = copy.deepcopy(of_kind(objects, "KafkaTopic")[0])
    topic["apiVersion"] = "kafka.strimzi.io/v1beta2"
    with pytest.raises(AssertionError, match="no published schema"):
        list(custom_resource_errors(topic, crd_schemas))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_topics_are_ours_co_partitioned_as_the_workers_expect(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.broker.topics import TopicNames

    objects = rendered[overlay]
    settings = worker_settings(objects, monkeypatch)
    topics = of_kind(objects, "KafkaTopic")
    names = [each["spec"].get("topicName", each["metadata"]["name"]) for each in topics]
    assert sorted(names) == sorted(TopicNames(settings.topic_prefix).all)
    # the Topic Operator manages only topics labelled with its Kafka cluster
    assert all(each["metadata"]["labels"].get("strimzi.io/cluster") for each in topics)
    assert {each["spec"]["partitions"] for each in topics} == {settings.partitions}
    assert {each["spec"]["replicas"] for each in topics} == {settings.replication_factor}
    for topic in topics:
        assert int(topic["spec"]["config"]["min.insync.replicas"]) <= topic["spec"]["replicas"]
    retention = {
        each["spec"]["topicName"]: int(each["spec"]["config"]["retention.ms"]) for each in topics
    }
    names_of = TopicNames(settings.topic_prefix)
    # the input log is kept for reprocessing; a dead letter outlives the outputs
    assert all(retention[name] == -1 for name in names_of.inputs)
    assert all(retention[names_of.dead_letter] > retention[name] for name in names_of.outputs)


def test_prod_replicates_and_scales_dev_stays_small(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    dev, prod = rendered["dev"], rendered["prod"]
    assert only(dev, "StatefulSet")["spec"]["replicas"] == 1
    assert of_kind(dev, "ScaledObject") == []
    assert worker_settings(prod, monkeypatch).replication_factor == 3
    assert only(prod, "StatefulSet")["spec"]["replicas"] >= 3
    assert only(prod, "ScaledObject")["spec"]["minReplicaCount"] >= 3

    def memory_gi(objects: list[dict[str, Any]], which: str) -> float:
        text = worker_container(objects)["resources"][which]["memory"]
        return float(text.removesuffix("Gi")) if text.endswith("Gi") else float(
            text.removesuffix("Mi")) / 1024  # fmt: skip

    for which in ("requests", "limits"):
        assert memory_gi(prod, which) > memory_gi(dev, which)


def test_autoscaling_follows_the_input_lag_up_to_one_worker_per_partition(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.broker.topics import TopicNames

    objects = rendered["prod"]
    settings = worker_settings(objects, monkeypatch)
    scaled = only(objects, "ScaledObject")["spec"]
    statefulset = only(objects, "StatefulSet")
    assert scaled["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": statefulset["metadata"]["name"],
    }
    # a worker above the partition count would own nothing
    assert scaled["maxReplicaCount"] == settings.partitions
    assert scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    triggers = scaled["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    assert sorted(t["metadata"]["topic"] for t in triggers) == sorted(
        TopicNames(settings.topic_prefix).inputs
    )
    for trigger in triggers:
        assert trigger["metadata"]["consumerGroup"] == settings.app_id
        assert trigger["metadata"]["bootstrapServers"] == settings.bootstrap_servers
        assert trigger["metadata"]["allowIdleConsumers"] == "false"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_worker_pods_settings_ports_probes_and_volumes_fit_the_code(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = rendered[overlay]
    statefulset = only(objects, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    container = worker_container(objects)
    settings = worker_settings(objects, monkeypatch)

    assert parse_loyalty_command(container["args"])[0] == "worker"
    (web,) = [port for port in container["ports"] if port["name"] == "web"]
    assert web["containerPort"] == settings.web_port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "web"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "web"}
    assert {"requests", "limits"} <= set(container["resources"])

    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert mounts[str(settings.data_dir)] == claim["metadata"]["name"]
    # the rules file: a key of the generated ConfigMap, mounted where LOYALTY_RULES points
    rules_volume = mounts[str(settings.rules.parent)]
    (volume,) = [each for each in pod["volumes"] if each["name"] == rules_volume]
    program = [
        each
        for each in of_kind(objects, "ConfigMap")
        if each["metadata"]["name"] == volume["configMap"]["name"]
    ]
    assert len(program) == 1, "the volume names the generated (hash-suffixed) ConfigMap"
    assert (
        program[0]["data"][settings.rules.name]
        == (tools.REPO_ROOT / "loyalty-program.toml").read_text()
    )

    # the image's user, so the volume's group ownership (fsGroup) lets it write
    (user,) = dockerfile_stages(tools.REPO_ROOT / "Dockerfile")[-1].all("USER")
    assert pod["securityContext"]["runAsUser"] == int(user.arguments.split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_worker_is_reachable_at_its_web_host_through_the_headless_service(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    statefulset = only(objects, "StatefulSet")
    service = only(objects, "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    # a worker resolves its own name to bind before it is ready
    assert service["spec"]["publishNotReadyAddresses"] is True
    env = worker_container(objects)["env"]
    order = [variable["name"] for variable in env]
    web_host = next(v["value"] for v in env if v["name"] == "LOYALTY_WEB_HOST")
    assert web_host == (
        f"$(POD_NAME).{service['metadata']['name']}.$(POD_NAMESPACE).svc.cluster.local"
    )
    # Kubernetes expands $(VAR) only from variables defined before
    assert order.index("POD_NAME") < order.index("LOYALTY_WEB_HOST")
    assert order.index("POD_NAMESPACE") < order.index("LOYALTY_WEB_HOST")
    # static membership under the pod's own name: unique in the StatefulSet, stable over
    # restarts, so a restarted pod takes its partitions back without a rebalance
    instance_id = next(v["value"] for v in env if v["name"] == "LOYALTY_GROUP_INSTANCE_ID")
    assert instance_id == "$(POD_NAME)"
    assert order.index("POD_NAME") < order.index("LOYALTY_GROUP_INSTANCE_ID")
    fields = {
        v["name"]: v["valueFrom"]["fieldRef"]["fieldPath"]
        for v in env
        if "fieldRef" in v.get("valueFrom", {})
    }
    assert fields == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "web"
    assert port["port"] == Settings.model_fields["web_port"].default


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_find_the_worker_pods(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    statefulset = only(objects, "StatefulSet")
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    assert selects(statefulset["spec"]["selector"]["matchLabels"], pod_labels)
    assert selects(only(objects, "Service")["spec"]["selector"], pod_labels)
    assert selects(only(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                   pod_labels)  # fmt: skip
    anti = statefulset["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    terms = [term.get("podAffinityTerm", term) for rule in anti.values() for term in rule]
    assert terms and all(selects(t["labelSelector"]["matchLabels"], pod_labels) for t in terms)
    monitor = only(objects, "ServiceMonitor")
    service = only(objects, "Service")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    port_names = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= port_names
    assert {endpoint["path"] for endpoint in monitor["spec"]["endpoints"]} == {"/metrics"}


def test_the_rules_file_in_k8s_is_the_repositorys() -> None:
    """kustomize loads no file from outside its folder, so the base keeps a copy."""
    copy_in_base = K8S / "base" / "loyalty-program.toml"
    assert copy_in_base.read_text() == (tools.REPO_ROOT / "loyalty-program.toml").read_text(), (
        "k8s/base/loyalty-program.toml differs from loyalty-program.toml: copy it over"
    )


def test_prod_reaches_kafka_over_sasl_ssl_and_guards_the_api_with_secrets(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = rendered["prod"]
    container = worker_container(objects)
    settings = worker_settings(objects, monkeypatch)
    security = settings.kafka.security
    assert (security.protocol, security.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    # every secret comes from a Secret reference, none is a literal in the manifests
    from_secrets = {
        each["name"]: each["valueFrom"]["secretKeyRef"]
        for each in container["env"]
        if "secretKeyRef" in each.get("valueFrom", {})
    }
    assert set(from_secrets) == {
        "LOYALTY_KAFKA_SASL_PASSWORD",
        "LOYALTY_API_TOKEN",
        "LOYALTY_LOG_KEY",
    }
    config_maps = [each.get("data", {}) for each in of_kind(objects, "ConfigMap")]
    assert not any(name in data for data in config_maps for name in from_secrets)
    # the CA file the settings name is where the CA Secret is mounted
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    ca_volume = mounts[str(security.ca_file.parent)] if security.ca_file else None
    pod = only(objects, "StatefulSet")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == ca_volume]
    assert [i["path"] for i in volume["secret"]["items"]] == [security.ca_file.name]  # type: ignore[union-attr]
    # Prometheus scrapes /metrics with the token the workers ask for
    (endpoint,) = only(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["authorization"]["credentials"] == from_secrets["LOYALTY_API_TOKEN"]
    # KEDA reads the lag as the workers' user, over TLS
    authentication = only(objects, "TriggerAuthentication")
    for trigger in only(objects, "ScaledObject")["spec"]["triggers"]:
        assert trigger["authenticationRef"]["name"] == authentication["metadata"]["name"]
        assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == (
            "scram_sha512",
            "enable",
        )
    from_env = {each["parameter"]: each["name"] for each in authentication["spec"]["env"]}
    assert from_env == {
        "username": "LOYALTY_KAFKA_SASL_USERNAME",
        "password": "LOYALTY_KAFKA_SASL_PASSWORD",
    }
    (ca,) = authentication["spec"]["secretTargetRef"]
    assert (ca["name"], ca["key"]) == (volume["secret"]["secretName"], "ca.crt")


def test_dev_stays_plaintext_without_a_token(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = worker_settings(rendered["dev"], monkeypatch)
    assert settings.kafka.security.protocol == "PLAINTEXT" and settings.api_token is None
