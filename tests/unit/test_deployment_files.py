"""The deployment files agree with each other and with the code: every service of
the suite has a container with a health check and only its own secret; the
collector's pipelines use what it defines; Prometheus scrapes the collector's
exporter; Grafana's data sources point at containers that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from services.platform.config import ROOT, SERVICE_PORTS

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
COLLECTOR = yaml.safe_load((ROOT / "infra/otel-collector/config.yaml").read_text())
PROMETHEUS = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
DATASOURCES = yaml.safe_load(
    (ROOT / "infra/grafana/provisioning/datasources/datasources.yaml").read_text()
)


def services() -> dict[str, Any]:
    return dict(COMPOSE["services"])


def test_every_service_runs_in_its_own_container_with_a_health_check() -> None:
    containers = services()
    for name, port in SERVICE_PORTS.items():
        container = containers[name]
        assert container["command"] == [f"services.{name}"]
        probe = container["healthcheck"]["test"]
        assert probe[:4] == ["CMD", "python", "-m", "services.runner.healthcheck"]
        assert probe[4] == f"127.0.0.1:{port}"
        env = {**COMPOSE["x-service"]["environment"], **container.get("environment", {})}
        assert env[f"VENUE_{name.upper()}_ADDR"] == f"{name}:{port}"
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    assert "healthcheck" in containers["postgres"]


def test_each_service_gets_only_its_own_secret() -> None:
    containers = services()
    for name in SERVICE_PORTS:
        secrets = containers[name]["secrets"]
        if name == "identity":
            assert secrets == ["service_master"]
            continue
        assert secrets == [{"source": f"{name}_secret", "target": "service_secret"}]
        assert COMPOSE["secrets"][f"{name}_secret"]["file"] == f".secrets/{name}.secret"


def test_collector_pipelines_use_defined_components() -> None:
    for pipeline in COLLECTOR["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in COLLECTOR[kind], f"{component} is not defined"
    jaeger = COLLECTOR["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0]
    assert jaeger in services()


def test_prometheus_scrapes_the_collectors_exporter() -> None:
    exporter_port = COLLECTOR["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    targets = [
        t
        for job in PROMETHEUS["scrape_configs"]
        for config in job["static_configs"]
        for t in config["targets"]
    ]
    assert targets == [f"otel-collector:{exporter_port}"]


def test_grafana_data_sources_point_at_containers() -> None:
    for source in DATASOURCES["datasources"]:
        host = re.match(r"https?://([^:/]+)", source["url"])
        assert host and host[1] in services(), source["url"]


def test_image_builds_from_what_the_repository_has() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert Path(ROOT / "services/runner/healthcheck.py").exists()
