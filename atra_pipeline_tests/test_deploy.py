"""The deployment files parse and agree with the code: the module they serve, the ports that
connect them, the environment variables the instance reads, and nothing secret in them."""

from __future__ import annotations

import re

import yaml

from atra_pipeline.core.paths import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
MODULE = "atra_pipeline.definitions"


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_the_instance_reads_postgres_from_the_environment_and_keeps_duckdb_writers_apart():
    instance = load("dagster.yaml")
    db = instance["storage"]["postgres"]["postgres_db"]
    assert {v["env"] for v in db.values()} == {"DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_PORT", "DAGSTER_POSTGRES_USER",
                                               "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_DB"}
    assert instance["concurrency"]["pools"]["default_limit"] == 1
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_compose_wires_postgres_user_code_webserver_and_daemon():
    compose = load("docker-compose.yaml")
    services = compose["services"]
    assert set(services) == {"postgres", "user_code", "webserver", "daemon"}
    instance_env = {v["env"] for v in load("dagster.yaml")["storage"]["postgres"]["postgres_db"].values()}
    for name in ("user_code", "webserver", "daemon"):
        assert instance_env <= set(services[name]["environment"]), name
    assert services["webserver"]["ports"] == ["3000:3000"]
    workspace = yaml.safe_load((DEPLOY / "docker" / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert workspace["host"] == "user_code" and f'"-p", "{workspace["port"]}"' in dockerfile
    assert f'"-m", "{MODULE}"' in dockerfile and f"EXPOSE {workspace['port']}" in dockerfile
    assert "COPY deploy/dagster.yaml" in dockerfile


def test_helm_values_serve_the_module_with_the_k8s_launcher_and_no_secrets():
    values = load("helm/values.yaml")
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", MODULE]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert {"name": "ATRA_EXECUTOR", "value": "k8s"} in deployment["env"]
    code = "\n".join(p.read_text() for p in (PROJECT_ROOT / "atra_pipeline").rglob("*.py"))
    for env in re.findall(r"\bATRA_[A-Z_]+\b", (DEPLOY / "helm" / "values.yaml").read_text()):
        assert env in code or env.startswith("ATRA_BINANCE_"), env  # every variable is one the code reads
    for name in ("helm/values.yaml", "docker-compose.yaml", "dagster.yaml"):
        for line in (DEPLOY / name).read_text().splitlines():
            code_part = line.split("#")[0]  # keys live in a Kubernetes secret, never in these files
            assert not re.search(r"(api_?key|api_?secret)\s*:\s*\S", code_part, re.IGNORECASE), (name, line)
