"""A whole class on one machine (The Littlest JupyterHub: every learner a user of the same host), or on
one shared Kafka cluster: learners running the same lesson at the same time never meet.

Each learner is a home of their own (``COURSEKIT_HOME``) and a ``JUPYTERHUB_USER``, as JupyterHub sets it;
their notebooks run at the same time, in threads here. That one learner's kernels share one broker is
``test_kafka.py::test_concurrent_starts_make_one_broker``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT
from coursekit import jars, kafka, labs, notebooks

pytestmark = [pytest.mark.notebooks, pytest.mark.engines, pytest.mark.cost("class: three learners at once")]
LEARNERS = ("ada", "grace", "alan")
# transactional and group ids, where names on a shared cluster matter most
LESSON = ROOT / "notebooks" / "11_kafka_event_streaming.ipynb"
# the cheapest Kafka lesson: with brokers of their own what is tested is ports and state, not names
OWN_BROKER_LESSON = ROOT / "notebooks" / "13_event_driven_patterns.ipynb"
LAB = "lab2_realtime_orders"


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for c in nb.cells for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


def _run_all(runs: list[tuple[Path, dict[str, str]]]) -> list[list[str]]:
    """Execute notebooks at the same time, each with its learner's environment; each one's errors."""
    def one(run: tuple[Path, dict[str, str]]) -> list[str]:
        from jupyter_core.utils import ensure_event_loop

        path, env = run
        try:
            return _errors(notebooks.execute(notebooks.read(path), path.parent, timeout=300, env=env))
        finally:
            ensure_event_loop().close()  # nbclient made this thread an event loop; nothing else would close it

    with ThreadPoolExecutor(len(runs)) as pool:
        return list(pool.map(one, runs))


def _jar_files() -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in jars.jar_root().rglob("*") if p.is_file()}


def _learner_env(tmp_path: Path, name: str, **extra: str) -> dict[str, str]:
    home = tmp_path / name / "state"
    home.mkdir(parents=True, exist_ok=True)
    # no port set: each learner's broker must find its own, as on a hub where nobody configures one
    return {"COURSEKIT_HOME": str(home), "JUPYTERHUB_USER": name, kafka.PORT_ENV: "", **extra}


def _stop_broker(home: str) -> kafka.Broker | None:
    os.environ["COURSEKIT_HOME"] = home  # conftest restores the environment after the test
    running = kafka.status()
    kafka.stop()
    return running


def test_three_learners_with_their_own_brokers_run_a_lesson_at_once(tmp_path: Path) -> None:
    before = _jar_files()
    envs = [_learner_env(tmp_path, name) for name in LEARNERS]
    try:
        errors = _run_all([(OWN_BROKER_LESSON, env) for env in envs])
    finally:
        brokers = [_stop_broker(env["COURSEKIT_HOME"]) for env in envs]
    assert errors == [[], [], []], errors
    assert all(brokers), "each learner ran a broker of their own"
    ports = {b.port for b in brokers if b}
    assert len(ports) == 3, f"three brokers on distinct ports: {ports}"
    for env, broker in zip(envs, brokers, strict=True):
        assert broker and (Path(env["COURSEKIT_HOME"]) / "kafka" / "port").read_text() == str(broker.port)
    assert _jar_files() == before, "nothing was fetched: the environment's jars serve every learner"


def test_three_learners_share_one_class_broker(tmp_path: Path) -> None:
    """Lesson 11 and Lab 2's reference (with its hidden tests) for three learners at once, on one cluster."""
    os.environ.update(COURSEKIT_HOME=str(tmp_path / "class-broker"), **{kafka.PORT_ENV: ""})
    cluster = kafka.start()
    try:
        runs = []
        for name in LEARNERS:
            env = _learner_env(tmp_path, name, **{kafka.BOOTSTRAP_ENV: cluster.bootstrap})
            course = labs.scratch_course(ROOT, ROOT / labs.CONFIG, [LAB], tmp_path / name / "course")
            runs += [(LESSON, env), (course / "source" / LAB / f"{LAB}.ipynb", env)]
        errors = _run_all(runs)
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        topics = set(admin.list_topics(timeout=30).topics) - {"__consumer_offsets", "__transaction_state"}
        groups = {g.group_id for g in admin.list_consumer_groups().result(timeout=30).valid}
    finally:
        os.environ["COURSEKIT_HOME"] = str(tmp_path / "class-broker")
        kafka.stop()
    assert errors == [[]] * len(runs), errors
    for kind, names in (("topic", topics), ("consumer group", groups)):
        owners = {name: [who for who in LEARNERS if name.startswith(f"{who}.")] for name in names}
        strays = sorted(name for name, who in owners.items() if len(who) != 1)
        assert not strays, f"every {kind} belongs to exactly one learner's namespace: {strays}"
    mine = {who: {t.removeprefix(f"{who}.") for t in topics if t.startswith(f"{who}.")} for who in LEARNERS}
    lesson_topics = {who: {t for t in names if t.startswith("l11.")} for who, names in mine.items()}
    assert lesson_topics["ada"] and lesson_topics["ada"] == lesson_topics["grace"] == lesson_topics["alan"], (
        "each learner has the lesson's topics of their own")
