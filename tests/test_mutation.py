"""A learner's own tests, graded by the defects they catch: coursekit.mutation."""

from __future__ import annotations

import pytest

from coursekit import mutation, sandbox

CORRECT = mutation.Variant("correct", "def total(xs):\n    return sum(x for x in xs if x > 0)\n")
DEFECTS = [
    mutation.Variant("dropped_filter", "def total(xs):\n    return sum(xs)\n"),
    mutation.Variant("unit_error", "def total(xs):\n    return 100 * sum(x for x in xs if x > 0)\n"),
]
GOOD = "def test_only_positive_amounts_count(build):\n    assert build([1, -2, 3]) == 4\n"
WEAK = "def test_a_sum(build):\n    assert build([1, 2]) == 3\n"
SANDBOXED = [False] + ([True] if sandbox.enabled() and sandbox.problem() is None else [])


def _judge(tests: str, sandboxed: bool, **kw: float) -> tuple[mutation.Outcome, dict[str, mutation.Judgement]]:
    return mutation.judge(tests, CORRECT, DEFECTS, fixture="build", function="total", sandboxed=sandboxed, **kw)


@pytest.mark.parametrize("sandboxed", SANDBOXED, ids=lambda s: "sandboxed" if s else "plain")
def test_tests_of_behaviour_catch_the_defects_they_test(sandboxed: bool) -> None:
    correct, verdicts = _judge(GOOD, sandboxed)
    assert correct.passed, correct.log
    assert all(v.caught for v in verdicts.values()), verdicts


def test_a_weak_suite_misses_what_it_does_not_test() -> None:
    _, verdicts = _judge(WEAK, False)
    assert not verdicts["dropped_filter"].caught and verdicts["unit_error"].caught
    assert "not caught: all tests passed" in verdicts["dropped_filter"].why


@pytest.mark.parametrize("sandboxed", SANDBOXED[-1:], ids=lambda s: "sandboxed" if s else "plain")
def test_the_implementation_cannot_be_told_apart_by_its_source(sandboxed: bool) -> None:
    reads_source = (
        "import glob, inspect, os\n"
        "def test_reads_the_source(build):\n"
        "    found = [p for p in glob.glob('**/*', recursive=True) + glob.glob('.*') if 'variant' in p]\n"
        "    assert not found and os.environ.get('COURSEKIT_VARIANT_FILE') is None\n"
        "    try:\n"
        "        source = inspect.getsource(build)\n"
        "    except (OSError, TypeError):\n"
        "        return\n"
        "    assert 'sum(' not in source, 'source visible'   # the stand-in's own code, when graded\n"
    )
    correct = mutation.run(reads_source, DEFECTS[0], fixture="build", function="total", sandboxed=sandboxed)
    assert correct.passed, correct.log


def test_a_suite_that_fails_on_the_correct_pipeline_earns_nothing() -> None:
    always_fails = "def test_no(build):\n    assert False\n"
    correct, verdicts = _judge(always_fails, False)
    assert correct.failed and not any(v.caught for v in verdicts.values())
    assert all("do not pass on a correct pipeline" in v.why for v in verdicts.values())
    nothing = mutation.run("def helper():\n    pass\n", CORRECT, fixture="build", function="total", sandboxed=False)
    assert nothing.returncode == 5 and not nothing.passed, "no tests is not a pass"


def test_a_crash_or_a_hang_is_not_a_catch() -> None:
    crashes = "import os\ndef test_exit(build):\n    if build([1, -2, 3]) != 4:\n        os._exit(7)\n"
    correct, verdicts = _judge(crashes, False)
    assert correct.passed and not any(v.caught for v in verdicts.values())
    assert "exit status 7" in verdicts["unit_error"].why
    hangs = "import time\ndef test_wait(build):\n    if build([1, -2, 3]) != 4:\n        time.sleep(60)\n"
    _, verdicts = _judge(hangs, False, timeout=5)
    assert "time limit" in verdicts["dropped_filter"].why


def test_the_fixture_can_be_the_whole_module() -> None:
    tests = "def test_module(pipeline):\n    assert pipeline.total([1, -2, 3]) == 4\n"
    correct, verdicts = mutation.judge(tests, CORRECT, DEFECTS, fixture="pipeline", function=None, sandboxed=False)
    assert correct.passed, correct.log
    assert all(v.caught for v in verdicts.values()), verdicts


def test_in_this_process_the_verdicts_are_the_same() -> None:
    """``here=True`` (a learner's kernel) runs pytest in this process: same verdicts, nothing left behind."""
    import os
    import sys

    for tests in (GOOD, WEAK, "def test_no(build):\n    assert False\n"):
        apart = _judge(tests, False)
        here = mutation.judge(tests, CORRECT, DEFECTS, fixture="build", function="total", here=True)
        assert here[0].returncode == apart[0].returncode, here[0].log
        assert {k: v.caught for k, v in here[1].items()} == {k: v.caught for k, v in apart[1].items()}
    assert mutation.VARIANT_ENV not in os.environ
    assert not [m for m in sys.modules if m in ("test_learner", "conftest")]


@pytest.mark.parametrize("sandboxed", SANDBOXED[-1:], ids=lambda s: "sandboxed" if s else "plain")
def test_as_graded_a_test_can_only_call_the_implementation(sandboxed: bool) -> None:
    """Graded, the implementation runs in a process of its own: its globals, code and constants are in no
    object of the tests' process, and a pickle that would run code there is refused; calls, results and
    exceptions cross as they would directly."""
    reads_the_code = (
        "import gc\n"
        "def test_reads_the_code(build):\n"
        "    assert not hasattr(build, '__wrapped__')\n"
        "    assert 'sum' not in build.__code__.co_names and 'total' not in build.__globals__\n"
        "    assert not [f for f in gc.get_objects() if type(f).__name__ == 'function'\n"
        "                and f.__code__.co_filename == '<pipeline>'], 'the implementation is in this process'\n"
        "def test_calls_cross(build):\n"
        "    assert build([1, -2, 3]) == 4\n"
        "    try:\n"
        "        build(None)\n"
        "    except TypeError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError('the exception crosses')\n"
        "class Evil:\n"
        "    def __reduce__(self):\n"
        "        return (eval, ('1',))\n"
        "import numpy.testing, sys\n"
        "class Gadget:   # a function of an allowed package that runs a string\n"
        "    def __reduce__(self):\n"
        "        return (numpy.testing.runstring, ('raise Exception(\"ran\")', {}))\n"
        "def test_no_function_of_an_allowed_package_runs_code(build):\n"
        "    try:\n"
        "        build([Gadget()])\n"
        "    except TypeError as exc:\n"
        "        assert 'only data' in str(exc)\n"
        "    else:\n"
        "        raise AssertionError('a pickle ran code')\n"
        "def test_only_the_public_functions_can_be_called(build):\n"
        "    caller = sys.modules['conftest']._caller\n"
        "    for name in ('__getattribute__', '__dir__', '_private'):\n"
        "        try:\n"
        "            caller(name)('total')\n"
        "        except AttributeError:\n"
        "            continue\n"
        "        raise AssertionError(f'{name} reached the implementation module')\n"
        "def test_no_code_reaches_the_implementation(build):\n"
        "    try:\n"
        "        build([Evil()])\n"
        "    except TypeError as exc:\n"
        "        assert 'only data' in str(exc)\n"
        "    else:\n"
        "        raise AssertionError('a pickle ran code')\n"
    )
    outcome = mutation.run(reads_the_code, CORRECT, fixture="build", function="total", sandboxed=sandboxed)
    assert outcome.passed, outcome.log
    direct = mutation.run_here(reads_the_code, CORRECT, fixture="build", function="total")
    assert direct.failed, "in the learner's own kernel the function is there to read: the test above can fail"


def test_as_graded_every_kind_of_data_frame_reaches_the_implementation() -> None:
    """A frame whose times are in a ``zoneinfo`` zone, or whose strings are Arrow-backed, crosses to the
    implementation's process as a direct call would pass it (their own pickles call functions the child
    refuses): the same suite passes graded as in the learner's kernel."""
    echo = mutation.Variant("correct", "def echo(frame):\n    return [str(t) for t in frame.dtypes], frame\n")
    tests = (
        "import zoneinfo\n"
        "import pandas as pd\n"
        "def test_the_frame_arrives_as_sent(echo):\n"
        "    frame = pd.DataFrame({\n"
        "        'at': pd.to_datetime(['2026-11-02T23:30:00Z', None], utc=True).tz_convert(\n"
        "            zoneinfo.ZoneInfo('Europe/Amsterdam')),\n"
        "        'region': pd.array(['north', None], dtype='string[pyarrow]'),\n"
        "        'n': pd.array([1, None], dtype='int64[pyarrow]')})\n"
        "    dtypes, back = echo(frame)\n"
        "    assert dtypes == [str(t) for t in frame.dtypes]\n"
        "    pd.testing.assert_frame_equal(back, frame)\n"
        "    assert isinstance(back['at'].dt.tz, zoneinfo.ZoneInfo)\n"
    )
    for outcome in (mutation.run(tests, echo, fixture="echo", function="echo"),
                    mutation.run_here(tests, echo, fixture="echo", function="echo")):
        assert outcome.passed, outcome.log


@pytest.mark.skipif(SANDBOXED[-1] is False, reason="the sandbox cannot run here: as root, a plain process may read any")
def test_as_graded_the_implementation_s_memory_cannot_be_read() -> None:
    """The implementation's process is not dumpable and reads its source itself: the tests' process can open
    no /proc/<pid>/mem of it, and finds the source nowhere in its own memory."""
    variant = mutation.Variant("correct", "def total(xs):\n    marker_of_the_source = 1\n"
                                          "    return sum(x for x in xs if x > 0)\n")
    tests = (
        "import os, re\n"
        "SOURCE = re.compile(rb'marker_of_th[e]_source = 1')   # a pattern that is not the text it finds\n"
        "def test_the_source_is_nowhere_to_read(build):\n"
        "    assert build([1, -2, 3]) == 4\n"
        "    children = [p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())\n"
        "                and open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1] == str(os.getpid())]\n"
        "    assert children, 'the implementation runs in a child process'\n"
        "    for pid in children:\n"
        "        try:\n"
        "            open(f'/proc/{pid}/mem', 'rb').close()\n"
        "        except PermissionError:\n"
        "            continue\n"
        "        raise AssertionError('the implementation process memory can be opened')\n"
        "    with open('/proc/self/mem', 'rb') as mem:\n"
        "        for line in open('/proc/self/maps'):\n"
        "            start, end = (int(x, 16) for x in line.split()[0].split('-'))\n"
        "            if not line.split()[1].startswith('r') or end - start > 1 << 28:\n"
        "                continue\n"
        "            try:\n"
        "                mem.seek(start)\n"
        "                assert not SOURCE.search(mem.read(end - start)), 'the source is in the tests process'\n"
        "            except OSError:\n"
        "                pass\n"
    )
    outcome = mutation.run(tests, variant, fixture="build", function="total", sandboxed=True)
    assert outcome.passed, outcome.log
