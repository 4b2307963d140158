"""Grade a learner's own tests by the defects they catch (mutation testing, Lab 1's way).

A learner writes a pytest file whose tests receive the pipeline under test from a fixture. The
grader runs that file once against a **correct** implementation and once against each
**defective** one (a dropped filter, a wrong join key …), each run a fresh ``pytest`` process:

* the suite earns credit for a defect only if it passes on the correct implementation (exit
  status 0) and fails on the defective one (exit status 1: tests ran and failed);
* the implementations are the grader's own, never the learner's, and look the same from inside a
  test: one module compiled from a source the test cannot read (the file is deleted before the
  learner's file is imported), the same function name, no source for ``inspect`` to find. Only
  their behaviour differs, so only tests of behaviour can tell them apart;
* when grading, each run is in the grading sandbox (:mod:`coursekit.sandbox`): no network, nothing
  of the machine but the Python environment and its own folder, a time limit.

::

    from coursekit import mutation
    outcomes = mutation.judge(tests_source, correct, defects, fixture="build", function="build_orders_daily")
    outcomes["wrong_join_key"].caught      # True when the suite passed on correct and failed here
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from coursekit import sandbox

VARIANT_ENV = "COURSEKIT_VARIANT_FILE"
TEST_FILE = "test_learner.py"
_CONFTEST = '''"""Written by coursekit.mutation: the implementation under test, as a fixture."""
import os
import types

import pytest

_path = os.environ.pop({env!r})
with open(_path, encoding="utf-8") as _file:
    _code = compile(_file.read(), "<pipeline>", "exec")
os.unlink(_path)
_module = types.ModuleType("pipeline")
exec(_code, _module.__dict__)
del _code, _file, _path


@pytest.fixture
def {fixture}():
    """The implementation under test: the module (function=None) or one of its functions."""
    return {returned}
'''

# As graded: the implementation runs in a child process forked before this one ever compiles it, and the
# tests get a stand-in that sends each call's arguments there and its result (or exception) back, pickled.
# So a test can only call it: its source, constants and globals are in no object of the tests' process.
# The child unpickles only data (pandas, numpy, datetime, builtin types), never a function to run.
_ISOLATED = '''"""Written by coursekit.mutation: the implementation under test, run in a process of its own."""
import io
import os
import pickle
import struct

import pytest

# exactly what pandas, numpy, datetime, decimal and the time-zone libraries' own pickles name (module, name):
# a reconstructor or a class of data, nothing that runs code (numpy.testing's runstring, say, would)
_ALLOWED = frozenset(tuple(pair.split()) for pair in (
    "collections Counter",
    "collections OrderedDict",
    "collections defaultdict",
    "copyreg _reconstructor",
    "datetime date",
    "datetime datetime",
    "datetime time",
    "datetime timedelta",
    "datetime timezone",
    "dateutil.relativedelta relativedelta",
    "dateutil.tz.tz _ttinfo",
    "dateutil.tz.tz tzfile",
    "decimal Decimal",
    "numpy dtype",
    "numpy ndarray",
    "numpy._core.multiarray _reconstruct",
    "numpy._core.multiarray scalar",
    "pandas array",
    "pandas._libs.arrays __pyx_unpickle_NDArrayBacked",
    "pandas._libs.internals _unpickle_block",
    "pandas._libs.interval Interval",
    "pandas._libs.interval __pyx_unpickle_IntervalMixin",
    "pandas._libs.missing NA",
    "pandas._libs.tslibs.nattype __nat_unpickle",
    "pandas._libs.tslibs.period Period",
    "pandas._libs.tslibs.timedeltas _timedelta_unpickle",
    "pandas._libs.tslibs.timestamps _unpickle_timestamp",
    "pandas.core.arrays.boolean BooleanArray",
    "pandas.core.arrays.boolean BooleanDtype",
    "pandas.core.arrays.categorical Categorical",
    "pandas.core.arrays.datetimes DatetimeArray",
    "pandas.core.arrays.floating Float64Dtype",
    "pandas.core.arrays.floating FloatingArray",
    "pandas.core.arrays.integer Int64Dtype",
    "pandas.core.arrays.integer IntegerArray",
    "pandas.core.arrays.interval IntervalArray",
    "pandas.core.arrays.period PeriodArray",
    "pandas.core.arrays.string_ StringArray",
    "pandas.core.arrays.string_ StringDtype",
    "pandas.core.arrays.timedeltas TimedeltaArray",
    "pandas.core.construction array",
    "pandas.core.dtypes.dtypes CategoricalDtype",
    "pandas.core.dtypes.dtypes DatetimeTZDtype",
    "pandas.core.dtypes.dtypes IntervalDtype",
    "pandas.core.dtypes.dtypes PeriodDtype",
    "pandas.core.frame DataFrame",
    "pandas.core.indexes.base Index",
    "pandas.core.indexes.base _new_Index",
    "pandas.core.indexes.category CategoricalIndex",
    "pandas.core.indexes.datetimes DatetimeIndex",
    "pandas.core.indexes.datetimes _new_DatetimeIndex",
    "pandas.core.indexes.multi MultiIndex",
    "pandas.core.indexes.range RangeIndex",
    "pandas.core.internals.managers BlockManager",
    "pandas.core.internals.managers SingleBlockManager",
    "pandas.core.series Series",
    "pytz _UTC",
    "pytz _p",
    "zoneinfo ZoneInfo",
))
_BUILTINS = {{"set", "frozenset", "list", "dict", "tuple", "slice", "range", "complex", "bytes", "bytearray", "int",
             "float", "str", "bool", "object"}}


class _DataOnly(pickle.Unpickler):
    def find_class(self, module, name):
        data = (name in _BUILTINS if module == "builtins" else
                (module, name) in _ALLOWED
                or module == "pandas._libs.tslibs.offsets" and name[:1].isupper() and name.isidentifier())
        if not data:
            raise pickle.UnpicklingError(f"only data can be passed to the implementation, not {{module}}.{{name}}")
        return super().find_class(module, name)


class _AsData(pickle.Pickler):
    """Pickles a call's arguments as the child's _DataOnly accepts them: a time zone by its name (ZoneInfo's
    own pickle calls a method), an Arrow-backed pandas array by its values and dtype (its own pickle needs
    pyarrow's functions), so that a test's data reaches the implementation as a direct call would pass it."""

    def reducer_override(self, obj):
        import sys

        zoneinfo, pandas = sys.modules.get("zoneinfo"), sys.modules.get("pandas")
        if zoneinfo is not None and isinstance(obj, zoneinfo.ZoneInfo) and obj.key is not None:
            return zoneinfo.ZoneInfo, (obj.key,)
        if pandas is not None and isinstance(obj, pandas.arrays.ArrowExtensionArray):
            dtype = obj.dtype if isinstance(obj.dtype, pandas.StringDtype) else str(obj.dtype)
            return pandas.array, (list(obj), dtype)
        return NotImplemented


def _write(stream, value, pickler=pickle.Pickler):
    buffer = io.BytesIO()
    pickler(buffer).dump(value)
    data = buffer.getvalue()
    stream.write(struct.pack("!Q", len(data)) + data)
    stream.flush()


def _read(stream, loads):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    return loads(stream.read(struct.unpack("!Q", head)[0]))


_path = os.environ.pop({env!r})
_ready_r, _ready_w = os.pipe()
_calls_r, _calls_w = os.pipe()
_results_r, _results_w = os.pipe()
if os.fork() == 0:   # the child: the implementation, answering calls until the tests' process ends
    import ctypes
    import types

    # PR_SET_DUMPABLE 0 first: no other process of this user may read its memory (/proc/<pid>/mem, ptrace)
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
    os.close(_calls_w)
    os.close(_results_r)
    os.close(_ready_r)
    try:  # the source is read here only, and deleted before the tests' process goes on
        with open(_path, encoding="utf-8") as _file:
            _source = _file.read()
        os.unlink(_path)
    except OSError:
        os._exit(1)
    os.write(_ready_w, b"1")
    os.close(_ready_w)
    _module = types.ModuleType("pipeline")
    exec(compile(_source, "<pipeline>", "exec"), _module.__dict__)
    del _source
    # what a test may call: the module's public functions, nothing else of it (not its attributes or dunders)
    _public = {{n for n, v in vars(_module).items() if not n.startswith("_") and callable(v)}}
    _calls, _results = os.fdopen(_calls_r, "rb"), os.fdopen(_results_w, "wb")
    while True:
        try:
            _name, _args, _kwargs = _read(_calls, lambda b: _DataOnly(io.BytesIO(b)).load())
        except EOFError:
            os._exit(0)
        except Exception as exc:  # noqa: BLE001
            _write(_results, (False, TypeError(str(exc))))
            continue
        if not isinstance(_name, str) or _name not in _public:
            _write(_results, (False, AttributeError(f"the implementation has no function {{_name!r}}")))
            continue
        try:
            _answer = (True, getattr(_module, _name)(*_args, **_kwargs))
        except Exception as exc:  # noqa: BLE001 - the test sees it, as a direct call would raise it
            _answer = (False, exc)
        try:
            _write(_results, _answer)
        except Exception as exc:  # noqa: BLE001
            _write(_results, (False, TypeError(f"the result cannot be passed back to the test: {{exc}}")))
os.close(_ready_w)
os.close(_calls_r)
os.close(_results_w)
if os.read(_ready_r, 1) != b"1":
    raise RuntimeError("the implementation under test could not be loaded")
os.close(_ready_r)
_calls, _results = os.fdopen(_calls_w, "wb"), os.fdopen(_results_r, "rb")


def _caller(name):
    def call(*args, **kwargs):
        _write(_calls, (name, args, kwargs), _AsData)
        try:
            ok, value = _read(_results, pickle.loads)
        except EOFError:
            raise RuntimeError("the implementation under test stopped") from None
        if ok:
            return value
        raise value
    call.__name__ = call.__qualname__ = name
    return call


class _Module:
    """The implementation as a module whose functions can only be called."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _caller(name)


@pytest.fixture
def {fixture}():
    """The implementation under test: the module (function=None) or one of its functions."""
    return {returned}
'''


def _conftest(fixture: str, function: str | None, *, isolated: bool = False) -> str:
    if isolated:
        returned = "_Module()" if function is None else f"_caller({function!r})"
        return _ISOLATED.format(env=VARIANT_ENV, fixture=fixture, returned=returned)
    returned = "_module" if function is None else f"_module.__dict__[{function!r}]"
    return _CONFTEST.format(env=VARIANT_ENV, fixture=fixture, returned=returned)


@dataclass(frozen=True)
class Variant:
    """One implementation: ``source`` is a module that defines the function under test."""

    name: str
    source: str
    description: str = ""


@dataclass(frozen=True)
class Outcome:
    """What one run of the learner's suite against one variant gave."""

    variant: str
    returncode: int | None  # None: stopped at the time limit
    log: str

    @property
    def passed(self) -> bool:
        """Every test ran and passed (pytest's exit status 0)."""
        return self.returncode == 0

    @property
    def failed(self) -> bool:
        """Tests ran and at least one failed (exit status 1); a crash or no tests is not a failure here."""
        return self.returncode == 1

    def reason(self) -> str:
        """One line saying what happened, for feedback."""
        if self.returncode is None:
            return "stopped at the time limit"
        meaning = {0: "all tests passed", 1: "tests failed", 2: "interrupted or a collection error",
                   3: "pytest's internal error", 4: "pytest usage error", 5: "no tests were collected"}
        tail = [line for line in self.log.strip().splitlines() if line.strip()][-1:] or [""]
        return f"{meaning.get(self.returncode, f'exit status {self.returncode}')} ({tail[0][:200]})"


@dataclass(frozen=True)
class Judgement:
    """A defect's verdict: caught only if the suite passed on the correct implementation."""

    defect: str
    caught: bool
    why: str


def run(tests: str, variant: Variant, *, fixture: str, function: str | None, timeout: float = 60.0,
        sandboxed: bool | None = None, hide: Sequence[Path] = (), env: Mapping[str, str] | None = None) -> Outcome:
    """Run the pytest file ``tests`` against ``variant`` in a fresh process; return the outcome.

    The tests receive fixture ``fixture``: the variant's function ``function``, or its whole module
    when ``function`` is None (a pipeline of several functions).

    ``sandboxed``: ``None`` uses the grading sandbox when it is enabled and available here. ``hide``:
    folders the sandbox must not show (the course directory).
    """
    folder = Path(tempfile.mkdtemp(prefix="coursekit-mutant-"))
    try:
        (folder / TEST_FILE).write_text(tests, encoding="utf-8")
        (folder / "conftest.py").write_text(_conftest(fixture, function, isolated=True), encoding="utf-8")
        (folder / "pytest.ini").write_text("[pytest]\naddopts =\n", encoding="utf-8")  # the folder is the rootdir
        variant_file = folder / ".variant.py"
        variant_file.write_text(variant.source, encoding="utf-8")
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", "-o",
                "console_output_style=classic", TEST_FILE]
        code, out = sandbox.run(argv, workdir=folder, timeout=timeout, env=env,
                                set_env={VARIANT_ENV: str(variant_file)}, hide=list(hide), sandboxed=sandboxed)
        return Outcome(variant.name, code, out[-20_000:])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_here(target: Path, root: Path, *, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                plugins: Sequence[object] = ()) -> tuple[int, str]:
    """Run pytest on ``target`` in this process, ``root`` its rootdir (no conftest.py above it is loaded),
    with ``env`` set for the run and restored after; the modules imported from ``target``'s folder (test
    modules, conftest.py) are forgotten before and after (a later run's files share their names).
    Returns pytest's exit code and output."""
    import pytest

    tests = target if target.is_dir() else target.parent

    def forget() -> None:
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(str(tests) + os.sep):
                del sys.modules[name]

    before = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})
    forget()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            # no:unraisableexception: that plugin runs a full garbage collection after each session (a second in
            # a kernel holding many objects); -c os.devnull: no ini file of the folders above is read
            code = pytest.main([str(target), "-q", "-p", "no:cacheprovider", "--color=no", "-p", "no:faulthandler",
                                "-p", "no:unraisableexception", "--disable-plugin-autoload", "-c", os.devnull,
                                "--rootdir", str(root), "--confcutdir", str(root), *args], plugins=list(plugins))
    finally:
        forget()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return int(code), out.getvalue()


def run_here(tests: str, variant: Variant, *, fixture: str, function: str | None) -> Outcome:
    """As :func:`run`, but with ``pytest.main`` in this process: quick (nothing is imported again), for
    a learner's own kernel, where there is nothing to isolate the tests from. No time limit."""
    folder = Path(tempfile.mkdtemp(prefix="coursekit-mutant-"))
    try:
        (folder / TEST_FILE).write_text(tests, encoding="utf-8")
        (folder / "conftest.py").write_text(_conftest(fixture, function), encoding="utf-8")
        variant_file = folder / ".variant.py"
        variant_file.write_text(variant.source, encoding="utf-8")
        with contextlib.chdir(folder):  # as graded: in a folder of its own, not beside the notebook
            code, log = pytest_here(folder / TEST_FILE, folder,
                                    args=["--tb=short", "-o", "console_output_style=classic"],
                                    env={VARIANT_ENV: str(variant_file)})
        return Outcome(variant.name, code, log[-20_000:])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def judge(tests: str, correct: Variant, defects: Sequence[Variant], *, fixture: str, function: str | None,
          timeout: float = 60.0, sandboxed: bool | None = None, hide: Sequence[Path] = (),
          workers: int = 2, here: bool = False) -> tuple[Outcome, dict[str, Judgement]]:
    """Run ``tests`` against ``correct``, then (if it passed) every defect, ``workers`` at a time; judge each.

    ``here``: in this process (:func:`run_here`), one after the other: for a learner checking their
    own tests. A grader leaves it False: each run is then a fresh, sandboxed process.
    """
    def one(variant: Variant) -> Outcome:
        if here:
            return run_here(tests, variant, fixture=fixture, function=function)
        return run(tests, variant, fixture=fixture, function=function, timeout=timeout, sandboxed=sandboxed,
                   hide=hide)

    on_correct = one(correct)
    if not on_correct.passed:  # nothing can be caught: the defects need not run
        why = f"the tests do not pass on a correct pipeline: {on_correct.reason()}"
        return on_correct, {d.name: Judgement(d.name, False, why) for d in defects}
    if here or workers <= 1:
        on_defects = [one(d) for d in defects]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            on_defects = list(pool.map(one, defects))
    verdicts: dict[str, Judgement] = {}
    for defect, outcome in zip(defects, on_defects, strict=True):
        if outcome.failed:
            verdicts[defect.name] = Judgement(defect.name, True, "caught: a test failed")
        else:
            verdicts[defect.name] = Judgement(defect.name, False, f"not caught: {outcome.reason()}")
    return on_correct, verdicts
