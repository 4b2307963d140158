"""Broken and hostile submissions: the batch goes on, the others are graded right, the bad one gets
zero or its honest score with a reason in the log, and tampering never raises a score.

Built from the release notebook of the lab-shaped fixture (2 autograded points), so the batch is quick.
The same batch proves the fixture's reference solution gets every point and its untouched release none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from conftest import FIXTURE_COURSE, ROOT
from coursekit import hidden, labs
from coursekit.graderkernel import MEMORY_ENV

LAB = "lab0_fixture"
pytestmark = pytest.mark.notebooks
BATCH = pytest.mark.xdist_group("hostile")  # the tests that share the module's one autograde run
GOOD = '''
def tumbling_counts(events, width_s):
    counts = Counter()
    for event in events:
        t = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).timestamp()
        counts[datetime.fromtimestamp(t - t % width_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")] += 1
    return dict(counts)
'''
WRONG = '''
def tumbling_counts(events, width_s):
    return {"2026-11-02T09:00:00Z": 2, "2026-11-02T09:01:00Z": 1}   # hard-coded for the sample
'''
# In-process tampering, each 0 when the grader judges the hidden tests. Swallowing errors (and forging the
# report on top of it) scores 2 when they are judged inside the kernel (test_in_kernel_hidden_tests_would_be_fooled);
# the always-equal object is stopped by the JSON round trip of the returned value, in either place.
SWALLOWS_ERRORS = WRONG + '''
import ast

class _Swallow(ast.NodeTransformer):   # wrap every later cell in try/except: no test can fail
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None, body=[ast.Pass()])
        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
        return ast.fix_missing_locations(node)

get_ipython().ast_transformers.append(_Swallow())
'''
ALWAYS_EQUAL = '''
class _Yes(dict):   # a dict that equals everything
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __getitem__(self, key):
        return 2
    def values(self):
        return [len(EVENTS)]

def tumbling_counts(events, width_s):
    return _Yes()
'''
FORGES_THE_REPORT = SWALLOWS_ERRORS + '''
import re
from IPython.display import display
import coursekit.hidden

coursekit.hidden.report = lambda token, value: None
def _forge(info):
    for token in re.findall(r"_coursekit_report\\(\'([0-9a-f]+)\'", info.raw_cell or ""):
        display({coursekit.hidden.MIME: {"token": token, "value": {"__pairs__": [["2026-11-02T09:00:00Z", 3]]}}},
                raw=True)
get_ipython().events.register("pre_run_cell", _forge)
'''
DAEMON = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import pathlib, time\\n"
                  "while True:\\n    pathlib.Path('heartbeat').write_text(str(time.time()))\\n    time.sleep(0.2)"],
                 start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.0)
if not os.path.exists("heartbeat"):
    raise RuntimeError("the daemon did not run")
"""


def _if(condition: str, setup: str = "") -> str:
    """A solution that is right only when ``condition`` holds: a cheat that scores only if it works."""
    def indent(code: str) -> str:
        return "".join("    " + line + "\n" for line in code.strip().splitlines())
    return f"import glob, os, pathlib, time\n{setup}\nif {condition}:\n{indent(GOOD)}else:\n{indent(WRONG)}"


# Upper-case names in a solution (COURSE, TARGETS, ...) are replaced by the real paths when it is built.
# Writes everywhere a later kernel or the grader would pick it up; the IPython start-up file marks every
# later kernel that runs it. No probe may be left on the machine (the batch asserts it), and the student
# graded after it must not be marked.
PLANTS = """
import pathlib
for target in TARGETS:
    try:
        pathlib.Path(target).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(target).write_text("import builtins; builtins.HOSTILE_PROBE = True\\n"
                                        if "startup" in target else "# hostile probe\\n")
    except OSError:
        pass
"""
LATE_CLASSMATE = """
def _appears(path, seconds=2.0):   # the classmate arrives before this kernel starts
    end = time.time() + seconds
    while time.time() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.2)
    return False
"""
ABOVE_THE_CAP = """
hog = [bytearray(100 * 2**20) for _ in range(9)]   # 900 MB in one process, above the batch's 600 MB cap
"""
MEMFD = """
import os
fd = os.memfd_create("hog")                          # memory no process's resident size shows
for _ in range(16):
    os.write(fd, bytes(64 * 2**20))                  # 1 GB
"""
SHM = """
import os
try:
    with open("/dev/shm/hostile-hog", "wb") as out:  # a tmpfs: memory, outside every process
        for _ in range(4):
            out.write(bytes(64 * 2**20))
finally:
    if os.path.exists("/dev/shm/hostile-hog"):
        os.remove("/dev/shm/hostile-hog")
"""
THREADS = """
import threading
threading.stack_size(64 * 1024)
_stop = threading.Event()
_threads = [threading.Thread(target=_stop.wait, daemon=True) for _ in range(2000)]
try:
    for t in _threads:
        t.start()
finally:
    _stop.set()
"""
ROOT_SECRETS = """
def _opens(path, flags):
    try:
        os.close(os.open(path, flags))
        return True
    except OSError:
        return False
"""
SNIFF = """
import zmq
ports = {int(f.split()[1].split(":")[1], 16) for f in open("/proc/net/tcp").read().splitlines()[1:]
         if f.split()[3] == "0A" and f.split()[1].startswith("0100007F:")}   # listening on 127.0.0.1
context, heard = zmq.Context(), b""
subscribers = []
for port in ports:
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://127.0.0.1:{port}")
    subscribers.append(sub)
poller = zmq.Poller()
for sub in subscribers:
    poller.register(sub, zmq.POLLIN)
end = time.time() + 2   # the other kernel prints every 0.2 s
while time.time() < end:
    for sub, _ in poller.poll(200):
        heard += b"".join(sub.recv_multipart())
"""
SYMLINK = """
import os
os.remove("lab0_fixture.ipynb")                      # nbgrader writes the graded notebook here, as the grader
os.symlink(LINK_TARGET, "lab0_fixture.ipynb")
"""
TAMPERING = ["swallows_errors", "always_equal", "forges_the_report"]
# each scores 2 when its defence is off (test_without_the_defences_the_same_cheats_score), 0 with it
CHEATS = {
    "reads_the_source": {"solution": _if("os.access(COURSE + '/source/lab0_fixture/lab0_fixture.ipynb', os.R_OK)")},
    "reads_the_graders": {"solution": _if("os.access(COURSE + '/graders/lab0_fixture.py', os.R_OK)")},
    "reads_the_gradebook": {"solution": _if("os.access(COURSE + '/gradebook.db', os.R_OK)")},
    "reads_the_secret": {"solution": _if("os.access(COURSE + '/.grading-secret', os.R_OK)")},
    "reads_the_grader_env": {"solution": _if("os.environ.get('JUPYTERHUB_API_TOKEN') == TOKEN",
                                             "print(dict(os.environ))")},
    # root's secrets and the kernel's settings, when grading runs as root (containers, CI)
    "reads_root_secrets": {"solution": _if("_opens('/etc/shadow', os.O_RDONLY) or "
                                           "_opens('/proc/sys/kernel/core_pattern', os.O_WRONLY)", ROOT_SECRETS)},
    # the IOPub of every kernel on the machine's loopback (another kernel prints a classmate's work)
    "sniffs_other_kernels": {"solution": _if("MARKER.encode() in heard", SNIFF)},
    # a classmate's folder created while this kernel runs (parallel grading), or kernels' connection files
    "reads_a_classmate": {"solution": _if("_appears(CLASSMATE) or glob.glob(RUNTIME + '/kernel-*.json')",
                                          LATE_CLASSMATE)},
    # graded after a_plants_startup_code, which tried to leave code for later kernels
    "zz_runs_after_the_planter": {"solution": _if("getattr(__import__('builtins'), 'HOSTILE_PROBE', False)")},
    "memory_above_the_cap": {"solution": ABOVE_THE_CAP + GOOD},
    "memfd_bomb": {"solution": MEMFD + GOOD},
    "shm_bomb": {"solution": SHM + GOOD},
    "thread_bomb": {"solution": THREADS + GOOD},
    # a wrong answer, and the kernel's copy of the hidden-test helpers made to accept anything
    "patched_helpers": {"solution": WRONG + (
        "\nimport coursekit.hidden as _h\n"
        "_h.checker = lambda module, grade_id: lambda rng: _h.Hidden(call='None', verify=lambda value: None)\n")},
    "swallows_errors": {"solution": SWALLOWS_ERRORS},
    "forges_the_report": {"solution": FORGES_THE_REPORT},
}
# extra files beside the notebook, named like modules the grader's own processes import: a module file that
# first leaves a mark (outside the sandbox, or as root inside it), then stands aside for the real module
_IMPOSTOR = """
import os, sys
try:
    if os.getuid() == 0:
        open(os.path.join(os.getcwd(), "ran-as-root"), "w").close()
    open(HIJACK, "w").close()
except OSError:
    pass
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
del sys.modules[__name__]
import {module} as _real
sys.modules[__name__] = _real
"""
# graded right if the impostors never ran where they could do harm: 0 if they ran as root
IMPOSTORS = _if("not os.path.exists('ran-as-root')")
# each scores more than its honest score when nbgrader does not restore test cells from the gradebook
EDITS = {
    "edited_tests": {"solution": WRONG, "tests": "print('all tests passed')\n"},
    # the right answer, with the test cell's points raised: the score must stay 2
    "edited_metadata": {"solution": GOOD, "metadata": True},
}
SUBMISSIONS = {
    "good": {"solution": GOOD},
    # the grader's code, its environment's site-packages, IPython start-up files, its HOME, /tmp, the course
    "a_plants_startup_code": {"solution": PLANTS + GOOD},
    "endless_loop": {"solution": "while True:\n    pass\n" + GOOD},
    "loop_after_a_correct_answer": {"solution": GOOD + "\nwhile True:\n    pass\n"},
    "kills_kernel": {"solution": "import os\nos._exit(3)\n" + GOOD},
    # four times the machine's memory, 64 MB at a time: stopped at the cap, the machine never meets the OOM
    # killer (no control run: without the cap it would)
    "memory_bomb": {"solution": ("import psutil\nhog = []\n"
                                 "while len(hog) < 4 * psutil.virtual_memory().total // 2**26:\n"
                                 "    hog.append(bytearray(2**26))\n") + GOOD},
    "hijacks_the_supervisor": {"solution": IMPOSTORS, "files": {
        f"{module}.py": _IMPOSTOR.replace("{module}", module) for module in ("psutil", "ctypes", "json")}},
    # replaces its notebook by a link to a file outside: nbgrader must not write the graded notebook there
    "plants_a_symlink": {"solution": GOOD + SYMLINK},
    # several processes, each under the cap, together above it: the watcher outside the sandbox stops them
    "memory_bomb_processes": {"solution": (
        "import multiprocessing, time\n"
        "def _hog():\n    keep = bytearray(300 * 2**20)\n    time.sleep(60)\n"
        "hogs = [multiprocessing.Process(target=_hog) for _ in range(3)]\n"
        "for h in hogs:\n    h.start()\nfor h in hogs:\n    h.join()\n" + GOOD)},
    "huge_output": {"solution": GOOD + "\nfor i in range(200_000):\n    print('spam', i)\n"},
    "warns_but_correct": {"solution": GOOD.replace(
        "    return dict(counts)",
        "    import warnings\n    warnings.warn('a library deprecation', FutureWarning)\n    return dict(counts)")},
    "deleted_tests": {"solution": WRONG, "delete_tests": True},
    "always_equal": {"solution": ALWAYS_EQUAL},
    # honest 2, and the process it leaves behind must not outlive its kernel
    "leaves_a_daemon": {"solution": GOOD + DAEMON},
    **CHEATS,
    **EDITS,
}
MEMORY_MB = "600"
TOKEN = "hub-token-" + uuid.uuid4().hex


class Places:
    """The paths a batch's submissions aim at, and what the grader's environment holds."""

    def __init__(self, course: Path, outside: Path) -> None:
        import sysconfig

        from jupyter_core.paths import jupyter_runtime_dir

        probe = f"hostile-probe-{uuid.uuid4().hex[:8]}"
        self.course, self.outside = course, outside
        self.classmate = course / "autograded" / "zz_classmate" / LAB / "answer.txt"
        self.runtime = jupyter_runtime_dir()
        self.targets = [ROOT / "src" / "coursekit" / f"{probe.replace('-', '_')}.py",
                        Path(sysconfig.get_paths()["purelib"]) / f"{probe}.pth",
                        Path(os.environ["IPYTHONDIR"]) / "profile_default" / "startup" / f"{probe}.py",
                        Path.home() / probe, outside / probe, course / probe]
        self.env = {"JUPYTERHUB_API_TOKEN": TOKEN, MEMORY_ENV: MEMORY_MB}
        self.marker = f"classmate-{uuid.uuid4().hex}"
        outside.mkdir(parents=True, exist_ok=True)
        self.link_target = outside / "symlink-target"
        self.link_target.write_text("untouched")

    def fill(self, code: str) -> str:
        for name, value in (("COURSE", str(self.course)), ("CLASSMATE", str(self.classmate)),
                            ("RUNTIME", self.runtime), ("TARGETS", [str(t) for t in self.targets]),
                            ("TOKEN", TOKEN), ("MARKER", self.marker), ("LINK_TARGET", str(self.link_target)),
                            ("HIJACK", str(self.outside / "hijacked"))):
            text = repr(value)
            code = re.sub(rf"\b{name}\b", lambda _, text=text: text, code)
        return code

    def written(self) -> list[Path]:
        return [t for t in self.targets if t.exists()]

    def remove_probes(self) -> None:
        for target in self.targets:
            target.unlink(missing_ok=True)


def _build(release: Path, spec: dict[str, object]) -> nbformat.NotebookNode:
    nb = nbformat.read(release, as_version=4)
    cells = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == "part-a-solution":
            cell.source = str(spec["solution"]).strip() + "\n"
        if meta.get("grade_id") == "part-a-tests":
            if spec.get("delete_tests"):
                continue
            if "tests" in spec:
                cell.source = str(spec["tests"])
            if spec.get("metadata"):
                meta.update(points=100)
        cells.append(cell)
    nb.cells = cells
    return nb


def _submit(course: Path, submissions: dict[str, dict[str, object]], places: Places) -> None:
    assert labs.nbgrader(course, "generate_assignment", LAB, "--force").returncode == 0
    hidden.course_secret(course)   # made on first grading; here first, so that the control run has it too
    release = course / "release" / LAB
    for name, spec in submissions.items():
        folder = course / "submitted" / name / LAB
        shutil.copytree(release, folder)
        nbformat.write(_build(release / f"{LAB}.ipynb", {**spec, "solution": places.fill(str(spec["solution"]))}),
                       folder / f"{LAB}.ipynb")
        for name, code in dict(spec.get("files", {})).items():
            (folder / name).write_text(places.fill(code))


def _autograde(course: Path, places: Places, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    """One ``nbgrader autograde`` of every submission; a classmate's folder appears while one is graded."""
    def classmate_arrives() -> None:
        end = time.time() + 600
        while not (course / "autograded" / "reads_a_classmate").exists() and time.time() < end:
            time.sleep(0.1)
        places.classmate.parent.mkdir(parents=True, exist_ok=True)
        places.classmate.write_text("a classmate's answer")

    arrival = threading.Thread(target=classmate_arrives, daemon=True)
    arrival.start()
    # another kernel on the machine (a learner's, on a hub) keeps printing their work; in a process of its
    # own, so that none of its sockets is left to this test process
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, places.marker], env=labs.venv_env(),
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return labs.nbgrader(course, "autograde", LAB, "--create", "--ExecutePreprocessor.timeout=10",
                             "--Execute.timeout=10", timeout=900, env={**places.env, **(env or {})})
    finally:
        arrival.join(timeout=1)
        victim.terminate()  # it shuts its kernel down
        try:
            victim.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()


VICTIM = """
import signal, sys, time
from jupyter_client.manager import KernelManager
kernel = KernelManager(kernel_name="python3")
signal.signal(signal.SIGTERM, lambda *_: (kernel.shutdown_kernel(now=True), sys.exit(0)))
kernel.start_kernel()
client = kernel.client()
client.start_channels()
client.wait_for_ready(timeout=60)
client.execute(f"import time\\nwhile True:\\n    print({sys.argv[1]!r}, flush=True)\\n    time.sleep(0.2)")
while True:
    time.sleep(1)
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str], Places]:
    course = labs.scratch_course(FIXTURE_COURSE, ROOT / labs.CONFIG, [LAB], tmp_path_factory.mktemp("hostile"))
    places = Places(course, tmp_path_factory.mktemp("outside"))
    _submit(course, SUBMISSIONS, places)
    release = course / "release" / LAB
    broken = course / "submitted" / "not_json" / LAB
    shutil.copytree(release, broken)
    (broken / f"{LAB}.ipynb").write_text('{"cells": [ this is not JSON')
    renamed = course / "submitted" / "renamed" / LAB
    shutil.copytree(release, renamed)
    (renamed / f"{LAB}.ipynb").rename(renamed / f"{LAB} (1).ipynb")
    shutil.copytree(release, course / "submitted" / "blank" / LAB)
    shutil.copytree(course / "source" / LAB, course / "submitted" / "reference" / LAB)
    try:
        done = _autograde(course, places)
        written = places.written()
    finally:
        places.remove_probes()
    assert not written, f"a submission wrote outside its working copy: {written}"
    return course, done, places


def _scores(course: Path) -> dict[str, float | None]:
    """Each student's autograded score; None for one whose submission could not be graded."""
    from nbgrader.api import Gradebook, MissingEntry

    result: dict[str, float | None] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in gb.students:
            try:
                result[student.id] = gb.find_submission(LAB, student.id).code_score
            except MissingEntry:
                result[student.id] = None
    return result


# no autograded notebook: unreadable, or its kernel died (nbgrader reports these as errors, score 0)
NOT_GRADED = {"not_json", "renamed", "kills_kernel", "memory_bomb_processes", "memfd_bomb"}


@BATCH
def test_every_student_has_a_row_and_nbgrader_reports_only_the_ungraded(
        graded: tuple[Path, subprocess.CompletedProcess[str], Places]) -> None:
    course, done, _ = graded
    submitted = {p.name for p in (course / "submitted").iterdir()}
    scores = _scores(course)
    assert set(scores) == submitted, "one gradebook row per submitted student"
    assert None not in scores.values(), f"every submission has a score (0 when it cannot be graded): {scores}"
    log = done.stdout + done.stderr
    assert done.returncode != 0, "nbgrader's exit status says that some submissions could not be graded"
    failed = set(re.findall(rf"error processing assignment '{LAB}' for student '([^']+)'", log))
    assert failed == NOT_GRADED, (f"nbgrader failed on {failed}, expected only {NOT_GRADED}:\n"
                                  + "\n".join(_error_of(log, name) for name in failed - NOT_GRADED))


def _error_of(log: str, name: str) -> str:
    """What nbgrader logged when it could not grade ``name``: its error and traceback, or the log's tail."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "There was an error processing assignment:" in line and f"/{name}/" in line:
            end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("[AutogradeApp | INFO]")),
                       len(lines))
            return "\n".join(lines[max(0, i - 15):end])
    return log[-3000:]


Graded = tuple[Path, subprocess.CompletedProcess[str], Places]


@BATCH
def test_the_good_submission_is_graded_right(graded: Graded) -> None:
    assert _scores(graded[0])["good"] == 2


@BATCH
def test_reference_gets_every_point_and_blank_none(graded: Graded) -> None:
    from nbgrader.api import Gradebook

    course = graded[0]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        reference = gb.find_submission(LAB, "reference")
        assert reference.max_code_score > 0
        assert reference.code_score == reference.max_code_score, "the reference must get every autograded point"
        assert gb.find_submission(LAB, "blank").code_score == 0, "an untouched release must get zero"
        assert reference.needs_manual_grade, "written answers are left for the instructor"


@BATCH
@pytest.mark.parametrize("name", ["endless_loop", "kills_kernel", "memory_bomb", "memory_bomb_processes",
                                  "deleted_tests", "always_equal", "edited_tests", *CHEATS])
def test_bad_submissions_get_no_points(graded: Graded, name: str) -> None:
    assert _scores(graded[0])[name] == 0, f"{name} scored"


@BATCH
def test_raised_points_do_not_raise_the_score(graded: Graded) -> None:
    assert _scores(graded[0])["edited_metadata"] == 2, "the gradebook's points count, not the submission's"


@BATCH
def test_huge_output_and_late_loops_keep_their_honest_score(graded: Graded) -> None:
    course = graded[0]
    assert _scores(course)["loop_after_a_correct_answer"] == 2, "the function was defined before the loop"
    assert _scores(course)["huge_output"] == 2
    assert _scores(course)["warns_but_correct"] == 2, "a warning on stderr is not a failed test"
    warned = nbformat.read(course / "autograded" / "warns_but_correct" / LAB / f"{LAB}.ipynb", as_version=4)
    texts = [o.get("text", "") for c in warned.cells for o in c.get("outputs", [])]
    assert any("[stderr]" in t and "FutureWarning" in t for t in texts), "the warning is kept, marked, as output"
    nb = nbformat.read(course / "autograded" / "huge_output" / LAB / f"{LAB}.ipynb", as_version=4)
    printed = sum(len(o.get("text", "").splitlines()) for c in nb.cells for o in c.get("outputs", []))
    assert printed <= 1100, "output is cut to LimitOutput.max_lines"


def _outputs(course: Path, name: str) -> str:
    """The outputs of a student's autograded notebook, as text ("" when there is none)."""
    path = course / "autograded" / name / LAB / f"{LAB}.ipynb"
    if not path.is_file():
        return ""
    return json.dumps([c.get("outputs", []) for c in nbformat.read(path, as_version=4).cells])


@BATCH
def test_the_log_names_each_failure_and_its_student(graded: Graded) -> None:
    _, done, _ = graded
    log = done.stdout + done.stderr
    for name in ("not_json", "renamed"):
        assert f"submitted/{name}/{LAB}" in log, f"the log does not say which submission {name} is"
    assert f"the kernel for memory_bomb_processes used more than {MEMORY_MB} MB and was stopped" in log
    assert "MemoryError" in _outputs(graded[0], "memory_bomb"), "one allocation past the cap fails at once"
    assert "MemoryError" in _outputs(graded[0], "memory_above_the_cap")
    assert f"the kernel for memfd_bomb used more than {MEMORY_MB} MB and was stopped" in log
    assert "No space left on device" in _outputs(graded[0], "shm_bomb"), "/dev/shm is a small tmpfs of its own"
    assert "can't start new thread" in _outputs(graded[0], "thread_bomb")


@BATCH
def test_a_lab_that_does_not_exist(graded: Graded) -> None:
    done = labs.nbgrader(graded[0], "autograde", "lab9_nope", timeout=120)
    assert done.returncode != 0
    assert "lab9_nope" in done.stdout + done.stderr


@BATCH
def test_nothing_a_submission_starts_or_writes_outlives_its_kernel(graded: Graded) -> None:
    course = graded[0]
    assert _scores(course)["leaves_a_daemon"] == 2, "starting a process is allowed; the answer is right"
    folder = course / "autograded" / "leaves_a_daemon" / LAB
    time.sleep(1.0)
    assert not (folder / "heartbeat").exists(), "the daemon's file is removed, and no daemon writes it again"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (course / "release" / LAB).iterdir())


@BATCH
def test_files_beside_the_notebook_never_run_in_the_grader_s_own_processes(graded: Graded) -> None:
    course, _, places = graded
    assert not (places.outside / "hijacked").exists(), "a submitted module ran outside the sandbox"
    assert _scores(course)["hijacks_the_supervisor"] == 2, "a submitted module ran as root inside the sandbox"


@BATCH
def test_a_planted_link_does_not_make_nbgrader_write_elsewhere(graded: Graded) -> None:
    course, _, places = graded
    assert places.link_target.read_text() == "untouched"
    graded_nb = course / "autograded" / "plants_a_symlink" / LAB / f"{LAB}.ipynb"
    assert graded_nb.is_file() and not graded_nb.is_symlink()
    assert _scores(course)["plants_a_symlink"] == 2


@BATCH
def test_no_grader_secret_reaches_a_submission(graded: Graded) -> None:
    printed = _outputs(graded[0], "reads_the_grader_env")
    assert "PATH" in printed and TOKEN not in printed, "it printed its environment, without the hub token"


@BATCH
def test_the_log_gives_the_grader_s_reason(graded: Graded) -> None:
    course, done, _ = graded
    log = done.stdout + done.stderr
    for name in TAMPERING:
        assert f"{name}, part-a-tests: hidden tests failed" in log
    nb = nbformat.read(course / "autograded" / "always_equal" / LAB / f"{LAB}.ipynb", as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "HiddenTestFailed", "the instructor sees why in the autograded notebook"


def _control(tmp_path: Path, config: str, names: list[str], env: dict[str, str]
             ) -> tuple[dict[str, float | None], Path, Places]:
    """Grade ``names`` in a course whose config ends with ``config`` (a defence removed); their scores."""
    course = labs.scratch_course(FIXTURE_COURSE, ROOT / labs.CONFIG, [LAB], tmp_path / "course")
    with (course / labs.CONFIG).open("a") as out:
        out.write("\n# defences off, for this test only\n" + config)
    places = Places(course, tmp_path / "outside")
    _submit(course, {name: SUBMISSIONS[name] for name in names}, places)
    try:
        done = _autograde(course, places, env=env)
        written = places.written()
    finally:
        places.remove_probes()
    assert done.returncode == 0, done.stdout + done.stderr
    if "a_plants_startup_code" in names:
        assert written == places.targets, "without the sandbox every one of these places is writable"
    return _scores(course), course, places


def test_without_the_defences_the_same_cheats_score(tmp_path: Path) -> None:
    """Each defence removed, each cheat above scores: the tests above are not vacuous.

    Off here: the sandbox (``COURSEKIT_GRADER_SANDBOX=off``: file system, environment, classmates), the
    memory cap (0), and the grader-side judging of hidden tests (nbgrader's own ``Execute``: the hidden
    tests run in the kernel, as nbgrader does by default).
    """
    config = ("c.Autograde.autograde_preprocessors = [p.replace('coursekit.grading.ExecuteHiddenTests',\n"
              "    'nbgrader.preprocessors.Execute') for p in c.Autograde.autograde_preprocessors]\n")
    names = ["good", "always_equal", "a_plants_startup_code", "plants_a_symlink", *CHEATS]
    scores, course, places = _control(tmp_path, config, names, {"COURSEKIT_GRADER_SANDBOX": "off", MEMORY_ENV: "0"})
    assert scores["good"] == 2, "the hidden tests run in the kernel when the grader does not judge them"
    cheats = [name for name in CHEATS if name != "reads_root_secrets" or os.geteuid() == 0]
    assert {name: scores[name] for name in cheats} == dict.fromkeys(cheats, 2)
    assert scores["always_equal"] == 0, "the returned value is compared as JSON data, not as the kernel's object"
    assert TOKEN in _outputs(course, "reads_the_grader_env"), "without the sandbox the hub token is printed"
    assert places.link_target.read_text() != "untouched", "without the clean-up nbgrader writes through the link"


def test_without_restored_test_cells_edits_score(tmp_path: Path) -> None:
    """nbgrader's ``OverwriteCells`` (restoring test cells and their points from the gradebook) removed."""
    kept = ", ".join(f"'nbgrader.preprocessors.{name}'"  # nbgrader's own list, less OverwriteCells
                     for name in ("ClearOutput", "DeduplicateIds", "OverwriteKernelspec", "CheckCellMetadata"))
    config = f"c.Autograde.sanitize_preprocessors = [{kept}]\n"
    scores = _control(tmp_path, config, list(EDITS), {})[0]
    assert scores["edited_tests"] == 2, "the edited test cell ran as the student wrote it"
    assert scores["edited_metadata"] > 2, "the submission's own points counted"
