"""docker-compose.yml keeps its shape: kobo waits for both stores, each with a healthcheck; Grafana waits for ClickHouse
and is provisioned from grafana/ with the ClickHouse data source and the usage dashboard."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
CLUSTER_FILE = COMPOSE_FILE.with_name("docker-compose.cluster.yml")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """Compose allows a mapping or a list of KEY=VALUE strings; give a mapping either way."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return {key: value for key, _, value in (str(item).partition("=") for item in environment)}
    return {key: str(value) for key, value in environment.items()}


def test_compose_file_runs_kobo_after_healthy_postgres_and_clickhouse() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    services = compose["services"]

    assert {"postgres", "clickhouse", "kobo"} <= set(services)
    for name in ("postgres", "clickhouse", "kobo"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"

    kobo = services["kobo"]
    depends_on = kobo["depends_on"]
    assert isinstance(depends_on, dict), "kobo.depends_on must be the long form, to carry conditions"
    for store in ("postgres", "clickhouse"):
        assert depends_on[store]["condition"] == "service_healthy"

    environment = _environment(kobo)
    assert environment["DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["CLICKHOUSE_URL"].startswith("http://")
    assert "@clickhouse:8123/" in environment["CLICKHOUSE_URL"]


# --- Grafana: the ClickHouse data source and the provisioned usage dashboard ----------------------------------------

ROOT = COMPOSE_FILE.parent
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "clickhouse.yml"
DASHBOARD_PROVIDERS = ROOT / "grafana" / "provisioning" / "dashboards" / "kobo.yml"
DASHBOARD = ROOT / "grafana" / "dashboards" / "usage.json"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → host path of the service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        mounts[target] = source
    return mounts


def _clickhouse_datasource() -> dict[str, Any]:
    provisioning = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    assert provisioning["apiVersion"] == 1
    (datasource,) = provisioning["datasources"]
    return datasource  # type: ignore[no-any-return]


def test_grafana_starts_after_healthy_clickhouse_with_a_pinned_image_and_plugin() -> None:
    grafana = _compose()["services"]["grafana"]

    image, _, tag = grafana["image"].partition(":")
    assert image == "grafana/grafana-oss"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin Grafana to a release, not {tag!r}"

    plugins = _environment(grafana)["GF_INSTALL_PLUGINS"]
    assert re.fullmatch(r"grafana-clickhouse-datasource 4\.\d+\.\d+", plugins), plugins

    assert grafana["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    health = grafana["healthcheck"]["test"]
    assert "/api/health" in " ".join(health) and ":3000" in " ".join(health)
    assert any(str(port).endswith("3000:3000") for port in grafana["ports"])
    assert _environment(grafana)["GF_SECURITY_ADMIN_PASSWORD"]


def test_grafana_mounts_the_provisioning_and_dashboards_folders_of_the_repository() -> None:
    mounts = _mounts(_compose()["services"]["grafana"])

    for target in ("/etc/grafana/provisioning", "/var/lib/grafana/dashboards"):
        source = mounts[target]
        assert source.startswith("./"), f"{target} should come from the repository"
        assert (ROOT / source).is_dir(), f"{source} does not exist"
    assert (ROOT / mounts["/etc/grafana/provisioning"] / "datasources" / DATASOURCES.name).is_file()
    assert (ROOT / mounts["/etc/grafana/provisioning"] / "dashboards" / DASHBOARD_PROVIDERS.name).is_file()
    assert (ROOT / mounts["/var/lib/grafana/dashboards"] / DASHBOARD.name).is_file()

    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text(encoding="utf-8"))["providers"]
    assert [provider["options"]["path"] for provider in providers] == ["/var/lib/grafana/dashboards"]


def test_grafana_data_source_is_the_compose_clickhouse_as_kobo() -> None:
    datasource = _clickhouse_datasource()
    clickhouse = _environment(_compose()["services"]["clickhouse"])

    assert datasource["type"] == "grafana-clickhouse-datasource"
    assert datasource["uid"] == "kobo-clickhouse"
    settings = datasource["jsonData"]
    assert (settings["host"], settings["port"], settings["protocol"]) == ("clickhouse", 8123, "http")
    assert settings["username"] == clickhouse["CLICKHOUSE_USER"]
    assert settings["defaultDatabase"] == clickhouse["CLICKHOUSE_DB"]
    assert datasource["secureJsonData"]["password"] == clickhouse["CLICKHOUSE_PASSWORD"]


def test_usage_dashboard_queries_are_scoped_deduplicated_and_time_filtered() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    uid = _clickhouse_datasource()["uid"]

    assert dashboard["uid"] == "kobo-usage"
    assert dashboard["title"] == "Kobo usage"

    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["org"]["type"] == "textbox"
    assert variables["mode"]["type"] == "custom"
    assert variables["mode"]["query"].replace(" ", "") == "test,live"
    assert variables["event_name"]["type"] == "query"
    assert variables["event_name"]["datasource"]["uid"] == uid
    assert "SELECT DISTINCT event_name" in variables["event_name"]["query"]["rawSql"]

    query_panels = [panel for panel in dashboard["panels"] if panel["type"] != "text"]
    assert {panel["type"] for panel in query_panels} == {"timeseries", "table"}
    assert len(query_panels) >= 4
    for panel in query_panels:
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            sql = target["rawSql"]
            assert target["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": uid}
            assert re.search(r"\bFROM events FINAL\b", sql), f"{panel['title']}: counts unmerged repeats"
            assert "${org:" in sql and "${mode:" in sql, f"{panel['title']}: not scoped to org and mode"
            assert "$__timeFilter(timestamp)" in sql, f"{panel['title']}: ignores the time picker"
    sql = " ".join(target["rawSql"] for panel in query_panels for target in panel["targets"])
    assert "${event_name:" in sql and "${property:" in sql


@pytest.mark.parametrize("compose_file", [COMPOSE_FILE, CLUSTER_FILE], ids=lambda path: path.name)
def test_compose_config_is_valid(compose_file: Path) -> None:
    """`docker-compose config` (or `docker compose config`) accepts the file, where either is installed."""
    command = None
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif (
        shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        command = ["docker", "compose"]
    if command is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    result = subprocess.run(
        [*command, "-f", str(compose_file), "config", "--quiet"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# --- docker-compose.cluster.yml: two ClickHouse replicas coordinated by Keeper, Kobo with KOBO_CLICKHOUSE_CLUSTER ----


def test_cluster_file_runs_two_clickhouse_replicas_with_keeper_and_kobo_on_the_cluster() -> None:
    services = yaml.safe_load(CLUSTER_FILE.read_text(encoding="utf-8"))["services"]
    cluster_xml = ET.parse(ROOT / "clickhouse" / "cluster" / "cluster.xml").getroot()
    remote_servers = cluster_xml.find("remote_servers")
    assert remote_servers is not None
    (cluster,) = list(remote_servers)
    hosts = [replica.findtext("host") for replica in cluster.iter("replica")]
    assert hosts == ["clickhouse-1", "clickhouse-2"]
    assert cluster.findtext("shard/internal_replication") == "true"
    assert cluster_xml.findtext("zookeeper/node/host") == "keeper"

    assert services["keeper"]["image"].startswith("clickhouse/clickhouse-keeper:")
    assert _mounts(services["keeper"])["/etc/clickhouse-keeper/keeper_config.xml"] == "./clickhouse/cluster/keeper.xml"
    for host in hosts:
        server = services[host]
        assert server["hostname"] == host
        assert _environment(server)["CLICKHOUSE_REPLICA"] == host, "the {replica} macro must differ per replica"
        assert server["depends_on"]["keeper"]["condition"] == "service_healthy"
        mounts = _mounts(server)
        assert mounts["/etc/clickhouse-server/config.d/cluster.xml"] == "./clickhouse/cluster/cluster.xml"
        assert mounts["/etc/clickhouse-server/users.d/cluster.xml"] == "./clickhouse/cluster/users.xml"
    for source in ("keeper.xml", "cluster.xml", "users.xml"):
        ET.parse(ROOT / "clickhouse" / "cluster" / source)  # well-formed

    for api in ("kobo", "kobo-2"):
        environment = _environment(services[api])
        assert environment["KOBO_CLICKHOUSE_CLUSTER"] == cluster.tag
        assert re.search(r"@clickhouse-[12]:8123/", environment["CLICKHOUSE_URL"])
        assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert services["kobo-2"]["depends_on"]["kobo"]["condition"] == "service_healthy", "one node migrates first"
