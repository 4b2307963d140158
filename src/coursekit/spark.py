"""Spark for the course: a local ``SparkSession`` with Spark's Kafka connector, or your cluster.

::

    from coursekit import spark
    session = spark.session()

By default Spark runs in-process in ``local[2]`` mode with a 512 MB driver, Arrow on, the UI and
progress bars off and JVM logs written to ``<state>/spark/logs`` instead of the notebook.
``spark-sql-kafka`` (same version as pyspark) is on the classpath, so
``readStream.format("kafka")`` reaches :func:`coursekit.kafka.bootstrap_servers`.
``session(delta=True)`` adds Delta Lake (``delta-spark`` 4.4.0: its SQL extension and catalog), for
``format("delta")`` tables; it costs a few seconds more at start-up, so only lessons that use Delta ask for it.

``SPARK_REMOTE=sc://host:15002`` connects to a Spark Connect server instead; ``SPARK_MASTER``
(e.g. ``spark://host:7077``) runs the driver here against that cluster manager.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from coursekit import jars
from coursekit.config import engine_dir, quiet_native_output
from coursekit.errors import EngineFailed, EngineUnreachable
from coursekit.java import log4j2_to_file, require_java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REMOTE_ENV = "SPARK_REMOTE"
MASTER_ENV = "SPARK_MASTER"
DEFAULT_MASTER = "local[2]"
DEFAULT_CONNECT_PORT = 15002
CONNECT_TIMEOUT = 10.0
DRIVER_MEMORY = "512m"



DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # the course's tables are small: one partition for the log's snapshot (Delta's default, 50, made each
    # micro-batch of lesson 22 take 17-20 s on 2 cores instead of about 3), and no checksum file per commit
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.databricks.delta.writeChecksumFile.enabled": "false",
}


def connector_jars(bundle: str = "spark-kafka") -> list[Path]:
    """The jars of a bundle (Spark's Kafka connector; ``spark-delta``) that pyspark does not ship itself."""
    import pyspark

    shipped = {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [jar for jar in jars.require(bundle) if _artifact(jar.name) not in shipped]


def _jars(delta: bool) -> list[Path]:
    """The Kafka connector's jars, and with ``delta`` Delta Lake's, each artifact once."""
    chosen: dict[str, Path] = {}
    for bundle in ("spark-kafka", "spark-delta") if delta else ("spark-kafka",):
        for jar in connector_jars(bundle):
            chosen.setdefault(_artifact(jar.name), jar)
    return list(chosen.values())


def _artifact(filename: str) -> str:
    """``kafka-clients-3.9.2.jar`` -> ``kafka-clients``."""
    stem = filename.removesuffix(".jar")
    parts = stem.split("-")
    while parts and parts[-1][:1].isdigit():
        parts.pop()
    return "-".join(parts)


def _require_reachable(remote: str) -> None:
    """Fail fast when the Spark Connect server of ``sc://host:port`` does not answer (the client itself
    retries with back-off for minutes)."""
    import socket
    import time
    from urllib.parse import urlsplit

    if not remote.startswith("sc://"):
        return  # e.g. "local": pyspark starts a server itself
    where = urlsplit(remote.split(";")[0])
    host, port = where.hostname or "localhost", where.port or DEFAULT_CONNECT_PORT
    timeout = CONNECT_TIMEOUT
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise EngineUnreachable(
                    f"no Spark Connect server answered at {REMOTE_ENV}={remote} within {timeout:.0f} s ({exc})",
                    f"check that the server is up and reachable from here, or unset {REMOTE_ENV} to run Spark "
                    "in this kernel") from exc
            time.sleep(0.5)


def local_settings(*, delta: bool = False, **conf: str) -> dict[str, str]:
    """The Spark settings of the course's driver: ``local[2]`` (or ``$SPARK_MASTER``), small, quiet, UTC;
    with ``delta``, Delta Lake's jars and SQL extension too."""
    home = engine_dir("spark")
    log4j = home / "log4j2.properties"
    log4j.write_text(log4j2_to_file(home / "spark.log", level="warn"))
    java_opts = (f"-Dlog4j2.configurationFile={log4j} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k "
                 "-XX:ReservedCodeCacheSize=64m -XX:MaxMetaspaceSize=256m -XX:MaxDirectMemorySize=128m")
    return {
        "spark.master": os.environ.get(MASTER_ENV, "").strip() or DEFAULT_MASTER,
        "spark.driver.memory": DRIVER_MEMORY,
        "spark.driver.extraJavaOptions": java_opts,
        "spark.jars": ",".join(str(j) for j in _jars(delta)),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "2",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
        "spark.sql.warehouse.dir": str(home / "warehouse"),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        **(DELTA_CONF if delta else {}),
        **conf,
    }


def session(app_name: str = "coursekit", *, delta: bool = False, **conf: str) -> SparkSession:
    """Return the course's ``SparkSession`` (created once per kernel); ``conf`` adds Spark settings.

    ``delta=True`` adds Delta Lake (against ``SPARK_REMOTE``, only its two settings: the server must have
    the jars). A kernel's session is created once: ask for Delta in the first call.
    """
    from pyspark.sql import SparkSession

    remote = os.environ.get(REMOTE_ENV, "").strip()
    if remote:
        _require_reachable(remote)
        builder = SparkSession.builder.remote(remote).appName(app_name)
        for key, value in {**(DELTA_CONF if delta else {}), **conf}.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()

    java = require_java()
    os.environ.setdefault("JAVA_HOME", str(java.resolve().parent.parent))
    home = engine_dir("spark")
    settings = local_settings(delta=delta, **conf)
    builder = SparkSession.builder.appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    native_log = quiet_native_output()  # the JVM's own stderr goes to a log file, not the notebook
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise EngineFailed(f"Spark could not start: {exc}",
                           f"see {native_log or 'the kernel log'} and {home / 'spark.log'}; "
                           "`coursekit doctor` checks Java and jars") from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def stop() -> None:
    """Stop the kernel's Spark session and its JVM (a learner frees the memory; tests use it)."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    gateway = SparkContext._gateway
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if proc is not None:  # the JVM exits when its stdin closes (PythonGatewayServer)
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=60)


def checkpoint_dir(name: str) -> str:
    """A fresh checkpoint location for streaming query ``name`` under the state directory."""
    import shutil

    path = engine_dir("spark") / "checkpoints" / name
    shutil.rmtree(path, ignore_errors=True)
    return str(path)
