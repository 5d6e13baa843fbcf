"""The real tools the deployment tests check our files with, fetched from registries into
`.tools/deploy/` (gitignored) on first use and reused after: kustomize built with Go; the
published schemas of the Compose specification and of the custom resources we use (KEDA's
ScaledObject, the Prometheus Operator's ServiceMonitor), taken from their projects' Go
modules; and Strimzi's KafkaTopic, whose CRD no registry serves, as its Java API model from
Maven Central (the classes Strimzi generates its CRDs from), read with `javap`. Every
version is pinned here, in one place.

A fresh machine needs Go, Maven and a JDK (`make test` already needs the last two for Kafka):
the fetch works from nothing. A fetch that fails raises ToolFetchError with the command and
its output: the tests fail, they do not skip.

    .venv/bin/python -m tests.deploy.tools     # fetch everything now (and say how long)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / ".tools" / "deploy"

# kustomize v5.8.3 needs Go 1.27; this machine (and CI, the same kind) has Go 1.26
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.8.2"
COMPOSE_SPEC_MODULE = "github.com/compose-spec/compose-go/v2"
COMPOSE_SPEC_VERSION = "v2.16.2"
COMPOSE_SPEC_SCHEMA = "schema/compose-spec.json"
KEDA_MODULE = "github.com/kedacore/keda/v2"
KEDA_VERSION = "v2.21.0"
KEDA_SCALEDOBJECT_CRD = "config/crd/bases/keda.sh_scaledobjects.yaml"
KEDA_TRIGGERAUTHENTICATION_CRD = "config/crd/bases/keda.sh_triggerauthentications.yaml"
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
SERVICEMONITOR_CRD = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
STRIMZI_API_ARTIFACT = "io.strimzi:api"
STRIMZI_VERSION = "1.2.0"
STRIMZI_KAFKA_TOPIC_CLASS = "io.strimzi.api.kafka.model.topic.KafkaTopic"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

# The Kubernetes versions the rendered objects are validated against (kubernetes-validate
# 1.37.0 ships schemas for 1.25 to 1.37): an older minor that managed clusters still run, so
# that the manifests use nothing only a recent cluster accepts, and the newest it knows, so
# that they use nothing a recent cluster has removed.
KUBERNETES_VERSIONS = ("1.33", "1.37")

GO_TIMEOUT_S = 600.0


class ToolFetchError(RuntimeError):
    """A tool or schema could not be fetched or built; the message says what ran and why it
    failed."""


def go_env() -> dict[str, str]:
    """Go's caches inside `.tools/deploy/`, so a fetch touches nothing outside the repository
    and `make clean` removes it (writable module cache: Go's is read-only by default)."""
    go_root = TOOLS_DIR / "go"
    env = dict(os.environ)
    env.update(
        GOPATH=str(go_root),
        GOMODCACHE=str(go_root / "pkg" / "mod"),
        GOCACHE=str(go_root / "build-cache"),
        GOBIN=str(TOOLS_DIR / "bin"),
        GOFLAGS="-mod=mod -modcacherw",
        # the installed Go builds it, rather than a toolchain downloaded for the occasion
        GOTOOLCHAIN="local",
    )
    return env


def _go(*args: str) -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolFetchError("`go` is not on PATH: the deployment tests build kustomize with Go")
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    command = [go, *args]
    try:
        done = subprocess.run(
            command,
            cwd=TOOLS_DIR,
            env=go_env(),
            capture_output=True,
            text=True,
            timeout=GO_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise ToolFetchError(
            f"`{' '.join(command)}` took more than {GO_TIMEOUT_S:.0f} s"
        ) from error
    if done.returncode != 0:
        # `go mod download -json` reports on stdout, `go install` on stderr
        said = "\n".join(text.strip() for text in (done.stderr, done.stdout) if text.strip())
        raise ToolFetchError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{said}")
    return done.stdout


def go_module_dir(module: str, version: str) -> Path:
    """The unpacked source of a Go module at a version, downloaded into the local cache (the
    Go module proxy checks it against the checksum database)."""
    answer = json.loads(_go("mod", "download", "-json", f"{module}@{version}"))
    if answer.get("Error"):
        raise ToolFetchError(f"go mod download {module}@{version}: {answer['Error']}")
    return Path(answer["Dir"])


def module_file(module: str, version: str, path: str) -> Path:
    found = go_module_dir(module, version) / path
    if not found.is_file():
        raise ToolFetchError(f"{module}@{version} has no {path}")
    return found


def kustomize() -> Path:
    """The kustomize binary at KUSTOMIZE_VERSION, built on first use."""
    binary = TOOLS_DIR / "bin" / "kustomize"
    if binary.is_file() and _kustomize_version(binary) == KUSTOMIZE_VERSION:
        return binary
    _go("install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}")
    if not binary.is_file():
        raise ToolFetchError(f"go install {KUSTOMIZE_MODULE} left no binary at {binary}")
    return binary


def _kustomize_version(binary: Path) -> str:
    done = subprocess.run([binary, "version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def kustomize_build(folder: Path) -> list[dict[str, Any]]:
    """Every object `kustomize build` renders from a kustomization folder."""
    done = subprocess.run(
        [kustomize(), "build", folder], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"kustomize build {folder} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as Docker Compose itself validates with."""
    path = module_file(COMPOSE_SPEC_MODULE, COMPOSE_SPEC_VERSION, COMPOSE_SPEC_SCHEMA)
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@dataclass(frozen=True)
class CrdSchema:
    """One served version of a CustomResourceDefinition: its group/version, kind and the
    openAPIV3Schema the API server validates objects with."""

    api_version: str
    kind: str
    schema: dict[str, Any]


def crd_schemas(path: Path) -> list[CrdSchema]:
    crd = yaml.safe_load(path.read_text())
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    return [
        CrdSchema(f"{group}/{version['name']}", kind, version["schema"]["openAPIV3Schema"])
        for version in crd["spec"]["versions"]
        if version.get("served", True)
    ]


def published_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """openAPIV3Schema by (apiVersion, kind) for the custom resources whose projects publish
    their CRDs in a registry (the Go module proxy): KEDA and the Prometheus Operator."""
    files = [
        module_file(KEDA_MODULE, KEDA_VERSION, KEDA_SCALEDOBJECT_CRD),
        module_file(KEDA_MODULE, KEDA_VERSION, KEDA_TRIGGERAUTHENTICATION_CRD),
        module_file(PROMETHEUS_OPERATOR_MODULE, PROMETHEUS_OPERATOR_VERSION, SERVICEMONITOR_CRD),
    ]
    return {(crd.api_version, crd.kind): crd.schema for path in files for crd in crd_schemas(path)}


def _run_tool(command: list[str], what: str) -> str:
    if shutil.which(command[0]) is None:
        raise ToolFetchError(f"`{command[0]}` is not on PATH: {what}")
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        said = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise ToolFetchError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{said}")
    return done.stdout


def strimzi_api_jar() -> Path:
    """Strimzi's API model (`io.strimzi:api`) from Maven Central."""
    folder = TOOLS_DIR / "strimzi"
    jar = folder / f"api-{STRIMZI_VERSION}.jar"
    if not jar.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _run_tool(
            ["mvn", "-q", "-B", f"{MAVEN_DEPENDENCY_PLUGIN}:copy",
             f"-Dartifact={STRIMZI_API_ARTIFACT}:{STRIMZI_VERSION}", f"-DoutputDirectory={folder}"],
            "Maven fetches Strimzi's API model",
        )  # fmt: skip
    if not jar.is_file():
        raise ToolFetchError(f"Maven left no {jar}")
    return jar


def _javap(class_name: str) -> str:
    return _run_tool(
        ["javap", "-v", "-p", "-cp", str(strimzi_api_jar()), class_name],
        "the JDK's javap reads Strimzi's API model",
    )


_JSON_TYPE_OF_JAVA = {
    "java.lang.String": "string",
    "java.lang.Integer": "integer",
    "int": "integer",
    "java.lang.Boolean": "boolean",
    "boolean": "boolean",
    "java.util.Map": "object",
    "java.util.List": "array",
}


def _field_types(javap_output: str) -> dict[str, str]:
    fields = {}
    for java_type, name in re.findall(r"^  private (?:final )?([\w.]+)(?:<.*>)? (\w+);$",
                                      javap_output, re.M):  # fmt: skip
        if java_type not in _JSON_TYPE_OF_JAVA:
            raise ToolFetchError(f"Strimzi's model has a field {name} of type {java_type}: map it")
        fields[name] = _JSON_TYPE_OF_JAVA[java_type]
    return fields


def _getter_bounds(javap_output: str) -> dict[str, dict[str, int]]:
    """`@Minimum`/`@Maximum` of each getter, as JSON schema keywords by property name."""
    bounds: dict[str, dict[str, int]] = {}
    sections = re.split(r"^  public \S+ get(\w+)\(\);$", javap_output, flags=re.M)
    for getter, rest in zip(sections[1::2], sections[2::2], strict=True):
        body = re.split(r"^  \S", rest, maxsplit=1, flags=re.M)[0]  # up to the next member
        prop = getter[0].lower() + getter[1:]
        for keyword, value in re.findall(r"annotations\.(Minimum|Maximum)\(\s*value=(-?\d+)", body):
            bounds.setdefault(prop, {})[keyword.lower()] = int(value)
    return bounds


def strimzi_kafka_topic_schema() -> dict[str, Any]:
    """A JSON schema of KafkaTopic as Strimzi's published model defines it: the API versions
    it serves, the spec's fields with their types and bounds, the spec required from v1 on;
    closed, so a field the model does not have fails."""
    resource = _javap(STRIMZI_KAFKA_TOPIC_CLASS)
    crd = resource[resource.index("annotations.Crd(") :]
    (group,) = set(re.findall(r'group="([^"]+)"', crd))
    kind = re.search(r'kind="([^"]+)"', crd)
    served = re.findall(r'Crd\$Spec\$Version\(\s*name="(\w+)"\s*served=true', crd)
    if kind is None or not served:
        raise ToolFetchError(f"no kind or served version in {STRIMZI_KAFKA_TOPIC_CLASS}'s @Crd")
    spec = _javap(f"{STRIMZI_KAFKA_TOPIC_CLASS}Spec")
    bounds = _getter_bounds(spec)
    properties: dict[str, Any] = {
        name: {"type": json_type, **bounds.get(name, {})}
        for name, json_type in _field_types(spec).items()
    }
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"enum": [f"{group}/{version}" for version in served]},
            "kind": {"const": kind.group(1)},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "additionalProperties": False, "properties": properties},
            "status": {"type": "object"},
        },
    }


def fetch_all() -> None:
    kustomize()
    compose_schema()
    published_crd_schemas()
    strimzi_kafka_topic_schema()


if __name__ == "__main__":
    started = time.monotonic()
    fetch_all()
    print(f"deployment tools ready in {TOOLS_DIR} ({time.monotonic() - started:.1f} s)")
