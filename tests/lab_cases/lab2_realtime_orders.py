"""Lab 2's grading cases for tests/test_labs.py: a correct solution in another style (full marks), a
plausible wrong solution of each part, and one that tampers in each part (each loses that part's points).

Each dict maps a solution cell's grade id to the code a student puts there.
"""

# Correct, but written differently from the reference: pandas for the windows, a class-free DLQ
# that validates with data.is_valid_event, and exactly-once restarts that keep offsets in SQLite.
ALTERNATIVE = {
    "part-a-solution": '''
def publish_orders(producer, topic, events):
    count = 0
    for e in events:
        producer.produce(topic, value=data.to_json(e), key=str(e["order_id"]).encode())
        count += 1
    producer.flush(30)
    return count
''',
    "part-b-solution": '''
import pandas as pd

def windowed_revenue(topic, group_id, window_s, lateness_s):
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    rows = []
    while len(rows) < high - low:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            rows.append(json.loads(msg.value()))
    consumer.commit(asynchronous=False)
    consumer.close()
    frame = pd.DataFrame(rows)
    t = pd.to_datetime(frame["event_time"], utc=True)
    start = t.dt.floor(f"{window_s}s")
    late = (t.cummax().shift(1) - pd.Timedelta(seconds=lateness_s)) >= start + pd.Timedelta(seconds=window_s)
    late = late.fillna(False).astype(bool)
    paid = frame[~late & (frame["type"] == "order_paid")].assign(w=start.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    sums = paid.groupby(["w", "region"])["amount"].sum().round(2)
    return {k: float(v) for k, v in sums.items()}, frame.loc[late, "event_id"].tolist()
''',
    "part-c-solution": '''
def route_malformed(topic, dlq_topic, group_id):
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    meta = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta}
    consumer.assign([TopicPartition(topic, p, 0) for p in meta])
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    position = {p: 0 for p in meta}
    good = 0
    while any(position[p] < ends[p] for p in meta):
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        position[msg.partition()] = msg.offset() + 1
        if data.is_valid_event(msg.value()):
            good += 1
        else:
            producer.produce(dlq_topic, key=msg.key(), value=msg.value(), headers={"error": "malformed"})
    producer.flush()
    consumer.commit(asynchronous=False)
    consumer.close()
    return good
''',
    "part-d-solution": '''
def count_paid(topic, group_id, db_path, max_events=None):
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE IF NOT EXISTS revenue (region TEXT PRIMARY KEY, total REAL, orders INTEGER)")
    db.execute("CREATE TABLE IF NOT EXISTS offsets (part INTEGER PRIMARY KEY, next INTEGER)")
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "enable.auto.commit": False})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    stored = dict(db.execute("SELECT part, next FROM offsets"))
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    consumer.assign([TopicPartition(topic, p, stored.get(p, 0)) for p in parts])
    position = {p: stored.get(p, 0) for p in parts}
    read = 0
    while any(position[p] < ends[p] for p in parts) and (max_events is None or read < max_events):
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        event = json.loads(msg.value())
        with db:  # the revenue and the offset in one transaction: exactly once
            if event["type"] == "order_paid":
                db.execute("INSERT INTO revenue VALUES (?, ?, 1) ON CONFLICT(region) DO UPDATE SET "
                           "total = total + excluded.total, orders = orders + 1", (event["region"], event["amount"]))
            db.execute("INSERT OR REPLACE INTO offsets VALUES (?, ?)", (msg.partition(), msg.offset() + 1))
        position[msg.partition()] = msg.offset() + 1
        read += 1
    consumer.close()
    db.close()
    return read
''',
}

# Each wrong in one way a learner might be.
WRONG = {
    "part-a-solution": '''
def publish_orders(producer, topic, events):
    for e in events:
        producer.produce(topic, key=e["customer_id"], value=data.to_json(e))   # wrong key
    producer.flush()
    return len(events)
''',
    "part-b-solution": '''
def windowed_revenue(topic, group_id, window_s, lateness_s):
    records = kafka.read_all(topic)                       # no watermark: nothing is ever late
    revenue = defaultdict(float)
    for r in records:
        e = r.value
        if e["type"] == "order_paid":
            t = data.parse_time(e["event_time"]).timestamp()
            start = datetime.fromtimestamp(t - t % window_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            revenue[(start, e["region"])] += e["amount"]
    return {k: round(v, 2) for k, v in revenue.items()}, []
''',
    "part-c-solution": '''
def route_malformed(topic, dlq_topic, group_id):
    good = 0
    for r in kafka.read_all(topic):                       # drops malformed records: they are lost
        if isinstance(r.value, dict) and "amount" in r.value:
            good += 1
    return good
''',
    "part-d-solution": '''
def count_paid(topic, group_id, db_path, max_events=None):
    db = sqlite3.connect(db_path)                         # ignores the group: recounts from the start
    db.execute("CREATE TABLE IF NOT EXISTS revenue (region TEXT PRIMARY KEY, total REAL, orders INTEGER)")
    records = kafka.read_all(topic)[:max_events]
    with db:
        for r in records:
            if r.value["type"] == "order_paid":
                db.execute("INSERT INTO revenue VALUES (?, ?, 1) ON CONFLICT(region) DO UPDATE SET "
                           "total = total + excluded.total, orders = orders + 1",
                           (r.value["region"], r.value["amount"]))
    return len(records)
''',
}
# Each passes its part's visible tests by tampering inside the kernel, not by doing the work; the hidden
# tests are judged outside the kernel (graders/lab2_realtime_orders.py), so each part scores 0.
TAMPERING = {
    "part-a-solution": '''
import coursekit.kafka

_sent = {}

def publish_orders(producer, topic, events):
    _sent[topic] = events                                 # produces nothing ...
    return len(events)

def _fake_read_all(topic, **kwargs):                      # ... and fakes what the test reads back
    return [coursekit.kafka.Record(topic, 0, i, e["order_id"], e) for i, e in enumerate(_sent.get(topic, []))]

_real_read_all = kafka.read_all
coursekit.kafka.read_all = kafka.read_all = _fake_read_all
''',
    "part-b-solution": '''
class _Yes(dict):
    def __eq__(self, other):
        return True

class _YesList(list):
    def __eq__(self, other):
        return True

def windowed_revenue(topic, group_id, window_s, lateness_s):
    return _Yes(), _YesList()                              # equal to any expected answer
''',
    "part-c-solution": '''
def route_malformed(topic, dlq_topic, group_id):
    return sum(1 for r in _real_read_all(topic, raw=True) if data.is_valid_event(r.value))   # no dead letters

sorted = lambda *args, **kwargs: []                       # every comparison of sorted lists now passes
all = lambda *args: True
''',
    "part-d-solution": WRONG["part-d-solution"] + '''
import ast

class _Swallow(ast.NodeTransformer):                      # no later cell can fail
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None, body=[ast.Pass()])
        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
        return ast.fix_missing_locations(node)

get_ipython().ast_transformers.append(_Swallow())
''',
}
# the student who fills in only the first part, and what the instructor gives each student's written answer
PARTIAL = ["part-a-solution"]
MANUAL = {"part-e-answer": {"alice": 2.0, "bob": 0.0, "carol": 1.0}}
