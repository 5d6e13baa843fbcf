"""docker-compose.yml, without a Docker engine: valid by the Compose specification's own
JSON schema, and every command, setting, port, host name and mounted file it names exists in
the code and the repository."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import pytest
import yaml

from streams.broker.fetch import KAFKA_VERSION
from streams.settings import Settings
from tests.deploy.checks import (
    dockerfile_stages,
    is_setting_name,
    parse_loyalty_command,
    settings_from_env,
)
from tests.deploy.tools import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
WORKERS = ("worker-1", "worker-2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def loyalty_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run our image (built from the Dockerfile)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if "build" in service or str(service.get("image", "")).startswith("loyalty-streams")
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def test_the_file_is_valid_by_the_compose_specification(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    validator_class = jsonschema.validators.validator_for(compose_schema)
    validator_class.check_schema(compose_schema)
    errors = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator_class(compose_schema).iter_errors(compose)
    ]
    assert errors == []


def test_the_schema_refuses_a_misspelt_key(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    """The check above has teeth: the specification is closed, so a typo fails it."""
    broken = copy.deepcopy(compose)
    broken["services"]["worker-1"]["enviroment"] = broken["services"]["worker-1"]["environment"]
    with pytest.raises(jsonschema.ValidationError, match="enviroment"):
        jsonschema.validate(broken, compose_schema)


def test_services_the_issue_asks_for_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    commands = {
        name: parse_loyalty_command(service.get("command", ["worker"]))[0]
        for name, service in loyalty_services(compose).items()
    }
    assert sorted(name for name, command in commands.items() if command == "worker") == sorted(
        WORKERS
    )
    assert "simulate" in commands.values()


def test_kafka_is_the_version_loyalty_runs_embedded_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    # our topics are created with the same partition count, never by a producer's whim
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_the_hosts_loyalty_commands_reach_the_stack_with_their_defaults(
    compose: dict[str, Any],
) -> None:
    """`loyalty status` or `loyalty customer ID` on the host, with no flags: the broker is
    published and advertised at the default bootstrap address, a worker at the default port."""
    host, _, port = Settings.model_fields["bootstrap_servers"].default.partition(":")
    kafka = compose["services"]["kafka"]
    assert f"{port}:{port}" in kafka["ports"]
    advertised = environment(kafka)["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert any(
        listener.endswith(f"//localhost:{port}") or listener.endswith(f"//{host}:{port}")
        for listener in advertised
    )
    published = {
        str(mapping).split(":")[0]
        for name in WORKERS
        for mapping in compose["services"][name]["ports"]
    }
    assert str(Settings.model_fields["web_port"].default) in published


def test_every_command_is_a_real_loyalty_subcommand_with_real_flags(
    compose: dict[str, Any],
) -> None:
    for name, service in loyalty_services(compose).items():
        args = service.get("command")
        if args is None:  # the image's CMD
            continue
        assert isinstance(args, list), f"{name}: command as a list, not a shell string"
        parse_loyalty_command(args)  # raises on an unknown subcommand, option or value


def test_a_misspelt_flag_would_be_caught() -> None:
    with pytest.raises(Exception, match="--customer"):
        parse_loyalty_command(["simulate", "--customer", "5"])
    with pytest.raises(AssertionError, match="simulat"):
        parse_loyalty_command(["simulat"])


def test_every_setting_named_is_a_real_setting_with_a_valid_value(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, service in compose["services"].items():
        env = environment(service)
        if not any(is_setting_name(variable) for variable in env):
            continue
        settings = settings_from_env(env, monkeypatch)
        for variable, value in env.items():
            if variable == "SCHEMA_REGISTRY_URL":
                assert settings.schema_registry_url == value, name


def test_every_loyalty_container_agrees_on_broker_encoding_and_partitions(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {
        name: settings_from_env(environment(service), monkeypatch)
        for name, service in loyalty_services(compose).items()
    }
    facts = {
        (s.bootstrap_servers, s.schema_registry_url, s.partitions, s.topic_prefix)
        for s in seen.values()
    }
    assert len(facts) == 1, facts
    (bootstrap, registry, _, _) = facts.pop()
    assert registry is not None, "the stack runs a schema registry: every container uses it"
    internal = environment(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{bootstrap}" in internal, "the workers use the broker's advertised address"
    host, _, port = registry.removeprefix("http://").partition(":")
    assert host in compose["services"]
    assert environment(compose["services"][host])["SCHEMA_REGISTRY_LISTENERS"].endswith(port)


def test_workers_can_reach_each_other_and_keep_separate_state(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker forwards a customer's request to the owner at web_host:web_port: each
    worker's web host must be its own service name, its port the one the container serves."""
    stages = dockerfile_stages(REPO_ROOT / "Dockerfile")
    exposed = {
        int(word.split("/")[0]) for i in stages[-1].all("EXPOSE") for word in i.json_or_words()
    }
    volumes = []
    for name in WORKERS:
        service = compose["services"][name]
        settings = settings_from_env({**stages[-1].env(), **environment(service)}, monkeypatch)
        assert settings.web_host == name
        assert settings.web_port == Settings.model_fields["web_port"].default
        assert settings.web_port in exposed
        published = [str(port).rsplit(":", 1)[-1] for port in service["ports"]]
        assert str(settings.web_port) in published
        data = [
            v.split(":") for v in service["volumes"] if v.split(":")[1] == str(settings.data_dir)
        ]
        assert len(data) == 1, f"{name}: a volume at its data dir {settings.data_dir}"
        volumes.append(data[0][0])
    assert len(set(volumes)) == len(WORKERS), "each worker its own RocksDB volume"
    assert all(volume in compose["volumes"] for volume in volumes)


def test_prometheus_scrapes_exactly_the_workers(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((REPO_ROOT / "ops/prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    port = Settings.model_fields["web_port"].default
    assert targets == {f"{name}:{port}" for name in WORKERS}
    assert all(name in compose["services"] for name in WORKERS)


def test_every_mounted_file_or_folder_exists_in_the_repository(compose: dict[str, Any]) -> None:
    mounted = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                mounted.append((name, source))
                assert (REPO_ROOT / source).exists(), f"{name} mounts {source}, which is missing"
    assert {source for _, source in mounted} >= {
        "./ops/prometheus/prometheus.yml",
        "./ops/prometheus/rules",
        "./ops/grafana/provisioning",
        "./ops/grafana/dashboards",
    }


def test_mounts_land_where_the_prometheus_and_grafana_files_expect_them(
    compose: dict[str, Any],
) -> None:
    prometheus = {
        v.split(":")[0]: v.split(":")[1] for v in compose["services"]["prometheus"]["volumes"]
    }
    config = yaml.safe_load((REPO_ROOT / "ops/prometheus/prometheus.yml").read_text())
    rules_folder = prometheus["./ops/prometheus/rules"]
    assert all(re.fullmatch(rf"{rules_folder}/[^/]+", pattern) for pattern in config["rule_files"])
    grafana = {v.split(":")[0]: v.split(":")[1] for v in compose["services"]["grafana"]["volumes"]}
    assert grafana["./ops/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = REPO_ROOT / "ops/grafana/provisioning/dashboards"
    paths = {
        provider["options"]["path"]
        for file in providers.glob("*.y*ml")
        for provider in yaml.safe_load(file.read_text()).get("providers", [])
    }
    assert paths <= {grafana["./ops/grafana/dashboards"]}


def test_grafana_reads_the_prometheus_of_the_stack(compose: dict[str, Any]) -> None:
    datasources = REPO_ROOT / "ops/grafana/provisioning/datasources"
    urls = [
        source["url"]
        for file in datasources.glob("*.y*ml")
        for source in yaml.safe_load(file.read_text()).get("datasources", [])
        if source.get("type") == "prometheus"
    ]
    assert urls, "a Prometheus data source is provisioned"
    prometheus = compose["services"]["prometheus"]
    container_ports = {str(mapping).rsplit(":", 1)[-1] for mapping in prometheus["ports"]}
    for url in urls:
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        assert host == "prometheus" and port in container_ports, url
