"""Lab 3's grading cases for tests/test_labs.py: a correct solution in another style (full marks), a
plausible wrong solution of each part, and one that tampers in each part (each loses that part's points);
and, for tests/test_lab3_fairness.py, every plausible wrong solution of each part (``EACH_WRONG``).

Each dict maps a solution cell's grade id to the code a student puts there.
"""

# Correct, but written differently from the reference: Feast's point-in-time join (lesson 19), a
# random forest, mlflow.register_model after logging and the champion loaded by its alias, and a scorer
# that polls one event at a time, one transaction per event, from offsets it looks up, the hour from datetime.
ALTERNATIVE = {
    "part-a-solution": '''
def training_set(payments, risk, as_of):
    """With Feast (lesson 19): a feature view over the risk feed, no ttl, and its point-in-time join."""
    import tempfile
    from datetime import timedelta

    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Int64

    from coursekit import featurestore

    path = tempfile.mkdtemp(prefix="lab3-feast-") + "/risk.parquet"
    risk.to_parquet(path)
    customer = Entity(name="lab3_customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    view = FeatureView(name="lab3_customer_risk", entities=[customer], ttl=timedelta(0),   # 0: no ttl
                       schema=[Field(name="chargebacks_90d", dtype=Int64)],
                       source=FileSource(name="lab3_risk", path=path, timestamp_field="event_timestamp"))
    store = featurestore.feature_store()
    store.apply([customer, view])
    labelled = payments[payments["label_at"] <= as_of]
    rows = labelled[["payment_id", "customer_id", "created_at"]].rename(columns={"created_at": "event_timestamp"})
    joined = store.get_historical_features(entity_df=rows, features=["lab3_customer_risk:chargebacks_90d"]).to_df()
    counts = joined.set_index("payment_id")["chargebacks_90d"].fillna(0).astype("int64")
    return labelled.assign(chargebacks_90d=labelled["payment_id"].map(counts))[["payment_id", *FEATURES, "is_fraud"]]
''',
    "part-b-solution": '''
def train_model(train):
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=100, min_samples_leaf=20, random_state=0, n_jobs=1)
    return forest.fit(train[FEATURES], train["is_fraud"])
''',
    "part-c-solution": '''
def _auc(y, s):
    y, s = np.asarray(y), np.asarray(s)
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))

def register(model, train, holdout, name):
    client = MlflowClient()
    mine = _auc(holdout["is_fraud"], model.predict_proba(holdout[FEATURES])[:, 1])
    with mlflow.start_run() as run:
        mlflow.log_metrics({"holdout_auc": mine})
        mlflow.log_input(mlflow.data.from_pandas(train), context="training")
        logged = mlflow.sklearn.log_model(model, name="fraud", input_example=train[FEATURES].iloc[:3],
                                          pip_requirements=["scikit-learn"])
    version = int(mlflow.register_model(logged.model_uri, name).version)
    aliases = client.get_registered_model(name).aliases
    if "champion" in aliases:
        champion = mlflow.sklearn.load_model(f"models:/{name}@champion")
        theirs = _auc(holdout["is_fraud"], champion.predict_proba(holdout[FEATURES])[:, 1])
        if not mine > theirs:
            client.set_registered_model_alias(name, "challenger", version)
            return version
    client.set_registered_model_alias(name, "champion", version)
    return version
''',
    "part-d-solution": '''
def score_stream(events_topic, scores_topic, group_id, model_name, risk, max_events=None):
    from datetime import datetime, timezone

    client = MlflowClient()
    champion = client.get_model_version_by_alias(model_name, "champion")
    model = mlflow.sklearn.load_model(f"models:/{model_name}/{champion.version}")
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": "scorer." + group_id})
    producer.init_transactions()
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed"})
    n_partitions = len(consumer.list_topics(events_topic, timeout=10).topics[events_topic].partitions)
    committed = consumer.committed([TopicPartition(events_topic, p) for p in range(n_partitions)], timeout=10)
    consumer.assign([TopicPartition(events_topic, tp.partition, tp.offset if tp.offset >= 0 else 0)
                     for tp in committed])
    at_end, read = set(), 0
    while len(at_end) < n_partitions and (max_events is None or read < max_events):
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
                continue
            raise RuntimeError(msg.error())
        e = json.loads(msg.value())
        when = datetime.fromisoformat(e["event_time"].replace("Z", "+00:00")).astimezone(timezone.utc)
        row = pd.DataFrame([[e["amount"], e["new_device"], when.hour < 6, risk.get(e["customer_id"], 0)]],
                           columns=FEATURES)
        score = float(model.predict_proba(row)[0, 1])
        producer.begin_transaction()
        producer.produce(scores_topic, key=e["payment_id"], value=json.dumps(
            {"payment_id": e["payment_id"], "score": score, "model_version": int(champion.version)}))
        producer.send_offsets_to_transaction([TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)],
                                             consumer.consumer_group_metadata())
        producer.commit_transaction()
        read += 1
    consumer.close()
    return read
''',
}

# the reference with one mistake, pieces shared by the wrong solutions below
_A = '''
def training_set(payments, risk, as_of):
    known = payments[payments["label_at"] <= as_of].sort_values("created_at")
    history = risk.sort_values("event_timestamp").rename(columns={"event_timestamp": "risk_at"})
    joined = pd.merge_asof(known, history, left_on="created_at", right_on="risk_at", by="customer_id",
                           direction="backward", allow_exact_matches=True)
    joined["chargebacks_90d"] = joined["chargebacks_90d"].fillna(0).astype("int64")
    return joined[["payment_id", "created_at", *FEATURES, "is_fraud"]].reset_index(drop=True)
'''

_C_HEAD = '''
def register(model, train, holdout, name):
    client = MlflowClient()
    X, y = holdout[FEATURES], holdout["is_fraud"]
    auc = roc_auc_score(y, model.predict_proba(X)[:, 1])
    with mlflow.start_run():
        mlflow.log_metric("holdout_auc", auc)
        mlflow.log_input(mlflow.data.from_pandas(train, name="training", targets="is_fraud"), context="training")
        signature = mlflow.models.infer_signature(train[FEATURES], model.predict_proba(train[FEATURES])[:, 1])
        info = mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=train[FEATURES].head(5),
                                        registered_model_name=name, pip_requirements=["scikit-learn", "pandas"])
    version = int(info.registered_model_version)
    try:
        champion = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        client.set_registered_model_alias(name, "champion", version)
        return version
'''
_C_GATE = '''\
    theirs = roc_auc_score(y, mlflow.sklearn.load_model(f"models:/{name}/{champion.version}").predict_proba(X)[:, 1])
    client.set_registered_model_alias(name, "champion" if auc > theirs else "challenger", version)
    return version
'''

_D_HEAD = '''
def score_stream(events_topic, scores_topic, group_id, model_name, risk, max_events=None):
    version = MlflowClient().get_model_version_by_alias(model_name, "champion").version
    model = mlflow.sklearn.load_model(f"models:/{model_name}/{version}")
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed"})
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": f"lab3-scorer-{group_id}"})
    producer.init_transactions(30)
    partitions = consumer.list_topics(events_topic, timeout=10).topics[events_topic].partitions
    consumer.assign([TopicPartition(events_topic, p) for p in partitions])
    finished, read = set(), 0
    while len(finished) < len(partitions) and (max_events is None or read < max_events):
        wanted = 100 if max_events is None else min(100, max_events - read)
        events = []
        for msg in consumer.consume(wanted, timeout=1.0):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    finished.add(msg.partition())
                elif msg.error().fatal():
                    raise RuntimeError(msg.error())
                continue
            finished.discard(msg.partition())
            events.append(json.loads(msg.value()))
        if not events:
            continue
        read += len(events)
        features = pd.DataFrame({
            "amount": [float(e["amount"]) for e in events],
            "new_device": [bool(e["new_device"]) for e in events],
            "night": [data.parse_time(e["event_time"]).hour < 6 for e in events],
            "chargebacks_90d": [int(risk.get(e["customer_id"], 0)) for e in events],
        })
        scores = model.predict_proba(features[FEATURES])[:, 1]
        producer.begin_transaction()
        for event, score in zip(events, scores, strict=True):
            value = {"payment_id": event["payment_id"], "score": float(score), "model_version": version}
            producer.produce(scores_topic, key=event["payment_id"], value=json.dumps(value))
        positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
    consumer.close()
    return read
'''
# at-least-once: no transaction; scores flushed, then the consumer's offsets committed
_D_AT_LEAST_ONCE = (_D_HEAD
                    .replace(', "transactional.id": f"lab3-scorer-{group_id}"', "")
                    .replace("    producer.init_transactions(30)\n", "")
                    .replace("        producer.begin_transaction()\n", "")
                    .replace('''\
        positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
''', '''        producer.flush(30)
        consumer.commit(asynchronous=False)
'''))
# the latest version instead of the champion's
_D_LATEST = _D_HEAD.replace(
    '    version = MlflowClient().get_model_version_by_alias(model_name, "champion").version\n',
    '    version = max(int(v.version) for v in MlflowClient().search_model_versions(f"name=\'{model_name}\'"))\n')

WRONG = {
    # A: the customer's latest count, as known today (the leak of lesson 19)
    "part-a-solution": '''
def training_set(payments, risk, as_of):
    latest = risk.sort_values("event_timestamp").groupby("customer_id").tail(1)
    rows = payments[payments["label_at"] <= as_of].merge(latest[["customer_id", "chargebacks_90d"]],
                                                         on="customer_id", how="left")
    rows["chargebacks_90d"] = rows["chargebacks_90d"].fillna(0).astype(int)
    return rows[["payment_id", *FEATURES, "is_fraud"]]
''',
    # B: the target turned round ("is it genuine?"), then column 1 taken as the fraud score
    "part-b-solution": '''
def train_model(train):
    return LogisticRegression(max_iter=1000).fit(train[FEATURES].astype(float), train["is_fraud"] == 0)
''',
    # C: every new version promoted, no gate
    "part-c-solution": _C_HEAD + '''    client.set_registered_model_alias(name, "champion", version)
    return version
''',
    # D: at-least-once, and the latest version instead of the champion
    "part-d-solution": _D_AT_LEAST_ONCE.replace(
        '    version = MlflowClient().get_model_version_by_alias(model_name, "champion").version\n',
        '    version = max(int(v.version) for v in MlflowClient().search_model_versions(f"name=\'{model_name}\'"))\n'),
}

# Each passes its part's visible tests by tampering inside the kernel, not by doing the work; the hidden
# tests are judged outside the kernel (graders/lab3_realtime_ml.py), so each part scores 0.
TAMPERING = {
    # the sample's answer written out by hand
    "part-a-solution": '''
def training_set(payments, risk, as_of):
    rows = payments[payments["payment_id"].isin(["P1", "P2", "P3", "P4", "P5", "P6"])].copy()
    rows["chargebacks_90d"] = rows["payment_id"].map({"P1": 1, "P2": 2, "P3": 0, "P4": 1, "P5": 0, "P6": 2})
    return rows
''',
    # a model that knows nothing, and an AUC that always says 1
    "part-b-solution": '''
from sklearn.dummy import DummyClassifier

def train_model(train):
    return DummyClassifier(strategy="prior").fit(train[FEATURES], train["is_fraud"])

roc_auc_score = lambda *args, **kwargs: 1.0
''',
    # every promoted, and no later cell can fail
    "part-c-solution": WRONG["part-c-solution"] + '''
import ast

class _Swallow(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None, body=[ast.Pass()])
        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
        return ast.fix_missing_locations(node)

get_ipython().ast_transformers.append(_Swallow())
''',
    # and no assert statement of a later cell runs
    "part-d-solution": WRONG["part-d-solution"] + '''
import ast

class _NoAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()

get_ipython().ast_transformers.append(_NoAsserts())
''',
}
# the student who fills in only the first part, and what the instructor gives each student's written answer
PARTIAL = ["part-a-solution"]
MANUAL = {"part-e-answer": {"alice": 2.0, "bob": 0.0, "carol": 1.0}}

# ---- tests/test_lab3_fairness.py ----------------------------------------------------------------------
# Plausible wrong solutions, each the reference with one mistake, as a learner writes it. Each is one
# part's solution cell; the fairness test proves it loses points in exactly the test cells named, all of
# its own part, and (statically) that it cannot change any other part's score.
EACH_WRONG = {
    "a_latest_count": ("part-a-solution", WRONG["part-a-solution"], {"part-a-tests"}),
    # A: a chargeback at exactly the payment's time left out
    "a_strictly_before": ("part-a-solution", _A.replace("allow_exact_matches=True", "allow_exact_matches=False"),
                          {"part-a-tests"}),
    # A: every payment, the unlabelled ones learned as genuine
    "a_unknown_as_genuine": ("part-a-solution", _A.replace(
        'known = payments[payments["label_at"] <= as_of].sort_values("created_at")',
        'known = payments.assign(is_fraud=(payments["is_fraud"] == 1) & (payments["label_at"] <= as_of))'
        '.sort_values("created_at")'), {"part-a-tests"}),
    # A: any customer's latest row (merge_asof without by=)
    "a_any_customer": ("part-a-solution", _A.replace(' by="customer_id",', "").replace(
        'history = risk.sort_values("event_timestamp")',
        'history = risk.drop(columns="customer_id").sort_values("event_timestamp")'), {"part-a-tests"}),
    # A: NaN left where a customer has no row (a float column)
    "a_nan_for_none": ("part-a-solution", _A.replace('.fillna(0).astype("int64")', ""), {"part-a-tests"}),
    "b_inverted_target": ("part-b-solution", WRONG["part-b-solution"], {"part-b-tests"}),
    # B: "97 % accurate": the majority class for everyone
    "b_majority": ("part-b-solution", '''
def train_model(train):
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="most_frequent").fit(train[FEATURES], train["is_fraud"])
''', {"part-b-tests"}),
    # B: a fully grown decision tree: it learns the training rows by heart
    "b_deep_tree": ("part-b-solution", '''
def train_model(train):
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(random_state=0).fit(train[FEATURES], train["is_fraud"])
''', {"part-b-tests"}),
    "c_no_gate": ("part-c-solution", WRONG["part-c-solution"], {"part-c-tests"}),
    # C: the champion's stored metric (measured on its own holdout) against the new model's
    "c_stored_metric": ("part-c-solution", _C_HEAD + '''\
    theirs = client.get_run(champion.run_id).data.metrics["holdout_auc"]
    client.set_registered_model_alias(name, "champion" if auc > theirs else "challenger", version)
    return version
''', {"part-c-tests"}),
    # C: the new version against the one before it, not against the champion
    "c_previous_version": ("part-c-solution", _C_HEAD + '''\
    before = mlflow.sklearn.load_model(f"models:/{name}/{version - 1}")
    theirs = roc_auc_score(y, before.predict_proba(X)[:, 1])
    client.set_registered_model_alias(name, "champion" if auc > theirs else "challenger", version)
    return version
''', {"part-c-tests"}),
    # C: the gate right, but no dataset input: the run does not say what the model saw
    "c_no_lineage": ("part-c-solution", (_C_HEAD + _C_GATE).replace(
        '        mlflow.log_input(mlflow.data.from_pandas(train, name="training", targets="is_fraud"), '
        'context="training")\n', ""), {"part-c-tests"}),
    # C: registry stages instead of aliases
    "c_stages": ("part-c-solution", _C_HEAD.replace('''    try:
        champion = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        client.set_registered_model_alias(name, "champion", version)
        return version
''', '''    live = client.get_latest_versions(name, stages=["Production"])
    if live:
        old = mlflow.sklearn.load_model(f"models:/{name}/{live[0].version}")
        if roc_auc_score(y, old.predict_proba(X)[:, 1]) >= auc:
            client.transition_model_version_stage(name, str(version), "Staging")
            return version
    client.transition_model_version_stage(name, str(version), "Production", archive_existing_versions=True)
    return version
'''), {"part-c-tests"}),
    "d_at_least_once": ("part-d-solution", _D_AT_LEAST_ONCE, {"part-d-tests"}),
    # D: a transactional.id of its own in each process: a crashed scorer's transaction stays open
    "d_new_transactional_id": ("part-d-solution", _D_HEAD.replace(
        'f"lab3-scorer-{group_id}"', 'f"lab3-scorer-{uuid.uuid4().hex}"'), {"part-d-tests"}),
    "d_latest_version": ("part-d-solution", _D_LATEST, {"part-d-tests"}),
    # D: the hour in the machine's time zone, not in UTC
    "d_local_hour": ("part-d-solution", _D_HEAD.replace(
        '"night": [data.parse_time(e["event_time"]).hour < 6 for e in events],',
        '"night": [data.parse_time(e["event_time"]).astimezone().hour < 6 for e in events],'), {"part-d-tests"}),
}
