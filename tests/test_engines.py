"""Spark (with its Kafka connector), MLflow and Feast start from Python with their embedded defaults,
and each switches to a real deployment with its one setting (run here as real local servers)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import Producer

from conftest import free_port_pair
from coursekit import data, featurestore, kafka, spark, tracking
from coursekit.errors import EngineUnreachable

pytestmark = pytest.mark.engines


@pytest.fixture
def local_spark() -> Iterator[None]:
    """The test's Spark JVM ends with the test, so it holds no memory for the rest of the run."""
    yield
    spark.stop()


def test_spark_reads_kafka_with_its_connector(bootstrap: str, local_spark: None) -> None:
    topic = kafka.fresh_topic("tests.spark", partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap})
    events = data.order_events(n_orders=20, seed=3)
    for event in events:
        producer.produce(topic, key=event["order_id"], value=data.to_json(event))
    producer.flush()
    session = spark.session()
    frame = (session.read.format("kafka").option("kafka.bootstrap.servers", bootstrap)
             .option("subscribe", topic).load())
    assert frame.count() == len(events)
    assert session.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert session.sparkContext.master == "local[2]"
    kafka.delete_topics([topic])


def test_spark_master_variable_picks_the_cluster_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    assert spark.local_settings()["spark.master"] == "local[2]"
    monkeypatch.setenv(spark.MASTER_ENV, "spark://spark-master.example:7077")
    assert spark.local_settings()["spark.master"] == "spark://spark-master.example:7077"
    assert spark.local_settings(**{"spark.sql.shuffle.partitions": "8"})["spark.sql.shuffle.partitions"] == "8"


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while kafka.port_free(port):
        assert proc.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the server did not listen within {timeout:.0f} s"
        time.sleep(0.3)


def _server(cmd: list[str], port: int, log: Path, timeout: float = 120, **env: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **env})
    try:
        _wait_for_port(port, proc, timeout, log)
    except BaseException:
        _end(proc)
        raise
    return proc


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_spark_remote_variable_uses_a_spark_connect_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyspark

    home = Path(pyspark.__file__).parent
    port = free_port_pair()
    server = _server([str(home / "bin" / "spark-submit"), "--class",
                      "org.apache.spark.sql.connect.service.SparkConnectServer", "--master", "local[1]",
                      "--driver-memory", "512m", "--conf", "spark.ui.enabled=false",
                      "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
                      "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
                      "--conf", f"spark.connect.grpc.binding.port={port}"],
                     port, tmp_path / "connect.log", SPARK_HOME=str(home))
    try:
        monkeypatch.setenv(spark.REMOTE_ENV, f"sc://127.0.0.1:{port}")
        session = spark.session()
        assert type(session).__module__.startswith("pyspark.sql.connect"), "a Spark Connect session"
        assert session.range(10).selectExpr("sum(id) AS s").collect()[0]["s"] == 45
        session.stop()
    finally:
        _end(server)


def test_an_unreachable_spark_connect_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(spark.REMOTE_ENV, f"sc://127.0.0.1:{free_port_pair()}")
    monkeypatch.setattr(spark, "CONNECT_TIMEOUT", 1.0)
    started = time.monotonic()
    with pytest.raises(EngineUnreachable) as err:
        spark.session()
    assert time.monotonic() - started < 10, "the client's own retries take minutes: fail fast"
    assert "unset SPARK_REMOTE" in err.value.fix


def test_connector_jars_exclude_what_pyspark_ships() -> None:
    names = [j.name for j in spark.connector_jars()]
    assert any(n.startswith("spark-sql-kafka-0-10_2.13-") for n in names)
    assert not any(n.startswith(("scala-library", "hadoop-client", "slf4j")) for n in names)
    import pyspark

    assert all(pyspark.__version__ in n for n in names if n.startswith("spark-")), "connector matches pyspark"


def test_mlflow_tracks_to_sqlite_in_the_state_dir(isolated_home: Path) -> None:
    import mlflow

    assert tracking.configure() == f"sqlite:///{isolated_home / 'mlflow' / 'mlflow.db'}"
    experiment_id = tracking.experiment("tests")
    with mlflow.start_run() as run:
        mlflow.log_param("model", "baseline")
        mlflow.log_metric("mae", 4.2)
        mlflow.log_dict({"ok": True}, "check.json")
    got = mlflow.get_run(run.info.run_id)
    assert got.data.metrics["mae"] == 4.2
    assert got.info.experiment_id == experiment_id
    assert (isolated_home / "mlflow" / "artifacts" / "tests").is_dir(), "artifacts stay in the state dir"


def test_sqlite_stores_are_fresh_copies_of_one_migrated_template(tmp_path: Path, isolated_home: Path) -> None:
    from mlflow import MlflowClient

    first, second = tracking.sqlite_store(tmp_path / "a"), tracking.sqlite_store(tmp_path / "b")
    assert first == f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}" and list((isolated_home / "mlflow").glob("empty-*.db"))
    MlflowClient(first, first).create_registered_model("only-in-a")
    assert [m.name for m in MlflowClient(first, first).search_registered_models()] == ["only-in-a"]
    assert MlflowClient(second, second).search_registered_models() == [], "each store is its own"
    assert tracking.sqlite_store(tmp_path / "a") == first, "an existing store is kept"
    assert [m.name for m in MlflowClient(first, first).search_registered_models()] == ["only-in-a"]


def test_tracking_uri_variable_switches_to_a_tracking_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             isolated_home: Path) -> None:
    import mlflow

    port = free_port_pair()
    server = _server([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                      "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                      "--artifacts-destination", str(tmp_path / "artifacts")],
                     port, tmp_path / "mlflow.log", MLFLOW_DISABLE_TELEMETRY="true")
    try:
        uri = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        assert tracking.configure() == uri
        assert mlflow.get_tracking_uri() == uri
        tracking.experiment("tests-server")
        with mlflow.start_run() as run:
            mlflow.log_metric("mae", 3.5)
            mlflow.log_dict({"ok": True}, "check.json")
        assert mlflow.get_run(run.info.run_id).data.metrics["mae"] == 3.5
        assert list((tmp_path / "artifacts").rglob("check.json")), "the server decides where artifacts go"
        assert not (isolated_home / "mlflow" / "mlflow.db").exists(), "nothing went to the embedded store"
    finally:
        _end(server)


def _customer_view(name: str, frame: pd.DataFrame, dtype: Any, ttl_days: int) -> Any:
    """A local store with one feature view ``name`` over ``frame`` (customer_id, one feature, ts), applied."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType

    source_path = featurestore.data_dir() / f"{name}.parquet"
    frame.to_parquet(source_path)
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    feature = next(c for c in frame.columns if c not in ("customer_id", "ts"))
    view = FeatureView(name=name, entities=[customer], ttl=timedelta(days=ttl_days),
                       schema=[Field(name=feature, dtype=dtype)],
                       source=FileSource(path=str(source_path), timestamp_field="ts"))
    store = featurestore.feature_store()
    store.apply([customer, view])
    return store


def test_feast_local_store_serves_online_features(isolated_home: Path) -> None:
    from feast.types import Float32

    frame = pd.DataFrame({"customer_id": ["C1", "C2"], "spend_7d": [10.5, 3.0],
                          "ts": pd.to_datetime(["2026-11-01", "2026-11-01"], utc=True)})
    store = _customer_view("customer_spend", frame, Float32, 30)
    store.materialize(start_date=pd.Timestamp("2026-10-01", tz="UTC").to_pydatetime(),
                      end_date=pd.Timestamp("2026-11-02", tz="UTC").to_pydatetime())
    online = store.get_online_features(features=["customer_spend:spend_7d"],
                                       entity_rows=[{"customer_id": "C1"}]).to_dict()
    assert online["spend_7d"] == [pytest.approx(10.5)]
    assert (isolated_home / "feast" / "online_store.db").is_file()


def test_feast_point_in_time_join_keeps_every_entity_row(isolated_home: Path) -> None:
    """One training row per entity row, also where the customer's only values are older than the ttl
    (Feast 0.67's default Dask engine drops those rows; the course's repository reads with DuckDB)."""
    from feast.types import Int64

    store = _customer_view("customer_risk", pd.DataFrame({
        "customer_id": ["C1", "C2"], "chargebacks": [1, 2],
        "ts": pd.to_datetime(["2026-10-01", "2026-11-01"], utc=True)}), Int64, 7)
    entity_rows = pd.DataFrame({"customer_id": ["C1", "C2", "C2"],
                                "event_timestamp": pd.to_datetime(["2026-11-02", "2026-10-30", "2026-11-02"],
                                                                  utc=True)})
    got = store.get_historical_features(entity_df=entity_rows, features=["customer_risk:chargebacks"]).to_df()
    got = got.sort_values(["customer_id", "event_timestamp"], ignore_index=True)
    assert len(got) == 3, "every entity row comes back"
    assert got["chargebacks"].isna().tolist() == [True, True, False], "too old, not yet known, known"


def test_feast_repo_variable_opens_that_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "team_repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(
        f"project: team\nprovider: local\nregistry: {tmp_path / 'registry.db'}\n"
        f"online_store:\n  type: sqlite\n  path: {tmp_path / 'online.db'}\nentity_key_serialization_version: 3\n")
    monkeypatch.setenv("FEAST_REPO_PATH", str(repo))
    monkeypatch.setenv("JUPYTERHUB_USER", "Ada")
    assert featurestore.repo_path() == repo
    store = featurestore.feature_store()
    assert store.project == f"ada_{hashlib.sha256(b'Ada').hexdigest()[:6]}_team", "a shared repository: my project"
    monkeypatch.setenv("COURSEKIT_NAMESPACE", "never")
    store = featurestore.feature_store()
    assert store.project == "team"
    assert store.list_feature_views() == []


def test_feast_repo_variable_must_point_at_a_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEAST_REPO_PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no feature_store\.yaml"):
        featurestore.repo_path()
