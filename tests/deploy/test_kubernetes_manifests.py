"""deploy/kubernetes/ validates against Kubernetes' schemas (strict: no unknown fields) and
gives the registry what it needs: RBAC on pods, the downward API, probes, the env vars."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSIONS = ["1.25.0", "1.33.0"]


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(ROOT.glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _kind(kind: str) -> dict[str, Any]:
    return next(d for _, d in _documents() if d["kind"] == kind)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), _documents(), ids=lambda x: str(x)[:30])
def test_manifest_is_valid(name: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_is_strict() -> None:
    broken = copy.deepcopy(_kind("Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["bogusField"] = 1
    with pytest.raises(kubernetes_validate.ValidationError, match="bogusField"):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_every_kind_is_there() -> None:
    kinds = sorted(d["kind"] for _, d in _documents())
    assert kinds == ["Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"]


def test_role_grants_what_the_registry_uses() -> None:
    (rule,) = _kind("Role")["rules"]
    assert rule["resources"] == ["pods"]
    assert set(rule["verbs"]) == {"get", "list", "watch", "patch"}
    binding = _kind("RoleBinding")
    account = _kind("ServiceAccount")["metadata"]["name"]
    assert binding["roleRef"]["name"] == _kind("Role")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]
    pod = _kind("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account


def test_container_runs_the_registry_from_env_and_the_downward_api() -> None:
    (container,) = _kind("Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MICRO_REGISTRY"]["value"] == "kubernetes"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    port = container["ports"][0]
    assert env["MICRO_SERVER_ADDRESS"]["value"].endswith(f":{port['containerPort']}")
    names = list(env)
    assert names.index("POD_IP") < names.index("MICRO_SERVER_ADVERTISE")  # $(POD_IP) expands
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"]["port"] == port["name"]


def test_service_selects_the_deployments_pods() -> None:
    deployment, service = _kind("Deployment"), _kind("Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "mucp"
