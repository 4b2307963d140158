"""Spark (with its Kafka connector), MLflow and Feast start from Python with their embedded defaults."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka import Producer

from coursekit import data, featurestore, kafka, spark, tracking

pytestmark = pytest.mark.engines


def test_spark_reads_kafka_with_its_connector(bootstrap: str) -> None:
    topic = kafka.ensure_topic("tests.spark", partitions=2, recreate=True)
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


def test_tracking_uri_variable_switches_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.tracking_uri() == "http://mlflow.example:5000"


def test_feast_local_store_serves_online_features(isolated_home: Path) -> None:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32

    frame = pd.DataFrame({"customer_id": ["C1", "C2"], "spend_7d": [10.5, 3.0],
                          "ts": pd.to_datetime(["2026-11-01", "2026-11-01"], utc=True)})
    source_path = featurestore.data_dir() / "spend.parquet"
    frame.to_parquet(source_path)
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    view = FeatureView(name="customer_spend", entities=[customer], ttl=timedelta(days=30),
                       schema=[Field(name="spend_7d", dtype=Float32)],
                       source=FileSource(path=str(source_path), timestamp_field="ts"))
    store = featurestore.feature_store()
    store.apply([customer, view])
    store.materialize(start_date=pd.Timestamp("2026-10-01", tz="UTC").to_pydatetime(),
                      end_date=pd.Timestamp("2026-11-02", tz="UTC").to_pydatetime())
    online = store.get_online_features(features=["customer_spend:spend_7d"],
                                       entity_rows=[{"customer_id": "C1"}]).to_dict()
    assert online["spend_7d"] == [pytest.approx(10.5)]
    assert (isolated_home / "feast" / "online_store.db").is_file()


def test_feast_repo_variable_must_point_at_a_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEAST_REPO_PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no feature_store\.yaml"):
        featurestore.repo_path()
