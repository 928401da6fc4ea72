"""The compose file's shape (no Docker engine runs here: the services' commands are tested
outside Docker by test_workers.py and test_nginx.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_the_seed_services_each_with_a_health_check() -> None:
    services = compose()["services"]
    default = {name for name, service in services.items() if "profiles" not in service}
    assert default == {"pacs_nginx_proxy", "pacs_app", "pacs_dimse", "pacs_db"}
    assert all("healthcheck" in service for service in services.values())


def test_the_object_storage_profile_adds_an_s3_server_the_app_and_dimse_can_use() -> None:
    document = compose()
    s3 = document["services"]["pacs_s3"]
    assert s3["profiles"] == ["object-storage"] and "ports" not in s3  # internal only
    assert "-s3.port.iceberg=0" in s3["command"] and "-s3.port.lance=0" in s3["command"]
    for name in ("pacs_app", "pacs_dimse"):
        environment = document["services"][name]["environment"]
        assert environment["KLINIKA_STORAGE"] == "${KLINIKA_STORAGE:-files}"
        assert "KLINIKA_S3_SECRET_ACCESS_KEY" not in environment  # the file, never the value
        assert environment["KLINIKA_S3_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/s3_secret_key"
        assert "s3_secret_key" in document["services"][name]["secrets"]


def test_only_https_http_and_dimse_are_published() -> None:
    published = {
        port.split(":")[0]
        for service in compose()["services"].values()
        for port in service.get("ports", [])
    }
    assert published == {"443", "80", "4242"}


def test_named_volumes_and_secrets_from_files() -> None:
    document = compose()
    assert set(document["volumes"]) == {"klinika_data", "postgres_data", "s3_data"}
    assert {"db_password", "jwt_secret"} <= set(document["secrets"])
    app = document["services"]["pacs_app"]
    assert "KLINIKA_JWT_SECRET" not in app["environment"]  # the file, never the value
    assert app["environment"]["KLINIKA_JWT_SECRET_FILE"] == "/run/secrets/jwt_secret"


def test_the_dockerfile_copies_what_exists_and_the_template_variables_are_set() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \./?\S*$", dockerfile, re.M):
        for name in source.split():
            assert (DEPLOY.parent / name).exists(), name
    template = (DEPLOY / "nginx" / "templates" / "klinika.conf.template").read_text()
    wanted = set(re.findall(r"\$\{([A-Z_]+)\}", template))
    given = set(compose()["services"]["pacs_nginx_proxy"]["environment"])
    assert wanted <= given, wanted - given


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """``docker compose config`` where the Compose plugin exists (the issue's check; our CI
    machines have only the Docker client, so the shape tests above carry the weight there)."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if shutil.which("docker") is None or probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed on this machine")
    env_file = tmp_path / ".env"
    env_file.write_text((DEPLOY / ".env.example").read_text())
    result = subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_image_installs_the_pinned_viewer() -> None:
    from klinika.viewer.install import OHIF_VERSION

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"npm pack @ohif/app@{OHIF_VERSION}" in dockerfile
    assert "klinika viewer install --tarball" in dockerfile  # which checks the pinned sha512


def test_only_nginx_is_trusted_to_say_who_the_client_is() -> None:
    """Issue 14, finding 1: behind compose every client shared nginx's address."""
    document = compose()
    services = document["services"]
    nginx = services["pacs_nginx_proxy"]["networks"]["default"]["ipv4_address"]
    subnet = document["networks"]["default"]["ipam"]["config"][0]["subnet"]
    import ipaddress

    assert ipaddress.ip_address(nginx) in ipaddress.ip_network(subnet)
    assert services["pacs_app"]["environment"]["KLINIKA_TRUSTED_PROXIES"] == nginx
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"ENV KLINIKA_TRUSTED_PROXIES={nginx}" in dockerfile
    assert services["pacs_app"]["environment"]["KLINIKA_PUBLIC_BASE_URL"].startswith("https://")


def test_every_service_rotates_its_logs_and_klinika_logs_json() -> None:
    services = compose()["services"]
    for name, service in services.items():
        logging = service["logging"]
        assert logging["driver"] == "json-file", name
        assert logging["options"]["max-size"] and int(logging["options"]["max-file"]) >= 2, name
    for name in ("pacs_app", "pacs_dimse"):
        assert services[name]["environment"]["KLINIKA_LOG_FORMAT"] == "json"
        assert services[name]["environment"]["KLINIKA_LOG_STREAM"] == "stdout"


def test_production_backs_up_hourly_and_exposes_metrics_only_inside() -> None:
    app = compose()["services"]["pacs_app"]
    environment = app["environment"]
    assert environment["KLINIKA_BACKUP_DIR"] == "/backups"
    assert any(volume.endswith(":/backups") for volume in app["volumes"])
    assert "60" in environment["KLINIKA_BACKUP_INTERVAL_MINUTES"]  # RPO <= 1 h by default
    assert "60" in environment["KLINIKA_BACKUP_RPO_MINUTES"]
    assert environment["KLINIKA_METRICS_PORT"] == "9464"  # never published (see ports above)
    assert environment["PROMETHEUS_MULTIPROC_DIR"] in app["tmpfs"]
