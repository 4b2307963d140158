"""The data mesh section's engines: each domain's DuckDB database, and Rego policies."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coursekit import duck, mesh, policy, transform


@pytest.fixture
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COURSEKIT_HOME", str(tmp_path))
    monkeypatch.delenv(duck.DIR_ENV, raising=False)
    monkeypatch.delenv(policy.OPA_ENV, raising=False)
    return tmp_path


def test_each_domain_gets_its_own_database_rebuilt_the_same(own_home: Path) -> None:
    paths = mesh.build(seed=5, n_orders=120, n_customers=60)
    assert set(paths) == set(mesh.DOMAINS)
    assert all(Path(p).parent == own_home / "duckdb" for p in paths.values())
    con = mesh.connect("payments", read_only=True)
    first = con.sql("SELECT count(*), sum(amount_cents) FROM payments").fetchone()
    assert con.sql("SHOW TABLES").fetchall() == [("payments",)], "a domain's database holds only its own tables"
    con.close()
    mesh.build(seed=5, n_orders=120, n_customers=60)
    con = mesh.connect("payments", read_only=True)
    assert con.sql("SELECT count(*), sum(amount_cents) FROM payments").fetchone() == first
    con.close()
    with pytest.raises(KeyError, match="not a Brightcart domain"):
        mesh.connect("finance")


def test_timestamps_are_shown_in_utc_in_any_time_zone(own_home: Path) -> None:
    code = ("from coursekit import duck; c = duck.connect(None); "
            "print(c.sql(\"SELECT TIMESTAMPTZ '2026-11-02 09:00:00Z'::VARCHAR\").fetchone()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "TZ": "Pacific/Chatham"}).stdout
    assert out.strip() == "2026-11-02 09:00:00+00"


def test_a_database_open_elsewhere_gives_a_clear_error(own_home: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "from coursekit import duck; c = duck.connect('orders'); print('open', flush=True); "
                               "import time; time.sleep(30)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "COURSEKIT_HOME": str(own_home)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(duck.DatabaseBusy, match="open for writing in another process"):
            duck.connect("orders")
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    duck.connect("orders").close()  # free again once the holder is gone
    duck.drop("orders")
    assert not Path(duck.path("orders")).exists()


def test_no_extension_is_downloaded(own_home: Path) -> None:
    con = duck.connect(None)
    with pytest.raises(Exception, match="httpfs"):
        con.sql("SELECT * FROM read_csv('https://example.invalid/x.csv')")


PII = """package brightcart.pii
import rego.v1
deny contains msg if {
  some column in input.columns
  column.name in {"email", "phone"}
  not column.classification
  msg := sprintf("%s is personal data and has no classification", [column.name])
}
"""


def test_policies_evaluate_in_process(own_home: Path) -> None:
    engine = policy.Engine({"pii": PII})
    bad = {"columns": [{"name": "email"}, {"name": "amount"}, {"name": "phone", "classification": "pii"}]}
    assert engine.query("data.brightcart.pii.deny", bad) == ["email is personal data and has no classification"]
    assert engine.query("data.brightcart.pii.deny", {"columns": []}) == []
    assert engine.query("data.brightcart.pii.unknown_rule", bad) is None


def test_a_policy_that_does_not_parse_says_where(own_home: Path) -> None:
    with pytest.raises(policy.PolicyError, match=r"does not parse: .* at broken:3:"):
        policy.Engine({"broken": "package broken\nimport rego.v1\ndeny if {\n"})
    with pytest.raises(policy.PolicyError, match="give a reference"):
        policy.Engine({"pii": PII}).query("brightcart.pii.deny; true")


def test_an_unreachable_opa_is_reported_with_the_fix(own_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(policy.OPA_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(ConnectionError, match="unset COURSEKIT_OPA_URL"):
        policy.Engine({"pii": PII})


OPA = shutil.which("opa") or next((p for p in ("/tmp/opa-bin/opa",) if Path(p).exists()), None)


@pytest.mark.skipif(OPA is None, reason="no `opa` binary (go install github.com/open-policy-agent/opa@v1.x)")
def test_the_same_policies_run_on_an_opa_server(own_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(OPA), "run", "--server", f"--addr=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        monkeypatch.setenv(policy.OPA_ENV, f"http://127.0.0.1:{port}")
        engine = policy.Engine({"pii": PII})
        bad = {"columns": [{"name": "email"}, {"name": "amount"}]}
        assert engine.query("data.brightcart.pii.deny", bad) == ["email is personal data and has no classification"]
        with pytest.raises(policy.PolicyError, match="refused PUT"):
            policy.Engine({"broken": "package broken\nimport rego.v1\ndeny if {\n"})
    finally:
        server.terminate()
        server.wait()


def test_every_domain_contract_is_valid_odcs_and_true_of_its_data(own_home: Path) -> None:
    from coursekit import contracts

    paths = mesh.build(seed=5, n_orders=120, n_customers=60, place="t1")
    assert Path(paths["orders"]) == own_home / "duckdb" / "t1" / "orders.duckdb"
    for domain in mesh.DOMAINS:
        assert contracts.load(domain)["apiVersion"] == "v3.2.0"
        assert contracts.data_contract(domain, place="t1").lint().result.value == "passed", domain
    assert contracts.data_contract("orders", place="t1").test().result.value == "passed"
    con = mesh.connect("orders", place="t1")
    con.execute("INSERT INTO orders SELECT * REPLACE (-amount AS amount) FROM orders LIMIT 1")
    con.close()
    failed = {c.name for c in contracts.data_contract("orders", place="t1").test().checks
              if c.result.value == "failed"}
    assert any("order_id" in name and "duplicate" in name for name in failed), failed
    assert "Amounts are positive." in failed, failed


def test_a_sqlmesh_project_plans_environments_offline(own_home: Path, tmp_path: Path) -> None:
    """SQLMesh on the embedded DuckDB: prod, then a change in a dev environment; analytics never sent."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    model = project / "models" / "daily.sql"
    code = (
        "import sys, pathlib; from coursekit import transform\n"
        "model = pathlib.Path(sys.argv[1], 'models', 'daily.sql')\n"
        "for env, revenue, table in (('prod', 10, 'brightcart.daily'), ('dev', 12, 'brightcart__dev.daily')):\n"
        "    model.write_text(f'MODEL (name brightcart.daily, kind FULL);\\nSELECT 1 AS day, {revenue} AS revenue')\n"
        "    ctx = transform.context(sys.argv[1], place='t1')\n"
        "    ctx.plan(env, auto_apply=True, no_prompts=True)\n"
        "    print(env, ctx.fetchdf(f'SELECT revenue FROM {table}')['revenue'].tolist())\n"
        "    ctx.close()\n"
    )
    guard = Path(__file__).parent / "fixtures" / "netguard"
    env = {**os.environ, "COURSEKIT_NETWORK_LOG": str(tmp_path / "net.log"), "PYTHONPATH": str(guard)}
    env.pop("SQLMESH__DISABLE_ANONYMIZED_ANALYTICS", None)
    out = subprocess.run([sys.executable, "-c", code, str(project)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "prod [10]" in out.stdout and "dev [12]" in out.stdout, out.stdout
    assert model.exists() and Path(transform.database("t1")).exists()
    assert not (tmp_path / "net.log").exists(), (tmp_path / "net.log").read_text()


def test_versioned_tables_live_in_the_state_dir_and_travel_in_time(own_home: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    from deltalake import DeltaTable, write_deltalake

    from coursekit import lake

    monkeypatch.delenv(lake.URI_ENV, raising=False)
    uri = lake.table_uri("orders", place="t1")
    assert Path(uri) == own_home / "lake" / "t1" / "orders"
    write_deltalake(uri, pd.DataFrame({"order_id": ["O1", "O2"]}), mode="overwrite")
    write_deltalake(uri, pd.DataFrame({"order_id": ["O3"]}), mode="append")
    assert DeltaTable(uri).version() == 1
    assert DeltaTable(uri, version=0).to_pandas()["order_id"].tolist() == ["O1", "O2"]
    lake.drop("orders", place="t1")
    assert not Path(uri).exists()
    monkeypatch.setenv(lake.URI_ENV, "s3://bucket/course/")
    assert lake.table_uri("orders", "t1") == "s3://bucket/course/t1/orders"
    with pytest.raises(RuntimeError, match="object store"):
        lake.drop("orders", "t1")


def test_an_answer_rego_cpp_cannot_serialise_is_a_policy_error(own_home: Path) -> None:
    quoted = 'package q\nimport rego.v1\nmsg := sprintf("column %s", [lower("EMAIL")])\n'
    with pytest.raises(policy.PolicyError, match="build strings with concat"):
        policy.Engine({"q": quoted}).query("data.q.msg", {})
