"""The Helm chart, checked offline: helm lint and template with the chart's ci/ value sets, every
manifest validated against Kubernetes 1.30's schemas, and every environment variable it sets
checked against the services' settings classes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from deploy.deploy_support import CHART, KUBE_VERSION, MONITORING_API, VALUE_SETS, Render, helm_run
from deploy.metric_names import exposed_metric_names
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from accord.cli import StackSettings
from services.api.settings import ApiSettings
from services.evaluator.settings import EvaluatorSettings
from services.ingest.settings import IngestSettings

# Which settings a container reads, by its command.
SETTINGS_BY_COMMAND: dict[tuple[str, ...], type[BaseSettings]] = {
    ("accord-api",): ApiSettings,
    ("accord-ingest",): IngestSettings,
    ("accord-evaluator",): EvaluatorSettings,
    ("accord", "migrate"): StackSettings,
    ("accord", "topics"): StackSettings,
}
COMPONENTS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "ingest": IngestSettings,
    "evaluator": EvaluatorSettings,
}
# libpq's TLS variables, read by asyncpg itself for every connection (docs/deploy.md).
LIBPQ_ENV = {"PGSSLMODE", "PGSSLROOTCERT"}
# Custom resources of the Prometheus Operator: kubernetes-validate has no schema for them.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
ALL_SETS = pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.name.removesuffix("-values.yaml"))


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads: its aliases, or its prefix + field name."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add((prefix + name).upper())
    return names


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in ("Deployment", "Job")]


def full_render(render: Render, values: Path) -> list[dict[str, Any]]:
    return render(values, "--api-versions", MONITORING_API)


# --- helm itself ---------------------------------------------------------------------------------


@ALL_SETS
def test_lint_strict(helm_bin: Path, values: Path) -> None:
    result = helm_run(helm_bin, "lint", "--strict", str(CHART), "-f", str(values), "--kube-version", KUBE_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_required_values_fail_naming_them(helm_bin: Path) -> None:
    result = helm_run(helm_bin, "template", "r", str(CHART))
    assert result.returncode != 0
    assert "at '/database/url': minLength" in result.stderr
    assert "at '/kafka/bootstrapServers': minLength" in result.stderr


def test_an_existing_secret_stands_in_for_the_url(render: Render) -> None:
    docs = render(None, "--set", "kafka.bootstrapServers=k:9092", "--set", "database.existingSecret=db")
    assert by_kind(docs, "Secret") == []


def test_url_and_existing_secret_together_are_refused(helm_bin: Path) -> None:
    result = helm_run(
        helm_bin, "template", "r", str(CHART), "--set", "kafka.bootstrapServers=k:9092",
        "--set", "database.url=postgresql://db/accord", "--set", "database.existingSecret=db",
    )  # fmt: skip
    assert result.returncode != 0
    assert "set database.url or database.existingSecret, not both" in result.stderr


def test_sasl_without_its_credentials_is_refused_naming_them(helm_bin: Path) -> None:
    base = ["template", "r", str(CHART), "-f", str(CHART / "ci" / "default-values.yaml")]
    sasl = ["--set", "kafka.securityProtocol=SASL_SSL"]
    result = helm_run(helm_bin, *base, *sasl)
    assert result.returncode != 0
    assert "at '/kafka/sasl/username': minLength" in result.stderr
    result = helm_run(
        helm_bin, *base, *sasl, "--set", "kafka.sasl.mechanism=PLAIN", "--set", "kafka.sasl.username=accord"
    )
    assert result.returncode != 0
    assert "kafka.sasl.password (or kafka.sasl.existingSecret) is required" in result.stderr


def test_a_misspelt_setting_is_refused(helm_bin: Path) -> None:
    result = helm_run(
        helm_bin, "template", "r", str(CHART), "-f", str(CHART / "ci" / "default-values.yaml"),
        "--set", "ingest.settings.ACCORD_INGEST_MAX_ITEM=5",
    )  # fmt: skip
    assert result.returncode != 0
    assert "'ACCORD_INGEST_MAX_ITEM' not allowed" in result.stderr


# --- Kubernetes validity ---------------------------------------------------------------------------


@ALL_SETS
def test_every_manifest_is_valid_kubernetes(render: Render, values: Path) -> None:
    docs = full_render(render, values)
    assert docs
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:  # a built-in kind must have a schema
            pytest.fail(f"{name}: {exc.message}")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {'.'.join(str(p) for p in exc.path)}: {exc.message}")


# --- settings ------------------------------------------------------------------------------------


@ALL_SETS
def test_every_env_var_is_a_setting_of_its_service(render: Render, values: Path) -> None:
    docs = full_render(render, values)
    config_maps = {d["metadata"]["name"]: d["data"] for d in by_kind(docs, "ConfigMap")}
    checked = 0
    for pod, spec in pod_specs(docs):
        for container in spec["containers"]:
            settings = SETTINGS_BY_COMMAND[tuple(container["command"])]
            names = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                names |= set(config_maps[source["configMapRef"]["name"]])
            unknown = names - env_names(settings) - LIBPQ_ENV
            assert not unknown, f"{pod}/{container['name']} sets {sorted(unknown)}, unknown to {settings.__name__}"
            assert "DATABASE_URL" in names or container["command"] == ["accord", "topics"]
            checked += 1
    assert checked >= 3


@ALL_SETS
def test_services_bind_all_interfaces_on_their_container_port(render: Render, values: Path) -> None:
    docs = full_render(render, values)
    config_maps = {d["metadata"]["name"]: d["data"] for d in by_kind(docs, "ConfigMap")}
    for deployment in by_kind(docs, "Deployment"):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        data = config_maps[container["envFrom"][0]["configMapRef"]["name"]]
        prefix = f"ACCORD_{component.upper()}_"
        assert data[prefix + "HOST"] == "0.0.0.0"
        assert int(data[prefix + "PORT"]) == container["ports"][0]["containerPort"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_schema_offers_exactly_the_services_own_settings() -> None:
    """values.schema.json lists each service's settings by name (a typo fails at install); every
    setting a service has is listed, except the shared ones (top-level values) and host/port."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    for component, cls in COMPONENTS.items():
        offered = set(schema["properties"][component]["properties"]["settings"]["properties"])
        prefix = f"ACCORD_{component.upper()}_"
        own = {n for n in env_names(cls) if n.startswith(prefix)} - {prefix + "HOST", prefix + "PORT"}
        assert offered == own, f"{component}: add {sorted(own - offered)}, remove {sorted(offered - own)}"


# --- shape of the release ------------------------------------------------------------------------


@ALL_SETS
def test_pods_are_locked_down(render: Render, values: Path) -> None:
    for pod, spec in pod_specs(full_render(render, values)):
        assert spec["securityContext"]["runAsNonRoot"] is True, pod
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, pod
        assert spec["automountServiceAccountToken"] is False, pod
        tmp = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, pod
            assert ctx["allowPrivilegeEscalation"] is False, pod
            assert ctx["capabilities"]["drop"] == ["ALL"], pod
            assert any(m["mountPath"] == "/tmp" and m["name"] in tmp for m in container["volumeMounts"]), pod
            assert container["resources"]["requests"], pod


def test_migrations_run_as_a_hook_before_install_and_upgrade(render: Render) -> None:
    docs = render(CHART / "ci" / "default-values.yaml")
    (job,) = by_kind(docs, "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["accord", "migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    # The generated Secret the Job reads must exist first: it is a hook too, with a lower weight.
    (secret,) = by_kind(docs, "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    assert secret["stringData"]["DATABASE_URL"].startswith("postgresql://")


def test_existing_secret_tls_and_topics(render: Render) -> None:
    docs = render(CHART / "ci" / "existing-secret-values.yaml")
    assert by_kind(docs, "Secret") == []
    jobs = {tuple(j["spec"]["template"]["spec"]["containers"][0]["command"]): j for j in by_kind(docs, "Job")}
    assert set(jobs) == {("accord", "migrate"), ("accord", "topics")}
    topics_env = {
        e["name"]: e.get("value") for e in jobs["accord", "topics"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert topics_env["ACCORD_MEASUREMENTS_PARTITIONS"] == "12"
    assert topics_env["ACCORD_TOPIC_REPLICATION_FACTOR"] == "3"
    for pod, spec in pod_specs(docs):
        (container,) = spec["containers"]
        env = {e["name"]: e for e in container["env"]}
        if not pod.endswith("-migrations"):  # every Kafka client: SASL_SSL with SCRAM, the cluster CA
            assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL", pod
            assert env["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512", pod
            assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "accord", "key": "password"}
            kafka_ca = next(m for m in container["volumeMounts"] if m["name"] == "kafka-ca")
            assert env["KAFKA_SSL_CA_FILE"]["value"] == f"{kafka_ca['mountPath']}/ca.crt", pod
        if pod.endswith("-topics"):
            continue
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "accord-db-app", "key": "uri"}, pod
        assert env["PGSSLMODE"]["value"] == "verify-full", pod
        mount = next(m for m in container["volumeMounts"] if m["name"] == "postgresql-ca")
        assert env["PGSSLROOTCERT"]["value"] == f"{mount['mountPath']}/ca.crt", pod
        assert container["image"].startswith("registry.example.com/accord@sha256:"), pod


def test_kafka_is_plaintext_by_default_and_sasl_password_goes_to_a_generated_secret(render: Render) -> None:
    for pod, spec in pod_specs(render(CHART / "ci" / "default-values.yaml")):
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert not {n for n in env if n.startswith("KAFKA_") and n != "KAFKA_SECURITY_PROTOCOL"}, pod
        assert env.get("KAFKA_SECURITY_PROTOCOL", {"value": "PLAINTEXT"})["value"] == "PLAINTEXT", pod
    docs = render(CHART / "ci" / "autoscaling-values.yaml")
    (secret,) = [s for s in by_kind(docs, "Secret") if s["metadata"]["name"].endswith("-kafka")]
    assert secret["stringData"] == {"KAFKA_SASL_PASSWORD": "kafka-secret"}
    for pod, spec in pod_specs(docs):
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"], pod
        assert "KAFKA_SSL_CA_FILE" not in env, pod


def test_kafka_mutual_tls_mounts_the_client_certificate(render: Render) -> None:
    for pod, spec in pod_specs(full_render(render, CHART / "ci" / "monitoring-values.yaml")):
        if pod.endswith("-migrations"):
            continue
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SSL", pod
        assert env["KAFKA_SSL_CERT_FILE"] == mounts["kafka-client"] + "/user.crt", pod
        assert env["KAFKA_SSL_KEY_FILE"] == mounts["kafka-client"] + "/user.key", pod
        volume = next(v for v in spec["volumes"] if v["name"] == "kafka-client")
        assert volume["secret"]["secretName"] == "accord-kafka-user", pod


def test_evaluator_has_time_to_checkpoint_and_rolls_one_at_a_time(render: Render) -> None:
    docs = render(CHART / "ci" / "default-values.yaml")
    (evaluator,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-evaluator")]
    assert evaluator["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
    assert evaluator["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    assert {d["metadata"]["name"].rsplit("-", 1)[1] for d in by_kind(docs, "Service")} == {"api", "ingest", "evaluator"}
    assert by_kind(docs, "HorizontalPodAutoscaler") == []


def test_autoscaling_replaces_fixed_replicas_for_ingest_and_api(render: Render) -> None:
    docs = render(CHART / "ci" / "autoscaling-values.yaml")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(docs, "HorizontalPodAutoscaler")}
    assert {name.rsplit("-", 1)[1] for name in hpas} == {"api", "ingest"}
    assert all(h["apiVersion"] == "autoscaling/v2" for h in hpas.values())
    for deployment in by_kind(docs, "Deployment"):
        scaled = deployment["metadata"]["name"] in hpas
        assert ("replicas" in deployment["spec"]) is not scaled
    # Without the migrations hook (or the topics Job), the generated Secrets are ordinary release resources.
    secrets = by_kind(docs, "Secret")
    assert len(secrets) == 2  # the database URL and the Kafka SASL password
    assert all("annotations" not in secret["metadata"] for secret in secrets)


def test_monitoring_resources_only_where_the_operator_is(render: Render) -> None:
    values = CHART / "ci" / "monitoring-values.yaml"
    without = {d["kind"] for d in render(values)}
    assert not without & {"ServiceMonitor", "PrometheusRule"}
    with_crds = full_render(render, values)
    (monitor,) = by_kind(with_crds, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert by_kind(with_crds, "PrometheusRule")


def test_alerts_use_metrics_the_services_expose(render: Render) -> None:
    exposed = exposed_metric_names()
    (rule,) = by_kind(full_render(render, CHART / "ci" / "monitoring-values.yaml"), "PrometheusRule")
    used = {
        name
        for group in rule["spec"]["groups"]
        for alert in group["rules"]
        for name in re.findall(r"\baccord_[a-z_]+", alert["expr"])
    }
    assert len(used) >= 5
    assert used <= exposed, f"not exposed by any service: {sorted(used - exposed)}"


def test_notes_point_out_idle_evaluators(helm_bin: Path) -> None:
    result = helm_run(
        helm_bin, "install", "r", str(CHART), "--dry-run=client", "-f", str(CHART / "ci" / "default-values.yaml"),
        "--set", "evaluator.replicas=10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "10 replica(s) for 8 partitions" in notes
    assert "2 stay idle" in notes
