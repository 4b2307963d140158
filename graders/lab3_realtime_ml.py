"""Hidden tests of Lab 3, judged by the grader outside the student's kernel (see coursekit.hidden).

Each function prepares one test cell's hidden inputs here (Parquet and JSON files in a folder the kernel
can read, topics filled from seeds the kernel never sees), names the call the kernel makes, and checks
what the call returned and what it left behind (a training set, an MLflow store read as SQLite and YAML
files, records in Kafka) against a truth computed here, independently of the reference solution. Not
released to students; hidden from the grader kernel.

Nothing a submission made is ever loaded here: the grader reads the MLflow store's tables and the
``MLmodel`` files as data, and the models it compares scores against are its own (trained here, and
registered into the store by a separate process of the grader's, :data:`_REGISTER`).

* Part A: other seeds and sizes; risk rows given in shuffled order, some at exactly a payment's time (they
  count: at or before), some after the cut-off (a naive join leaks them); payments whose label is not yet
  known.
* Part B: the AUC on hidden payments against a plain logistic regression's on the same rows.
* Part C: five registrations on hidden training and holdout sets, designed so that a gate comparing with the
  version before (not the champion), or with the champion's metric stored from its own (easy) holdout,
  ends with other aliases than the rule gives.
* Part D: three model versions (the champion is not the latest), events over several partitions, a stop,
  a crash just after a score reached the log (the kernel's producer dies there), and a restart.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from coursekit import data, hidden, kafka
from coursekit.hidden import Hidden, Partial

FEATURES = ["amount", "new_device", "night", "chargebacks_90d"]
AS_OF_DAYS = 60


def _scratch(prefix: str) -> Path:
    folder = hidden.scratch(prefix)
    folder.chmod(0o755)
    return folder


def _payments(rng: Any, n: int) -> pd.DataFrame:
    start = data.EPOCH - pd.Timedelta(days=AS_OF_DAYS)
    return data.card_payments(n=n, seed=int(rng.randrange(2**31)), n_customers=max(60, n // 10), start=start,
                              days=AS_OF_DAYS)


def _point_in_time(payments: pd.DataFrame, risk: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Part A's truth, by a plain loop: the customer's last risk row at or before the payment, else 0."""
    rows_of: dict[str, list[tuple[pd.Timestamp, int]]] = {}
    for r in risk.itertuples(index=False):
        rows_of.setdefault(r.customer_id, []).append((r.event_timestamp, int(r.chargebacks_90d)))
    out = []
    for p in payments.itertuples(index=False):
        if p.label_at > as_of:
            continue
        known = [(t, c) for t, c in rows_of.get(p.customer_id, []) if t <= p.created_at]
        count = max(known)[1] if known else 0
        out.append({"payment_id": p.payment_id, "created_at": p.created_at, "amount": float(p.amount),
                    "new_device": bool(p.new_device), "night": bool(p.night), "chargebacks_90d": count,
                    "is_fraud": int(p.is_fraud)})
    return pd.DataFrame(out)


def _labelled(rng: Any, n: int) -> pd.DataFrame:
    """A point-in-time training set (Part A's truth) of ``n`` payments' data, labels known at the cut-off."""
    payments = _payments(rng, n)
    return _point_in_time(payments, data.customer_risk(payments), payments["created_at"].max())


def _rows(value: Any) -> list[dict[str, Any]]:
    assert isinstance(value, dict) and isinstance(value.get("columns"), list) and isinstance(value.get("rows"), list), \
        "return a pandas DataFrame"
    return [dict(zip(value["columns"], row, strict=False)) for row in value["rows"]]


# ---- Part A ---------------------------------------------------------------------------------------

def part_a_tests(rng: Any) -> Hidden:
    """training_set on hidden payments: ties at a payment's time, rows after the cut-off, shuffled rows."""
    payments = _payments(rng, rng.choice([1500, 2000, 2500]))
    as_of = payments["created_at"].max() - pd.Timedelta(days=rng.choice([3, 7, 10]))
    payments = payments[payments["created_at"] <= as_of]
    risk = data.customer_risk(payments)
    # a chargeback known at exactly a payment's time: it counts (at or before)
    labelled = payments[payments["customer_id"].isin(risk["customer_id"]) & (payments["label_at"] <= as_of)]
    for p in labelled.sample(8, random_state=rng.randrange(999)).itertuples():
        before = risk[(risk["customer_id"] == p.customer_id) & (risk["event_timestamp"] < p.created_at)]
        count = int(before["chargebacks_90d"].max()) + 1 if len(before) else 1
        risk = pd.concat([risk, pd.DataFrame([{"customer_id": p.customer_id, "event_timestamp": p.created_at,
                                               "chargebacks_90d": count}])])
    risk = risk.drop_duplicates(["customer_id", "event_timestamp"], keep="last")
    risk = risk.sample(frac=1.0, random_state=rng.randrange(999)).reset_index(drop=True)   # in no order
    shown = payments.sample(frac=1.0, random_state=rng.randrange(999)).reset_index(drop=True)
    truth = {r["payment_id"]: r for r in _point_in_time(payments, risk, as_of).to_dict("records")}
    folder = _scratch("lab3-a-")
    shown.to_parquet(folder / "payments.parquet")
    risk.to_parquet(folder / "risk.parquet")

    def verify(value: Any) -> None:
        rows = _rows(value)
        missing = [c for c in ("payment_id", *FEATURES, "is_fraud") if c not in (value.get("columns") or [])]
        assert not missing, f"the training set has no column {missing}"
        got = {r["payment_id"]: r for r in rows}
        assert len(got) == len(rows), "one row per payment"
        unlabelled = set(got) - set(truth)
        assert not unlabelled, (f"{len(unlabelled)} payments whose label was not known at as_of are in the training "
                                "set (a fraud not yet charged back would be learned as genuine)")
        assert set(got) == set(truth), f"{len(set(truth) - set(got))} labelled payments are missing"
        wrong = [p for p, r in got.items() if r["chargebacks_90d"] != truth[p]["chargebacks_90d"]]
        if wrong:
            leak = sum(isinstance(got[p]["chargebacks_90d"], int | float)
                       and got[p]["chargebacks_90d"] > truth[p]["chargebacks_90d"] for p in wrong)
            raise AssertionError(f"chargebacks_90d is wrong for {len(wrong)} of {len(got)} payments ({leak} of them "
                                 "higher than was known at the payment's time)")
        assert all(isinstance(r["chargebacks_90d"], int) for r in rows), "chargebacks_90d holds whole numbers"
        for column in ("amount", "new_device", "night", "is_fraud"):
            assert all(got[p][column] == truth[p][column] for p in got), f"{column} differs from the payments'"

    return Hidden(
        setup="import pandas as _pd\nfrom coursekit.hidden import records as _records",
        call=f"_records(training_set(_pd.read_parquet({str(folder / 'payments.parquet')!r}), "
             f"_pd.read_parquet({str(folder / 'risk.parquet')!r}), _pd.Timestamp({as_of.isoformat()!r})))",
        verify=verify, cleanup=lambda: shutil.rmtree(folder, ignore_errors=True))


# ---- Part B ---------------------------------------------------------------------------------------

FULL_WITHIN, NONE_BELOW = 0.08, 0.18   # Part B: full marks within 0.08 of the baseline's AUC, none 0.18 below


def _auc(labels: Any, scores: Any) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(labels), np.asarray(scores, dtype=float)))


def _baseline(train: pd.DataFrame) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000).fit(train[FEATURES].astype(float), train["is_fraud"])


def part_b_tests(rng: Any) -> Hidden:
    """train_model's AUC on hidden payments it never saw, against a logistic regression's on the same rows."""
    train, test = _labelled(rng, 4000), _labelled(rng, 3000)
    base = _auc(test["is_fraud"], _baseline(train).predict_proba(test[FEATURES].astype(float))[:, 1])
    folder = _scratch("lab3-b-")
    train.to_parquet(folder / "train.parquet")
    test.drop(columns=["is_fraud"]).to_parquet(folder / "test.parquet")   # the kernel never sees these labels

    def verify(scores: Any) -> Partial | None:
        assert isinstance(scores, list) and len(scores) == len(test), \
            f"predict_proba should give one score per payment ({len(test)}), not {len(scores)}"
        assert all(isinstance(s, int | float) and np.isfinite(s) for s in scores), "scores are numbers"
        auc = _auc(test["is_fraud"], scores)
        fraction = min(1.0, max(0.0, (auc - (base - NONE_BELOW)) / (NONE_BELOW - FULL_WITHIN)))
        why = (f"AUC {auc:.3f} on the hidden payments; the baseline's is {base:.3f} (full marks from "
               f"{base - FULL_WITHIN:.3f}, none from {base - NONE_BELOW:.3f})")
        assert fraction > 0, why
        return Partial(round(fraction, 2), why) if fraction < 1 else None

    return Hidden(
        setup="import pandas as _pd",
        call=f"[float(_s) for _s in train_model(_pd.read_parquet({str(folder / 'train.parquet')!r}))"
             f".predict_proba(_pd.read_parquet({str(folder / 'test.parquet')!r})[FEATURES])[:, 1]]",
        verify=verify, cleanup=lambda: shutil.rmtree(folder, ignore_errors=True))


# ---- Part C ---------------------------------------------------------------------------------------

# the grader's models for Part C, fitted in the kernel by this code and here again by the same code
FIT = '''
def _lab3_fit(train, kind):
    """The tests' models: "inverted" (trained on the labels turned round: worse than chance), "amount" or
    "night" (that feature alone: weak), "full" (all four features: good)."""
    from sklearn.linear_model import LogisticRegression as _LR
    y = train["is_fraud"].to_numpy()
    if kind == "inverted":
        y = 1 - y
    X = train[FEATURES].astype(float)
    alone = kind if kind in ("amount", "night") else None
    if alone:
        X = X.assign(**{c: 0.0 for c in FEATURES if c != alone})
    model = _LR(max_iter=1000).fit(X, y)
    if alone:
        model.coef_[0, [i for i, c in enumerate(FEATURES) if c != alone]] = 0.0
    return model
'''
KINDS = ("inverted", "amount", "inverted", "night", "full")
QUIET = '''
def _lab3_quiet(call):
    """call() with what it writes to stderr (MLflow's messages) on stdout: nbgrader validate fails a test cell
    on any stderr output."""
    import contextlib, sys
    with contextlib.redirect_stderr(sys.stdout):
        return call()
'''


def _fit(train: pd.DataFrame, kind: str) -> Any:
    namespace: dict[str, Any] = {"FEATURES": FEATURES}
    exec(FIT, namespace)  # noqa: S102 - the grader's own code
    return namespace["_lab3_fit"](train, kind)


def _easy(frame: pd.DataFrame) -> pd.DataFrame:
    """A holdout where fraud is easy to see: the genuine payments and only the larger half of the frauds."""
    frauds = frame[frame["is_fraud"] == 1]
    return pd.concat([frame[frame["is_fraud"] == 0], frauds.nlargest(max(5, len(frauds) // 2), "amount")])


def _gate_plan(rng: Any) -> tuple[list[pd.DataFrame], list[pd.DataFrame], list[float], int, int]:
    """Five (train, holdout) pairs, each model's AUC on its own holdout, and the expected champion and
    challenger, with a margin at every step of the gate:

    v1 (inverted) becomes champion; v2 (amount alone) beats it on an *easy* holdout, so its stored AUC is
    high; v3 (inverted) loses; v4 (night alone) loses to the champion but beats v3, the version before it
    (a gate that compares with the previous version promotes it); v5 (full) beats the champion on the same
    rows, though v2's stored AUC is higher than v5's (a gate that compares stored metrics keeps v2).
    """
    for _ in range(20):
        trains = [_labelled(rng, n) for n in (900, 1100, 1300, 1200, 2500)]
        holdouts = [_labelled(rng, 1200), _easy(_labelled(rng, 1500)), *(_labelled(rng, 1200) for _ in range(3))]
        models = [_fit(t, k) for t, k in zip(trains, KINDS, strict=True)]
        own, champion, challenger, margins = [], None, None, []
        for version, (model, holdout) in enumerate(zip(models, holdouts, strict=True), start=1):
            X, y = holdout[FEATURES].astype(float), holdout["is_fraud"]
            auc = _auc(y, model.predict_proba(X)[:, 1])
            own.append(auc)
            if champion is not None:
                theirs = _auc(y, models[champion - 1].predict_proba(X)[:, 1])
                margins.append(abs(auc - theirs))
                if version == 4:
                    margins.append(auc - _auc(y, models[2].predict_proba(X)[:, 1]))   # beats the previous one
                champion, challenger = (version, challenger) if auc > theirs else (champion, version)
            else:
                champion = version
        margins.append(own[1] - own[4])   # the stored metric points the wrong way
        if (champion, challenger) == (5, 4) and min(margins) > 0.02:
            return trains, holdouts, own, champion, challenger
    raise RuntimeError("could not draw Part C's hidden data")


def _store_tables(db: Path) -> dict[str, list[dict[str, Any]]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        con.row_factory = sqlite3.Row
        def rows(sql: str) -> list[dict[str, Any]]:
            return [dict(r) for r in con.execute(sql)]
        return {"versions": rows("SELECT name, version, run_id, storage_location FROM model_versions"),
                "aliases": rows("SELECT name, alias, version FROM registered_model_aliases"),
                "metrics": rows("SELECT run_uuid, key, value FROM latest_metrics"),
                "inputs": rows("SELECT i.destination_id AS run_id, d.dataset_profile AS profile, "
                               "d.dataset_schema AS schema, t.value AS context FROM inputs i "
                               "JOIN datasets d ON d.dataset_uuid = i.source_id "
                               "LEFT JOIN input_tags t ON t.input_uuid = i.input_uuid "
                               "AND t.name = 'mlflow.data.context' "
                               "WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN'")}


def _mlmodel(location: str, folder: Path) -> dict[str, Any]:
    path = Path(location) / "MLmodel"
    assert path.resolve().is_relative_to(folder.resolve()), "the model's files are outside the store's folder"
    assert path.is_file(), f"a version's model has no MLmodel file at {location}"
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")[:200_000])
    assert isinstance(loaded, dict), "a version's MLmodel file is not a YAML mapping"
    return loaded


def _lineage_problems(tables: dict[str, list[dict[str, Any]]], name: str, trains: list[pd.DataFrame],
                      own: list[float], folder: Path) -> list[str]:
    problems = []
    versions = {int(v["version"]): v for v in tables["versions"] if v["name"] == name}
    for version, (train, auc) in enumerate(zip(trains, own, strict=True), start=1):
        v = versions[version]
        metric = [m["value"] for m in tables["metrics"] if m["run_uuid"] == v["run_id"] and m["key"] == "holdout_auc"]
        if not metric or abs(float(metric[0]) - auc) > 1e-6:
            problems.append(f"version {version}'s run has holdout_auc {metric[0] if metric else 'missing'}, "
                            f"but the model's AUC on that holdout is {auc:.4f}")
        training = [i for i in tables["inputs"] if i["run_id"] == v["run_id"] and i["context"] == "training"]
        rows = [json.loads(i["profile"] or "{}").get("num_rows") for i in training]
        if len(train) not in rows:
            problems.append(f"version {version}'s run has no training dataset of {len(train)} rows "
                            f"(its training inputs have {rows or 'none'})")
        try:
            model = _mlmodel(v["storage_location"] or "", folder)
        except AssertionError as exc:
            problems.append(f"version {version}: {exc} (log the model in the active experiment)")
            continue
        inputs = json.loads((model.get("signature") or {}).get("inputs") or "[]")
        if sorted(str(c.get("name")) for c in inputs if isinstance(c, dict)) != sorted(FEATURES):
            problems.append(f"version {version}'s signature should take the {len(FEATURES)} feature columns, "
                            f"it takes {[c.get('name') for c in inputs if isinstance(c, dict)] or 'nothing'}")
        if not model.get("saved_input_example_info"):
            problems.append(f"version {version} has no input example")
    return problems


def part_c_tests(rng: Any) -> Hidden:
    """register five times: the gate (champion / challenger aliases), and each version's lineage."""
    trains, holdouts, own, champion, challenger = _gate_plan(rng)
    folder = _scratch("lab3-c-")
    paths = []
    for k, (train, holdout) in enumerate(zip(trains, holdouts, strict=True)):
        train.to_parquet(folder / f"train{k}.parquet")
        holdout.to_parquet(folder / f"holdout{k}.parquet")
        paths.append((str(folder / f"train{k}.parquet"), str(folder / f"holdout{k}.parquet")))
    name = f"lab3-hidden-{uuid.uuid4().hex[:8]}"
    store = folder / "store"

    def verify(returned: Any) -> Partial | None:
        assert returned == [1, 2, 3, 4, 5], f"register should return each new version's number, not {returned!r}"
        tables = _store_tables(store / "mlflow.db")
        aliases = {a["alias"]: int(a["version"]) for a in tables["aliases"] if a["name"] == name}
        assert aliases.get("champion") == champion and aliases.get("challenger") == challenger, (
            f"after five registrations the aliases are {aliases or 'none'}: the gate should have left champion on "
            f"version {champion} and challenger on {challenger} (compare on the new holdout, both models)")
        problems = _lineage_problems(tables, name, trains, own, store)
        return Partial(2 / 3, "the gate is right; lineage: " + "; ".join(problems[:3])) if problems else None

    calls = ", ".join(f"register(_lab3_fit(_pd.read_parquet({t!r}), {kind!r}), _pd.read_parquet({t!r}), "
                      f"_pd.read_parquet({h!r}), {name!r})" for (t, h), kind in zip(paths, KINDS, strict=True))
    return Hidden(setup=f"import pandas as _pd\n{FIT}\n{QUIET}\nuse_store({str(store)!r})",
                  call=f"_lab3_quiet(lambda: [int(_v) for _v in [{calls}]])", verify=verify,
                  cleanup=lambda: shutil.rmtree(folder, ignore_errors=True))


# ---- Part D ---------------------------------------------------------------------------------------

# run by a process of the grader's own (nothing of MLflow is imported into the grader): registers the
# grader's models as versions 1-3 of a model, the champion alias on version 2, in a store the kernel reads
_REGISTER = '''
import json, logging, os, sys
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
import mlflow, pandas as pd
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from coursekit import tracking
logging.getLogger("mlflow").setLevel(logging.ERROR)
folder, name = sys.argv[1], sys.argv[2]
features = ["amount", "new_device", "night", "chargebacks_90d"]
uri = tracking.sqlite_store(folder)
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
mlflow.set_experiment(experiment_id=mlflow.create_experiment("lab3-d", artifact_location=f"{folder}/artifacts"))
events = pd.read_parquet(f"{folder}/features.parquet")
scores = {}
for k in range(3):
    train = pd.read_parquet(f"{folder}/train{k}.parquet")
    model = LogisticRegression(max_iter=1000).fit(train[features].astype(float), train["is_fraud"])
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                 pip_requirements=["scikit-learn", "pandas"])
    scores[k + 1] = [float(s) for s in model.predict_proba(events[features].astype(float))[:, 1]]
MlflowClient().set_registered_model_alias(name, "champion", 2)
json.dump(scores, open(f"{folder}/scores.json", "w"))
'''

CRASH_SETUP = '''
from coursekit.processes import CRASH_EXIT as _CRASH_EXIT, Died as _Died, in_a_fresh_process as _lab3_fresh
from coursekit.processes import producer_dies_after as _dies_after


def _lab3_crashing(function, *args, crash_at, **kwargs):
    try:
        _lab3_fresh(function, *args, prepare=lambda: _dies_after(crash_at, function.__globals__), **kwargs)
    except _Died as died:
        if died.exit_code == _CRASH_EXIT:
            return "crashed"
        raise
    return "finished without a crash"


def _lab3_in_tz(zone, call):
    """call() with the process's time zone set to zone (forked scorers inherit it), then the old one back."""
    import os, time
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        return call()
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()
'''


def _event_features(events: list[dict[str, Any]], risk: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame([{"amount": float(e["amount"]), "new_device": bool(e["new_device"]),
                          "night": data.parse_time(e["event_time"]).hour < 6,
                          "chargebacks_90d": int(risk.get(e["customer_id"], 0))} for e in events])


def _committed_offsets(topic: str, group: str, partitions: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": kafka.bootstrap_servers(), "group.id": group})
    try:
        return sum(max(tp.offset, 0) for tp in probe.committed([TopicPartition(topic, p) for p in range(partitions)],
                                                               timeout=10))
    finally:
        probe.close()


def _coordinator_ready(topic: str, group: str, timeout: float = 60.0) -> None:
    """Wait until the broker's coordinator of ``group`` answers (a broker just started is still loading it)."""
    import time

    from confluent_kafka import Consumer, KafkaException, TopicPartition

    probe = Consumer({"bootstrap.servers": kafka.bootstrap_servers(), "group.id": group})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                probe.committed([TopicPartition(topic, 0)], timeout=5)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        probe.close()


def part_d_tests(rng: Any) -> Hidden:
    """score_stream stopped, crashed just after a score reached the log, and restarted, each call in a fresh
    process; every event scored once, by the champion (not the latest version)."""
    payments = _payments(rng, 1200)
    live = payments.tail(rng.choice([150, 180, 210]))
    risk_rows = data.customer_risk(payments).sort_values("event_timestamp")
    risk = {r.customer_id: int(r.chargebacks_90d)   # the online store when the stream starts: latest values then
            for r in risk_rows[risk_rows["event_timestamp"] <= live["created_at"].min()].itertuples()}
    events = data.payment_events(live)
    folder = _scratch("lab3-d-")
    for k in range(3):
        _labelled(rng, rng.choice([800, 1200, 1600])).to_parquet(folder / f"train{k}.parquet")
    _event_features(events, risk).to_parquet(folder / "features.parquet")
    (folder / "risk.json").write_text(json.dumps(risk))
    name = f"lab3-hidden-{uuid.uuid4().hex[:8]}"
    done = subprocess.run([sys.executable, "-c", _REGISTER, str(folder), name], capture_output=True, text=True,
                          timeout=180, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"registering Part D's models failed:\n{done.stderr[-2000:]}")
    scores = {int(k): v for k, v in json.loads((folder / "scores.json").read_text()).items()}
    want = {e["payment_id"]: s for e, s in zip(events, scores[2], strict=True)}
    partitions = rng.choice([2, 3, 4])
    source, out = kafka.fresh_topic("lab3.d.hidden", partitions), kafka.fresh_topic("lab3.d.hidden.scores", 1)
    producer_events = [(e["customer_id"], data.to_json(e)) for e in events]
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers(), "enable.idempotence": True})
    for key, value in producer_events:
        producer.produce(source, key=key, value=value)
    assert producer.flush(30) == 0, "could not fill Part D's hidden topic"
    group = kafka.name(f"lab3-d-{uuid.uuid4().hex[:8]}")
    _coordinator_ready(source, group)
    stop, crash_at = rng.randint(30, 70), rng.randint(20, 60)

    def verify(value: Any) -> Partial | None:
        assert isinstance(value, list) and len(value) == 3, "score_stream returns the number of events read"
        assert value[0] == stop, f"the first call should read exactly max_events={stop} events: it read {value[0]!r}"
        assert value[1] == "crashed", ("the second call should have died just after its producer delivered its "
                                       f"{crash_at}th score (create it with confluent_kafka.Producer): {value[1]!r}")
        # read at once: librdkafka aborts a transaction left open after transaction.timeout.ms (60 s), after which a
        # scorer with a fresh transactional.id per process would no longer leave its scores stuck
        records, in_log = kafka.read_all(out), kafka.read_all(out, isolation="read_uncommitted")
        committed = _committed_offsets(source, group, partitions)
        counts: dict[str, int] = {}
        for r in records:
            pid = r.value.get("payment_id") if isinstance(r.value, dict) else None
            counts[str(pid)] = counts.get(str(pid), 0) + 1
        doubled = sorted(p for p, n in counts.items() if n > 1)
        lost = sorted(set(want) - set(counts))
        once = not doubled and not lost and set(counts) == set(want)
        why = []
        if not once:
            why.append(f"not every event scored exactly once: {len(lost)} events have no committed score, "
                       f"{len(doubled)} have more than one (after a crash, a restarted scorer with the same "
                       "transactional.id aborts the dead one's open transaction)")
        elif committed != len(events) or len(in_log) <= len(records):
            once = False
            why.append(f"the group committed {committed} of {len(events)} offsets, and the log holds "
                       f"{len(in_log) - len(records)} aborted scores: the crash should have left a transaction "
                       "that the restart aborted")
        good = [r for r in records if isinstance(r.value, dict) and r.value.get("payment_id") in want]
        right = bool(good) and all(
            r.key == r.value["payment_id"] and isinstance(r.value.get("score"), int | float)
            and abs(float(r.value["score"]) - want[r.value["payment_id"]]) < 1e-6
            and str(r.value.get("model_version")) == "2" for r in good)
        if not right:
            versions = sorted({str(r.value.get("model_version")) for r in good})
            why.append(f"the scores are not the champion's (version 2) on the events' features, keyed by payment_id "
                       f"(model_version in the records: {versions})")
        assert once or right, "; ".join(why)
        return Partial(0.5, "; ".join(why)) if why else None

    def cleanup() -> None:
        kafka.delete_topics([source, out])
        shutil.rmtree(folder, ignore_errors=True)

    args = f"{source!r}, {out!r}, {group!r}, {name!r}, _lab3_risk"
    calls = [f"_lab3_fresh(score_stream, {args}, max_events={stop})",
             f"_lab3_crashing(score_stream, {args}, crash_at={crash_at})",
             f"_lab3_fresh(score_stream, {args})"]
    setup = (f"{CRASH_SETUP}\nimport json as _json\n_lab3_risk = _json.load(open({str(folder / 'risk.json')!r}))\n"
             f"use_store({str(folder)!r}, create=False)")
    return Hidden(setup=setup, call="_lab3_in_tz('Asia/Kolkata', lambda: [" + ", ".join(calls) + "])", verify=verify,
                  cleanup=cleanup)


# ---- the lab's sample files -----------------------------------------------------------------------

SAMPLES = {"lab3_train.parquet": (4101, 3000), "lab3_test.parquet": (4102, 2000)}


def write_samples(folder: Path) -> None:
    """The lab's visible training and test sets (point-in-time, labels known), beside its notebook:
    ``python -c "import runpy; runpy.run_path('graders/lab3_realtime_ml.py')['write_samples'](...)"``."""
    import random

    for file, (seed, n) in SAMPLES.items():
        frame = _labelled(random.Random(seed), n)  # noqa: S311 - test data
        frame.to_parquet(folder / file, index=False)
