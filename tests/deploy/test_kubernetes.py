"""deploy/kubernetes/: valid Kubernetes objects that fit together and fit abgate.

Every resource is validated offline (strict: unknown fields are errors)
against the Kubernetes API schemas bundled in ``kubernetes-validate``; then
the objects are checked against each other (selectors, ports, probes) and
against abgate itself (CLI grammar, settings, the experiment loader).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, validate

from abgate.cli import main as abgate_main
from abgate.cli.models import training_params
from model_workers.training import DEMO_VERSIONS
from tests.deploy._contract import REPO, host_and_port, parse_command, settings_env_names

KUBERNETES = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.37"
Resource = dict[str, Any]


def manifest_files() -> list[Path]:
    """Resource files: everything but the kustomization, which is not an API object."""
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def load_resources() -> list[tuple[str, Resource]]:
    return [
        (path.name, doc)
        for path in manifest_files()
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


RESOURCES = load_resources()


def find(kind: str, name: str | None = None) -> list[Resource]:
    return [r for _, r in RESOURCES if r["kind"] == kind and name in (None, r["metadata"]["name"])]


def one(kind: str, name: str) -> Resource:
    (resource,) = find(kind, name)
    return resource


def pod_spec(resource: Resource) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def containers(resource: Resource) -> list[dict[str, Any]]:
    spec = pod_spec(resource)
    return [*spec.get("initContainers", []), *spec["containers"]]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def experiment_text() -> str:
    text: str = one("ConfigMap", "abgate-experiment")["data"]["experiment.yaml"]
    return text


@pytest.mark.parametrize(
    "resource",
    [r for _, r in RESOURCES],
    ids=[f"{f}:{r['kind']}/{r['metadata']['name']}" for f, r in RESOURCES],
)
def test_resource_is_valid_kubernetes(resource: Resource) -> None:
    try:
        validate(resource, KUBERNETES_VERSION, strict=True)
    except ValidationError as exc:
        pytest.fail(f"{'.'.join(map(str, exc.path))}: {exc.message}")
    except SchemaNotFoundError as exc:
        pytest.fail(exc.message)


def test_validation_rejects_an_unknown_field() -> None:
    broken = yaml.safe_load((KUBERNETES / "gateway-deployment.yaml").read_text())
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    with pytest.raises(ValidationError):
        validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]
    (generator,) = kustomization["secretGenerator"]
    (env_file,) = generator["envs"]
    assert f"/deploy/kubernetes/{env_file}" in (REPO / ".gitignore").read_text().split()
    example = KUBERNETES / f"{env_file}.example"
    names = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert names == {"ABGATE_REDIS_URL", "ABGATE_ADMIN_TOKEN"}
    assert names <= settings_env_names()


def test_every_container_runs_a_real_command_as_the_image_user() -> None:
    known = settings_env_names()
    dockerfile_user = "USER 10001:10001"
    assert dockerfile_user in (REPO / "Dockerfile").read_text()
    workloads = [r for _, r in RESOURCES if r["kind"] in ("Deployment", "Job")]
    assert workloads
    for workload in workloads:
        context = pod_spec(workload)["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
        for container in containers(workload):
            assert container["image"] == "abgate"
            assert "command" not in container, "the image's entrypoint is abgate"
            parse_command(container["args"])
            names = {env["name"] for env in container.get("env", [])}
            assert names <= known, f"{container['name']}: {names - known}"
            for source in container.get("envFrom", []):
                assert source["secretRef"]["name"] == "abgate"
            assert container["resources"]["requests"] and container["resources"]["limits"]


def test_configmap_experiment_passes_abgate_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(experiment_text())
    assert abgate_main(["validate", str(path)]) == 0
    assert "ok (demo: champion 80%, challenger 10%, canary 10%)" in capsys.readouterr().out


def test_apply_job_applies_the_configmap() -> None:
    job = one("Job", "abgate-apply")
    (container,) = pod_spec(job)["containers"]
    args = parse_command(container["args"])
    assert args.command == "apply"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert volumes["experiment"]["configMap"]["name"] == "abgate-experiment"
    assert Path(args.file) == Path(mounts["experiment"]["mountPath"]) / "experiment.yaml"
    # The registry the init containers train (drift references go to Redis with it).
    assert mounts["models"]["mountPath"] == "/models"  # the image's ABGATE_REGISTRY_DIR
    trained = [parse_command(c["args"]) for c in pod_spec(job)["initContainers"]]
    assert sorted(t.version for t in trained) == sorted(DEMO_VERSIONS)
    models = {"name": "models", "mountPath": "/models"}
    assert all(models in init["volumeMounts"] for init in pod_spec(job)["initContainers"])
    assert all(training_params(t) == DEMO_VERSIONS[t.version] for t in trained)


def test_endpoints_reach_a_worker_of_their_version(tmp_path: Path) -> None:
    from experiments.loader import load_experiment

    path = tmp_path / "experiment.yaml"
    path.write_text(experiment_text())
    config = load_experiment(path)
    deployments = find("Deployment")
    for variant in [*config.variants, *config.shadows]:
        for url in variant.endpoints:
            host, port = host_and_port(url)
            service = one("Service", host)
            (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == port]
            (deployment,) = [
                d
                for d in deployments
                if selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
            ]
            worker = parse_command(pod_spec(deployment)["containers"][0]["args"])
            assert (worker.command, worker.model, worker.version, worker.port) == (
                "worker", config.model, variant.model_version, service_port["targetPort"],
            ), url  # fmt: skip


def test_worker_init_containers_train_the_demo_versions() -> None:
    for deployment in find("Deployment"):
        (init,) = pod_spec(deployment).get("initContainers", [None])
        if init is None:
            continue
        args = parse_command(init["args"])
        served = parse_command(pod_spec(deployment)["containers"][0]["args"])
        assert args.command == "train" and args.version == served.version
        params = training_params(args)
        assert params == DEMO_VERSIONS[args.version]


def test_gateway_replicas_probes_autoscaler_and_budget() -> None:
    gateway = one("Deployment", "abgate-gateway")
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert gateway["spec"]["replicas"] >= 2
    (container,) = pod_spec(gateway)["containers"]
    args = parse_command(container["args"])
    assert args.command == "gateway"
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": args.port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": args.port}
    assert [p["containerPort"] for p in container["ports"]] == [args.port]

    service = one("Service", "abgate-gateway")
    assert selects(service["spec"]["selector"], labels)
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [args.port]

    hpa = one("HorizontalPodAutoscaler", "abgate-gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "abgate-gateway"
    }  # fmt: skip
    assert 2 <= hpa["spec"]["minReplicas"] <= gateway["spec"]["replicas"]
    assert container["resources"]["requests"]["cpu"], "CPU utilisation needs a request"

    pdb = one("PodDisruptionBudget", "abgate-gateway")
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    for worker in find("Deployment"):
        if worker is not gateway:
            worker_labels = worker["spec"]["template"]["metadata"]["labels"]
            assert not selects(pdb["spec"]["selector"]["matchLabels"], worker_labels)


def test_every_model_version_has_its_own_deployment_and_probes() -> None:
    versions: list[str] = []
    for deployment in find("Deployment", None):
        container = pod_spec(deployment)["containers"][0]
        args = parse_command(container["args"])
        if args.command != "worker":
            continue
        versions.append(args.version)
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": args.port}
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": args.port}
    assert sorted(versions) == sorted(set(versions)) == sorted(DEMO_VERSIONS)
