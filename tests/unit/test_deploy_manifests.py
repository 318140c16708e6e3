"""The deployment kit (deploy/) read by parsers: no Docker engine or cluster runs here, so
these tests check what would break a deployment or the contract: the journal topic's
settings (docs/events.md), one sequencer, probes on the ports served, the settings' names
(docs/cli.md), the files kustomize needs, and compose's health dependencies."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

# docs/cli.md "Where the ledger keeps things": the environment names of the settings.
INTERFACE_SETTINGS = frozenset(
    {"LEDGER_STORE", "LEDGER_KAFKA_BOOTSTRAP", "LEDGER_TOPIC_PREFIX", "LEDGER_POLICY"}
)
# `ledger run`'s health endpoint port and address (deploy/README.md).
HEALTH_PORT_SETTING = "LEDGER_HEALTH_PORT"
HEALTH_HOST_SETTING = "LEDGER_HEALTH_HOST"
# `ledger api`'s token hashes (docs/security.md).
API_TOKENS_SETTING = "LEDGER_API_TOKENS_FILE"
# `ledger run`'s checkpoint signing key (docs/pipeline.md "Signed checkpoints").
CHECKPOINT_KEY_SETTING = "LEDGER_CHECKPOINT_KEY"
# docs/security.md: the store's password file, and the Kafka client security settings.
SECURITY_SETTINGS = frozenset(
    {
        "LEDGER_STORE_PASSWORD_FILE",
        "LEDGER_KAFKA_SECURITY",
        "LEDGER_KAFKA_USERNAME",
        "LEDGER_KAFKA_PASSWORD_FILE",
        "LEDGER_KAFKA_CA_FILE",
    }
)
LEDGER_ENVIRONMENT = (
    SECURITY_SETTINGS
    | INTERFACE_SETTINGS
    | {
        HEALTH_PORT_SETTING,
        HEALTH_HOST_SETTING,
        API_TOKENS_SETTING,
        CHECKPOINT_KEY_SETTING,
    }
)

# docs/events.md "Topics": the journal is append-only forever.
JOURNAL_TOPIC_CONFIG: dict[str, object] = {
    "cleanup.policy": "delete",
    "retention.ms": -1,
    "retention.bytes": -1,
    "min.insync.replicas": 2,
    "unclean.leader.election.enable": False,
}
SEVEN_YEARS_MS = 7 * 365 * 24 * 3600 * 1000


# ---------------------------------------------------------------------------- loading


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path} is not a YAML mapping"
    return document


def load_k8s_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is None:
                continue
            assert isinstance(document, dict), f"{path}: a document is not a mapping"
            assert {"apiVersion", "kind", "metadata"} <= document.keys(), path
            objects.append(document)
    return objects


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [
        item
        for item in load_k8s_objects()
        if item["kind"] == kind and item["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def kustomization() -> dict[str, Any]:
    return load_yaml(K8S / "kustomization.yaml")


def generator(name: str) -> dict[str, Any]:
    found = [item for item in kustomization()["configMapGenerator"] if item["name"] == name]
    assert len(found) == 1, f"expected one configMapGenerator {name}"
    entry: dict[str, Any] = found[0]
    return entry


def settings() -> dict[str, str]:
    """The `ledger-settings` ConfigMap's literals, as a mapping."""
    pairs = (literal.partition("=") for literal in generator("ledger-settings")["literals"])
    return {key: value for key, _, value in pairs}


def only_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def port_number(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, resolving a named container port."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert len(numbers) == 1, f"no container port named {port!r}"
    number: int = numbers[0]
    return number


def probe_ports(container: dict[str, Any]) -> set[int]:
    """The ports the container's probes check, all on /health."""
    assert {"readinessProbe", "livenessProbe"} <= container.keys(), "probes missing"
    probes = [
        container[key]
        for key in ("startupProbe", "readinessProbe", "livenessProbe")
        if key in container
    ]
    for probe in probes:
        assert probe["httpGet"]["path"] == "/health"
    return {port_number(container, probe["httpGet"]["port"]) for probe in probes}


def environment_names(container: dict[str, Any]) -> set[str]:
    """Every environment name the container gets: its own and its ConfigMaps'."""
    names = {entry["name"] for entry in container.get("env", [])}
    for source in container.get("envFrom", []):
        configmap = source["configMapRef"]["name"]
        literals = generator(configmap)["literals"]
        names |= {literal.split("=", 1)[0] for literal in literals}
    return names


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# ------------------------------------------------------------------------- kubernetes


def test_every_file_kustomization_names_exists_and_every_manifest_is_listed() -> None:
    listed = list(kustomization()["resources"])
    for item in kustomization()["configMapGenerator"]:
        listed += item.get("files", [])
    for name in listed:
        assert (K8S / name).is_file(), f"kustomization.yaml names {name}, which is missing"
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert manifests <= set(kustomization()["resources"]), "a manifest is left out"


def test_journal_topic_is_append_only_forever_as_events_md_requires() -> None:
    topic = k8s_object("KafkaTopic", "ledger-events")["spec"]
    assert topic["topicName"] == f"{settings()['LEDGER_TOPIC_PREFIX']}.events"
    assert topic["config"] == JOURNAL_TOPIC_CONFIG
    assert topic["replicas"] == 3
    # seq is the topic's order: one partition.
    assert topic["partitions"] == 1


def test_inbox_rejects_and_checkpoints_topics_are_replicated_and_kept() -> None:
    prefix = settings()["LEDGER_TOPIC_PREFIX"]
    for name in ("inbox", "rejects", "checkpoints"):
        topic = k8s_object("KafkaTopic", f"ledger-{name}")["spec"]
        assert topic["topicName"] == f"{prefix}.{name}"
        assert topic["replicas"] == 3
        config = topic["config"]
        assert config["cleanup.policy"] == "delete"
        assert config["min.insync.replicas"] == 2
        assert config["unclean.leader.election.enable"] is False
        retention = config["retention.ms"]
        assert retention == -1 or retention >= SEVEN_YEARS_MS, f"{name} retention too short"
    # One inbox partition by default: byte-identical re-runs (docs/scaling.md).
    assert k8s_object("KafkaTopic", "ledger-inbox")["spec"]["partitions"] == 1


def test_topics_belong_to_the_cluster_the_ledger_connects_to() -> None:
    topics = [item for item in load_k8s_objects() if item["kind"] == "KafkaTopic"]
    assert len(topics) == 4
    clusters = {item["metadata"]["labels"]["strimzi.io/cluster"] for item in topics}
    assert len(clusters) == 1
    # Strimzi names the bootstrap Service `<cluster>-kafka-bootstrap`.
    # Strimzi's TLS listener (SCRAM-SHA-512) on 9093: docs/security.md.
    assert settings()["LEDGER_KAFKA_BOOTSTRAP"] == f"{clusters.pop()}-kafka-bootstrap:9093"


def test_the_sequencer_is_one_pod_replaced_never_overlapped() -> None:
    deployment = k8s_object("Deployment", "ledger-run")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = only_container(deployment)
    assert container["args"] == ["run"]
    health_port = int(settings()[HEALTH_PORT_SETTING])
    assert probe_ports(container) == {health_port}
    assert "startupProbe" in container, "a long journal replay must not trip liveness"


def test_the_api_rolls_with_replicas_to_spare() -> None:
    deployment = k8s_object("Deployment", "ledger-api")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = only_container(deployment)
    args = container["args"]
    assert args[0] == "api"
    served_port = int(args[args.index("--port") + 1])
    assert args[args.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - serves the pod network
    assert probe_ports(container) == {served_port}

    budget = k8s_object("PodDisruptionBudget", "ledger-api")["spec"]
    assert selects(budget["selector"]["matchLabels"], pod_labels(deployment))
    assert 1 <= budget["minAvailable"] < spec["replicas"], "drains must stay possible"


@pytest.mark.parametrize("name", ["ledger-run", "ledger-api"])
def test_services_reach_the_ports_the_probes_check(name: str) -> None:
    deployment = k8s_object("Deployment", name)
    container = only_container(deployment)
    service = k8s_object("Service", name)["spec"]
    assert selects(service["selector"], pod_labels(deployment))
    other = k8s_object("Deployment", "ledger-api" if name == "ledger-run" else "ledger-run")
    assert not selects(service["selector"], pod_labels(other)), "a Service selects both"
    targets = {port_number(container, port["targetPort"]) for port in service["ports"]}
    assert targets == probe_ports(container)


@pytest.mark.parametrize("name", ["ledger-run", "ledger-api"])
def test_settings_use_the_interface_names(name: str) -> None:
    container = only_container(k8s_object("Deployment", name))
    names = environment_names(container)
    assert names >= INTERFACE_SETTINGS
    ledger_names = {n for n in names if n.startswith("LEDGER_")}
    assert ledger_names <= LEDGER_ENVIRONMENT, (
        f"unknown settings {ledger_names - LEDGER_ENVIRONMENT}"
    )
    # The store URL carries a password: from a Secret, never a literal.
    store = next(entry for entry in container["env"] if entry["name"] == "LEDGER_STORE")
    assert "secretKeyRef" in store["valueFrom"]
    assert "LEDGER_STORE" not in settings()


@pytest.mark.parametrize("name", ["ledger-run", "ledger-api"])
def test_ledger_policy_points_at_the_mounted_policy(name: str) -> None:
    deployment = k8s_object("Deployment", name)
    container = only_container(deployment)
    policy_path = PurePosixPath(settings()["LEDGER_POLICY"])
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(policy_path.parent))
    assert mount.get("readOnly") is True
    configmap = volumes[mount["name"]]["configMap"]["name"]
    assert policy_path.name in generator(configmap)["files"]


def test_the_deployed_policy_is_the_shipped_demonstration_policy() -> None:
    # The base deploys the package's demonstration policy; an operator replaces it in an
    # overlay (deploy/README.md). A copy that drifted would record another policy hash.
    deployed = (K8S / "policy.toml").read_bytes()
    assert deployed == (ROOT / "ledger" / "policies" / "demo.toml").read_bytes()
    assert tomllib.loads(deployed.decode("utf-8"))["version"]


def test_kustomize_builds_and_wires_the_generated_config_maps() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:  # a failure that says what to do, never a silent skip
        pytest.fail("kubectl is not installed: install it to build deploy/k8s with kustomize")
    built = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    objects = [item for item in yaml.safe_load_all(built.stdout) if item]
    configmaps = {item["metadata"]["name"] for item in objects if item["kind"] == "ConfigMap"}
    kinds = [item["kind"] for item in objects]
    assert kinds.index("KafkaTopic") < kinds.index("Deployment"), "topics first"
    deployments = [item for item in objects if item["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"ledger-run", "ledger-api"}
    for item in deployments:
        pod = item["spec"]["template"]["spec"]
        referenced = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        for source in pod["containers"][0]["envFrom"]:
            referenced.add(source["configMapRef"]["name"])
        assert referenced <= configmaps, f"{item['metadata']['name']} names a missing ConfigMap"


# ---------------------------------------------------------------------------- compose


def compose() -> dict[str, Any]:
    return load_yaml(DEPLOY / "compose.yaml")


def service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = compose()["services"]
    assert name in services, f"compose has no service {name}"
    found: dict[str, Any] = services[name]
    return found


def healthcheck_url_port(entry: dict[str, Any]) -> int:
    test = entry["healthcheck"]["test"]
    command = " ".join(test[1:])
    url = next(word for word in command.replace("'", " ").split() if word.startswith("http"))
    assert urlsplit(url).path == "/health"
    port = urlsplit(url).port
    assert port is not None
    return port


def test_depends_on_conditions_refer_to_services_with_healthchecks() -> None:
    services: dict[str, Any] = compose()["services"]
    checked = 0
    for name, entry in services.items():
        for dependency, rule in entry.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule.get("condition") == "service_healthy":
                test = services[dependency].get("healthcheck", {}).get("test")
                assert test, f"{name} waits for {dependency}, which has no healthcheck"
                assert test[0] in {"CMD", "CMD-SHELL"}
                checked += 1
    assert checked >= 3


def test_kafka_runs_kraft_with_listeners_the_ledger_uses() -> None:
    kafka = service("kafka")
    assert kafka["image"] == "apache/kafka:4.1.1"
    environment = kafka["environment"]
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = environment["KAFKA_NODE_ID"]
    assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node_id}@")
    advertised = environment["KAFKA_ADVERTISED_LISTENERS"].split(",")
    bootstrap = service("ledger-run")["environment"]["LEDGER_KAFKA_BOOTSTRAP"]
    assert any(listener.endswith(f"//{bootstrap}") for listener in advertised)
    # The host's tools (`ledger publish`, kcat) reach the advertised 127.0.0.1:9092.
    assert any(listener.endswith("//127.0.0.1:9092") for listener in advertised)
    assert any(port.startswith("127.0.0.1:9092:") for port in kafka["ports"])


def test_postgres_is_16_and_checked_with_pg_isready() -> None:
    postgres = service("postgres")
    assert postgres["image"].split(":")[1].split(".")[0] == "16"
    assert "pg_isready" in postgres["healthcheck"]["test"]


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("ledger-run", ["run"]),
        (
            "ledger-api",
            [
                *["api", "--host", "0.0.0.0", "--port", "8080"],  # noqa: S104 - in its container
                *[
                    "--tls-cert",
                    "/run/secrets/api-tls.crt",
                    "--tls-key",
                    "/run/secrets/api-tls.key",
                ],
            ],
        ),
    ],
)
def test_ledger_services_run_the_image_with_interface_settings(
    name: str, command: list[str]
) -> None:
    entry = service(name)
    assert entry["command"] == command
    assert (DEPLOY / entry["build"]["context"] / entry["build"]["dockerfile"]).is_file()
    environment = entry["environment"]
    assert set(environment) >= {"LEDGER_STORE", "LEDGER_KAFKA_BOOTSTRAP", "LEDGER_TOPIC_PREFIX"}
    assert set(environment) <= LEDGER_ENVIRONMENT
    store = urlsplit(environment["LEDGER_STORE"])
    assert store.scheme == "postgresql"
    assert store.hostname in compose()["services"]
    assert environment["LEDGER_KAFKA_BOOTSTRAP"].split(":")[0] in compose()["services"]
    assert environment["LEDGER_TOPIC_PREFIX"] == "ledger"
    assert set(entry["depends_on"]) >= {"postgres"}


def test_compose_healthchecks_probe_the_served_ports() -> None:
    run = service("ledger-run")
    assert healthcheck_url_port(run) == int(run["environment"][HEALTH_PORT_SETTING])
    api = service("ledger-api")
    served = int(api["command"][api["command"].index("--port") + 1])
    assert healthcheck_url_port(api) == served
    assert any(port.endswith(f":{served}") for port in api["ports"])


# ------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def test_dockerfile_installs_the_package_and_runs_ledger_as_non_root() -> None:
    instructions = dockerfile_instructions()
    bases = [argument.split()[0] for op, argument in instructions if op == "FROM"]
    assert bases, "no FROM"
    assert set(bases) == {"python:3.11-slim"}
    assert any(op == "RUN" and "pip install" in argument for op, argument in instructions)
    users = [argument for op, argument in instructions if op == "USER"]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    entrypoints = [json.loads(argument) for op, argument in instructions if op == "ENTRYPOINT"]
    assert entrypoints[-1] == ["ledger"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "ledger" in scripts["project"]["scripts"]
    # The image's uid is the one the pods require.
    for name in ("ledger-run", "ledger-api"):
        pod = k8s_object("Deployment", name)["spec"]["template"]["spec"]
        assert str(pod["securityContext"]["runAsUser"]) == users[-1].split(":")[0]
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_api_reads_its_token_hashes_from_a_mounted_secret() -> None:
    container = only_container(k8s_object("Deployment", "ledger-api"))
    tokens = next(e for e in container["env"] if e["name"] == API_TOKENS_SETTING)["value"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {
        v["name"]: v
        for v in k8s_object("Deployment", "ledger-api")["spec"]["template"]["spec"]["volumes"]
    }
    mount = next(m for m in mounts.values() if tokens.startswith(m["mountPath"] + "/"))
    assert mount["readOnly"] is True
    assert "secret" in volumes[mount["name"]]
    api = service("ledger-api")
    assert api["environment"][API_TOKENS_SETTING] == "/run/secrets/api-tokens"
    assert "api-tokens" in api["secrets"]


def test_the_sequencer_health_endpoint_binds_the_pod_address_only_when_told() -> None:
    assert settings()[HEALTH_HOST_SETTING] == "0.0.0.0"  # noqa: S104 - the pod's probe
    assert service("ledger-run")["environment"][HEALTH_HOST_SETTING] == "0.0.0.0"  # noqa: S104


# -------------------------------------------------------------------------- security


KAFKA_USER_ACLS = {
    "ledger": {
        ("topic", "ledger.inbox"): {"Read", "Describe"},
        ("group", "ledger.sequencer"): {"Read", "Describe"},
        ("topic", "ledger.events"): {"Write", "Read", "Describe"},
        ("topic", "ledger.rejects"): {"Write", "Read", "Describe"},
        ("topic", "ledger.checkpoints"): {"Write", "Read", "Describe"},
        ("transactionalId", "ledger.journal-relay"): {"Write", "Describe"},
        ("transactionalId", "ledger.rejects-relay"): {"Write", "Describe"},
        ("transactionalId", "ledger.checkpoint-relay"): {"Write", "Describe"},
    },
    "ledger-upstream": {("topic", "ledger.inbox"): {"Write", "Describe"}},
    "ledger-reader": {
        ("topic", "ledger.events"): {"Read", "Describe"},
        ("topic", "ledger.rejects"): {"Read", "Describe"},
        ("topic", "ledger.checkpoints"): {"Read", "Describe"},
        ("group", "ledger.reporting"): {"Read", "Describe"},
    },
}


def test_kafka_users_have_scram_and_exactly_their_acls() -> None:
    users = [item for item in load_k8s_objects() if item["kind"] == "KafkaUser"]
    assert {user["metadata"]["name"] for user in users} == set(KAFKA_USER_ACLS)
    for user in users:
        spec = user["spec"]
        assert spec["authentication"] == {"type": "scram-sha-512"}
        assert spec["authorization"]["type"] == "simple"
        granted = {
            (acl["resource"]["type"], acl["resource"]["name"]): set(acl["operations"])
            for acl in spec["authorization"]["acls"]
        }
        assert all(
            acl["resource"]["patternType"] == "literal" for acl in spec["authorization"]["acls"]
        )
        assert granted == KAFKA_USER_ACLS[user["metadata"]["name"]]


def _mounted_secret(deployment: dict[str, Any], path: str) -> str:
    """The Secret mounted read-only at the folder holding `path`."""
    container = only_container(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mount = next(
        m for m in container["volumeMounts"] if str(PurePosixPath(path).parent) == m["mountPath"]
    )
    assert mount["readOnly"] is True
    secret: str = volumes[mount["name"]]["secret"]["secretName"]
    return secret


def _environment(container: dict[str, Any]) -> dict[str, Any]:
    own = {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
    return settings() | own


def test_the_sequencer_is_the_kafka_principal_ledger_with_files_from_secrets() -> None:
    deployment = k8s_object("Deployment", "ledger-run")
    env = _environment(only_container(deployment))
    assert env["LEDGER_KAFKA_SECURITY"] == "sasl_ssl"
    assert env["LEDGER_KAFKA_USERNAME"] == "ledger"
    # Strimzi writes the KafkaUser's password into a Secret of the user's name.
    assert _mounted_secret(deployment, env["LEDGER_KAFKA_PASSWORD_FILE"]) == "ledger"
    ca_secret = _mounted_secret(deployment, env["LEDGER_KAFKA_CA_FILE"])
    assert ca_secret == "ledger-cluster-ca-cert"
    assert env["LEDGER_STORE"]["secretKeyRef"]["name"] == "ledger-store-writer"
    store_password = _mounted_secret(deployment, env["LEDGER_STORE_PASSWORD_FILE"])
    assert store_password == "ledger-store-writer"
    assert _mounted_secret(deployment, env[CHECKPOINT_KEY_SETTING]) == "ledger-checkpoint-key"


def test_the_api_reads_as_the_reader_role_behind_tls() -> None:
    deployment = k8s_object("Deployment", "ledger-api")
    container = only_container(deployment)
    env = _environment(container)
    assert env["LEDGER_STORE"]["secretKeyRef"]["name"] == "ledger-store-reader"
    assert _mounted_secret(deployment, env["LEDGER_STORE_PASSWORD_FILE"]) == "ledger-store-reader"
    args = container["args"]
    cert, key = args[args.index("--tls-cert") + 1], args[args.index("--tls-key") + 1]
    assert _mounted_secret(deployment, cert) == _mounted_secret(deployment, key) == "ledger-api-tls"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"


def test_the_store_is_created_by_its_owner_before_the_services() -> None:
    job = k8s_object("Job", "ledger-store-init")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["store", "init"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["LEDGER_STORE"]["secretKeyRef"]["name"] == "ledger-store-owner"
    order = kustomization()["sortOptions"]["legacySortOptions"]["orderFirst"]
    assert order.index("Job") < order.index("Deployment")


PASSWORD_FILE_SETTINGS = (
    "LEDGER_STORE_PASSWORD_FILE",
    "LEDGER_KAFKA_PASSWORD_FILE",
    "LEDGER_KAFKA_CA_FILE",
    "LEDGER_API_TOKENS_FILE",
    CHECKPOINT_KEY_SETTING,
)


@pytest.mark.parametrize(
    ("name", "store_role", "kafka_principal"),
    [
        ("ledger-store-init", "ledger_owner", None),
        ("ledger-run", "ledger_writer", "ledger"),
        ("ledger-api", "ledger_reader", None),
    ],
)
def test_compose_services_use_their_roles_with_passwords_from_secret_files(
    name: str, store_role: str, kafka_principal: str | None
) -> None:
    entry = service(name)
    environment = entry["environment"]
    store = urlsplit(environment["LEDGER_STORE"])
    assert (store.username, store.password) == (store_role, None)
    assert environment.get("LEDGER_KAFKA_USERNAME") == kafka_principal
    declared = set(compose()["secrets"])
    for setting in PASSWORD_FILE_SETTINGS:
        if setting in environment:
            path = PurePosixPath(environment[setting])
            assert path.parent == PurePosixPath("/run/secrets"), setting
            assert path.name in entry["secrets"], f"{name} does not mount {path.name}"
            assert path.name in declared
    for secret in entry["secrets"]:
        assert compose()["secrets"][secret]["file"].startswith("./secrets/")


def test_compose_kafka_takes_only_sasl_ssl_clients_and_denies_by_default() -> None:
    environment = service("kafka")["environment"]
    protocols = dict(
        item.split(":") for item in environment["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert protocols == {"INTERNAL": "SASL_SSL", "EXTERNAL": "SASL_SSL", "CONTROLLER": "PLAINTEXT"}
    # The one plaintext listener is the controller's, on the container's own loopback.
    assert "CONTROLLER://127.0.0.1:" in environment["KAFKA_LISTENERS"]
    assert environment["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert environment["KAFKA_AUTHORIZER_CLASS_NAME"].endswith(".StandardAuthorizer")
    assert environment["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert set(environment["KAFKA_SUPER_USERS"].split(";")) == {"User:admin", "User:ANONYMOUS"}
    run = service("ledger-run")
    assert run["environment"]["LEDGER_KAFKA_SECURITY"] == "sasl_ssl"
    assert run["depends_on"]["kafka-acls"] == {"condition": "service_completed_successfully"}
    assert run["depends_on"]["ledger-store-init"] == {"condition": "service_completed_successfully"}
    for script in ("kafka-start.sh", "kafka-acls.sh", "postgres-roles.sh"):
        assert (DEPLOY / "compose" / script).is_file()


def test_both_kits_give_the_sequencer_a_checkpoint_key_and_nobody_else() -> None:
    assert service("ledger-run")["environment"][CHECKPOINT_KEY_SETTING].startswith("/run/")
    for name in ("ledger-api", "ledger-store-init"):
        assert CHECKPOINT_KEY_SETTING not in service(name)["environment"]
        assert "checkpoint-key.pem" not in service(name).get("secrets", [])
    assert CHECKPOINT_KEY_SETTING not in _environment(
        only_container(k8s_object("Deployment", "ledger-api"))
    )
