"""Lab 2's grading cases for tests/test_labs.py: a correct solution in another style (full marks), a
plausible wrong solution of each part, and one that tampers in each part (each loses that part's points).

Each dict maps a solution cell's grade id to the code a student puts there.
"""

# Correct, but written differently from the reference: assign and batched consume() with integer
# milliseconds for the windows (the reviewer's b_alt, not the grader's pandas truth), a class-free DLQ
# that validates with data.is_valid_event, and exactly-once restarts that keep the counted event ids in
# SQLite (the reference keeps offsets there instead).
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
def windowed_revenue(topic, group_id, window_s, lateness_s):
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "enable.auto.commit": False})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.assign([TopicPartition(topic, 0, lo)])         # assign, batched consume(), integer milliseconds
    events, nxt = [], lo
    while nxt < hi:
        for m in c.consume(100, timeout=1.0):
            if not m.error():
                events.append(json.loads(m.value()))
                nxt = m.offset() + 1
    c.commit(offsets=[TopicPartition(topic, 0, nxt)], asynchronous=False)
    c.close()
    w = window_s * 1000
    rev, late, top = {}, [], None
    for e in events:
        t = round(data.parse_time(e["event_time"]).timestamp() * 1000)
        s = t // w * w
        if top is not None and top - lateness_s * 1000 >= s + w:
            late.append(e["event_id"])
        elif e["type"] == "order_paid":
            k = (datetime.fromtimestamp(s / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), e["region"])
            rev[k] = rev.get(k, 0) + e["amount"]
        top = t if top is None else max(top, t)
    return {k: round(v, 2) for k, v in rev.items()}, late
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
    with db:
        db.execute("CREATE TABLE IF NOT EXISTS revenue (region TEXT PRIMARY KEY, total REAL, orders INTEGER)")
        db.execute("CREATE TABLE IF NOT EXISTS counted (event_id TEXT PRIMARY KEY)")
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    parts = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.subscribe([topic])          # Kafka's offsets say where to start; the database says what is counted
    at_end, read = set(), 0
    while len(at_end) < parts and (max_events is None or read < max_events):
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
            continue
        at_end.discard(msg.partition())
        read += 1
        event = json.loads(msg.value())
        with db:  # the id and the count in one transaction: a repeated record is skipped
            first = db.execute("INSERT OR IGNORE INTO counted VALUES (?)", (event["event_id"],)).rowcount
            if first and event["type"] == "order_paid":
                db.execute("UPDATE revenue SET total = total + ?, orders = orders + 1 WHERE region = ?",
                           (event["amount"], event["region"]))
                db.execute("INSERT OR IGNORE INTO revenue VALUES (?, ?, 1)", (event["region"], event["amount"]))
        consumer.commit(message=msg, asynchronous=False)
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
    records = kafka.read_all(topic)                       # no watermark: nothing is ever late; no commit
    origin = data.parse_time(records[0].value["event_time"]).timestamp()   # windows from the first event
    revenue = defaultdict(float)
    for r in records:
        e = r.value
        if e["type"] == "order_paid":
            t = data.parse_time(e["event_time"]).timestamp()
            start = origin + (t - origin) // window_s * window_s
            revenue[(datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), e["region"])] += e["amount"]
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
    import zlib
    n = len(Producer({"bootstrap.servers": BOOTSTRAP}).list_topics(topic, timeout=10).topics[topic].partitions)
    return [coursekit.kafka.Record(topic, zlib.crc32(e["order_id"].encode()) % n, i, e["order_id"], e)
            for i, e in enumerate(_sent.get(topic, []))]

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

    def __contains__(self, item):                          # what the visible tests look for
        return item in ("e6", "e10")

def windowed_revenue(topic, group_id, window_s, lateness_s):
    return _Yes(), _YesList()                              # equal to any expected answer ...

class Consumer(Consumer):                                  # ... and the offsets it never committed look committed
    def committed(self, partitions, timeout=None):         # (this also fools Part C's visible commit check)
        return [TopicPartition(tp.topic, tp.partition, self.get_watermark_offsets(tp, timeout=10)[1])
                for tp in partitions]
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

# ---- tests/test_lab2_fairness.py ----------------------------------------------------------------------
# Plausible wrong solutions, each the reference with one mistake, as a learner writes it. Each is one
# part's solution cell; the fairness test proves it loses points in exactly the test cells named, all of
# its own part, and (statically) that it cannot change any other part's score. (WRONG above, graded
# through nbgrader by tests/test_labs.py, adds one more to each part: Part D's ignores the group.)
_B_HEAD = '''
def windowed_revenue(topic, group_id, window_s, lateness_s):
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.subscribe([topic])
    revenue, late = defaultdict(float), []
    max_seen = None
    while True:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                break
            raise RuntimeError(msg.error())
        event = json.loads(msg.value())
        t = data.parse_time(event["event_time"]).timestamp()
        start = t - t % window_s
'''
_B_TAIL = '''
    consumer.commit(asynchronous=False)
    consumer.close()
    return {key: round(total, 2) for key, total in revenue.items()}, late
'''
_B_BODY = '''
        if max_seen is not None and max_seen - lateness_s >= start + window_s:
            late.append(event["event_id"])
        elif event["type"] == "order_paid":
            label = datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            revenue[(label, event["region"])] += event["amount"]
        max_seen = t if max_seen is None else max(max_seen, t)
'''
_D_HEAD = '''
def count_paid(topic, group_id, db_path, max_events=None):
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE IF NOT EXISTS revenue (region TEXT PRIMARY KEY, total REAL, orders INTEGER)")
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.subscribe([topic])
    finished, read = set(), 0
    while len(finished) < partitions and (max_events is None or read < max_events):
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                finished.add(msg.partition())
                continue
            raise RuntimeError(msg.error())
        finished.discard(msg.partition())
        read += 1
        event = json.loads(msg.value())
'''
_D_COUNT = '''
        if event["type"] == "order_paid":
            with db:
                db.execute("INSERT INTO revenue VALUES (?, ?, 1) ON CONFLICT(region) DO UPDATE SET "
                           "total = total + excluded.total, orders = orders + 1", (event["region"], event["amount"]))
'''
_D_TAIL = '''
    consumer.close()
    db.close()
    return read
'''
EACH_WRONG = {
    # A: a key that keeps each order in order, but not the one asked for
    "a_customer_key": ("part-a-solution", '''
def publish_orders(producer, topic, events):
    for event in events:
        producer.produce(topic, key=event["customer_id"], value=data.to_json(event))
    producer.flush()
    return len(events)
''', {"part-a-tests"}),
    # A: the right key, but every record forced into partition 0 (in order, but one partition does all the work)
    "a_partition_zero": ("part-a-solution", '''
def publish_orders(producer, topic, events):
    for event in events:
        producer.produce(topic, key=event["order_id"], value=data.to_json(event), partition=0)
    producer.flush()
    return len(events)
''', {"part-a-tests"}),
    # B: the watermark measured in arrival time
    "b_arrival_watermark": ("part-b-solution", _B_HEAD + _B_BODY.replace(
        "max_seen = t if max_seen is None else max(max_seen, t)",
        "arrived = data.parse_time(event['arrival_time']).timestamp()\n"
        "        max_seen = arrived if max_seen is None else max(max_seen, arrived)") + _B_TAIL,
        {"part-b-watermark"}),
    # B: a window counted as closed only once the watermark is past its end
    "b_strict_boundary": ("part-b-solution", _B_HEAD + _B_BODY.replace(
        "max_seen - lateness_s >= start + window_s", "max_seen - lateness_s > start + window_s") + _B_TAIL,
        {"part-b-watermark"}),
    # B: everything right, but the offsets are never committed
    "b_no_commit": ("part-b-solution", _B_HEAD + _B_BODY + _B_TAIL.replace(
        "    consumer.commit(asynchronous=False)\n", ""), {"part-b-commit"}),
    # B: windows cut at the minute of the event_time text, whatever window_s is
    "b_minute_windows": ("part-b-solution", _B_HEAD + _B_BODY.replace(
        'label = datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")',
        'label = event["event_time"][:16] + ":00Z"') + _B_TAIL, {"part-b-windows", "part-b-watermark"}),
    # C: the dead letters lose their key
    "c_no_key": ("part-c-solution", '''
def route_malformed(topic, dlq_topic, group_id):
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.subscribe([topic])
    finished, good = set(), 0
    while len(finished) < partitions:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            finished.add(msg.partition())
            continue
        if data.is_valid_event(msg.value()):
            good += 1
        else:
            producer.produce(dlq_topic, value=msg.value(), headers={"error": "malformed"})
    producer.flush()
    consumer.commit(asynchronous=False)
    consumer.close()
    return good
''', {"part-c-tests"}),
    # C: right records, but reads only the first partition (a one-partition habit)
    "c_first_partition": ("part-c-solution", '''
def route_malformed(topic, dlq_topic, group_id):
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    consumer.subscribe([topic])
    good = 0
    while True:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            break                                   # the first partition's end ends the loop
        if data.is_valid_event(msg.value()):
            good += 1
        else:
            producer.produce(dlq_topic, key=msg.key(), value=msg.value(), headers={"error": "malformed"})
    producer.flush()
    consumer.commit(asynchronous=False)
    consumer.close()
    return good
''', {"part-c-tests"}),
    # C: a flag accepted as an amount (True >= 0 in Python: bool is a subclass of int)
    "c_bool_amount": ("part-c-solution", '''
def route_malformed(topic, dlq_topic, group_id):
    def problem(value):
        try:
            event = json.loads(value)
        except ValueError as exc:
            return f"not JSON: {exc}"
        if not isinstance(event, dict):
            return "not a JSON object"
        missing = [f for f in data.REQUIRED_FIELDS if f not in event]
        if missing:
            return f"missing fields: {missing}"
        amount = event["amount"]
        if not isinstance(amount, (int, float)) or amount < 0:
            return f"bad amount: {amount!r}"
        try:
            data.parse_time(str(event["event_time"]))
        except ValueError:
            return f"bad event_time: {event['event_time']!r}"
        return None

    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group_id, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True})
    partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.subscribe([topic])
    finished, good = set(), 0
    while len(finished) < partitions:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                finished.add(msg.partition())
                continue
            raise RuntimeError(msg.error())
        reason = problem(msg.value())
        if reason is None:
            good += 1
        else:
            producer.produce(dlq_topic, key=msg.key(), value=msg.value(), headers=[("error", reason.encode())])
    producer.flush()
    consumer.commit(asynchronous=False)
    consumer.close()
    return good
''', {"part-c-tests"}),
    # D: the counted event ids kept in process memory (a mutable default argument), Kafka's offsets trusted:
    # right while one process makes every call, wrong once a restarted worker starts with nothing
    "d_in_memory": ("part-d-solution", _D_HEAD.replace("max_events=None):", "max_events=None, _seen=set()):")
                    + _D_COUNT.replace('if event["type"] == "order_paid":',
                                       'if event["type"] == "order_paid" and event["event_id"] not in _seen:')
                    + '            _seen.add(event["event_id"])\n'
                    + "        consumer.commit(message=msg, asynchronous=False)\n" + _D_TAIL, {"part-d-tests"}),
    # D: at-least-once: database first, then the Kafka commit (Part D's reference before crashes were tested)
    "d_at_least_once": ("part-d-solution", _D_HEAD + _D_COUNT
                        + "        consumer.commit(message=msg, asynchronous=False)\n" + _D_TAIL, {"part-d-tests"}),
    # D: at-most-once: the Kafka commit first, then the database
    "d_at_most_once": ("part-d-solution", _D_HEAD + "        consumer.commit(message=msg, asynchronous=False)\n"
                       + _D_COUNT + _D_TAIL, {"part-d-tests"}),
    # D: one Kafka commit at the end of each call
    "d_commit_at_end": ("part-d-solution", _D_HEAD + _D_COUNT + _D_TAIL.replace(
        "    consumer.close()", "    if read:\n        consumer.commit(asynchronous=False)\n    consumer.close()"),
        {"part-d-tests"}),
}
