"""The deployment files parse and agree with the code: the module they serve, the ports that
connect them, the environment variables the instance reads, and nothing secret in them."""

from __future__ import annotations

import re

import yaml

from atra_pipeline.core.storage.paths import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
MODULE = "atra_pipeline.definitions"


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_the_instance_reads_postgres_from_the_environment_and_keeps_duckdb_writers_apart():
    instance = load("dagster.yaml")
    db = instance["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"  # the driver dagster-postgres installs
    assert {v["env"] for v in db.values()} == {"DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_PORT",
                                               "DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD",
                                               "DAGSTER_POSTGRES_DB"}
    assert instance["concurrency"]["pools"]["default_limit"] == 1
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["compute_logs"]["config"]["base_dir"] == {"env": "DAGSTER_COMPUTE_LOGS_DIR"}


def test_dagster_accepts_both_instance_files():
    """Dagster's own validation of the instance files (a run-queue setting in two places, say,
    is refused only when the instance loads); the Postgres one also runs in the service test."""
    from dagster._core.instance.config import dagster_instance_config

    for home in (DEPLOY, PROJECT_ROOT / ".dagster_home"):
        config, _ = dagster_instance_config(str(home))
        assert config["telemetry"]["enabled"] is False, home
        # a dead run's pool slot is freed: it cannot block the duckdb pool forever
        assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0


def test_compose_wires_postgres_user_code_webserver_and_daemon():
    compose = load("docker-compose.yaml")
    services = compose["services"]
    assert set(services) == {"postgres", "user_code", "webserver", "daemon"}
    instance_env = set(re.findall(r"env: (\w+)", (DEPLOY / "dagster.yaml").read_text()))
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


def test_the_readme_service_commands_match_the_local_workspace_and_instance():
    """The README's "Run as a service" commands start the code server where
    deploy/local/workspace.yaml (which the end-to-end test uses) looks for it, and export every
    variable deploy/dagster.yaml reads."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("## Run as a service"):readme.index("## Scaling out")]
    workspace = yaml.safe_load((DEPLOY / "local" / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert (f"dagster code-server start -h {workspace['host']} -p {workspace['port']} -m {MODULE} "
            f"--location-name {workspace['location_name']}") in section
    assert section.count("-w deploy/local/workspace.yaml") == 2  # webserver and daemon
    instance_text = (DEPLOY / "dagster.yaml").read_text()
    for env in set(re.findall(r"env: (\w+)", instance_text)):
        assert f"{env}=" in section, env
    assert 'cp deploy/dagster.yaml "$DAGSTER_HOME/"' in section
    # the role and database the service test makes (PostgresServer) the same way
    assert "createuser --pwprompt dagster" in section and "createdb --owner dagster dagster" in section
