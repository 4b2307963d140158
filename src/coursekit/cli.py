"""The ``coursekit`` command: doctor, start, stop, status, fetch-jars, fetch-native, fetch-sandbox, clean, release,
dist, bench, grade-bench, contents."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from coursekit import jars, kafka
from coursekit.config import state_dir
from coursekit.errors import CourseError

ENGINES = ("kafka",)
MIN_FREE_MB = 2048


def _check_python() -> tuple[bool, str, str]:
    ok = sys.version_info >= (3, 11)
    return ok, f"Python {sys.version.split()[0]}", "use Python 3.11 or newer"


def _check_java() -> tuple[bool, str, str]:
    from coursekit.java import java_version, require_java

    try:
        java = require_java()
    except CourseError as exc:
        return False, exc.problem, exc.fix
    return True, f"Java {java_version(java)} at {java}", ""


def _check_maven() -> tuple[bool, str, str]:
    mvn = shutil.which("mvn")
    fetched = all(jars.is_fetched(b) for b in jars.BUNDLES)
    if mvn or fetched:
        return True, mvn or "not installed (jars already fetched)", ""
    return False, "Maven (`mvn`) not found", "install Maven: `sudo apt-get install maven` or `conda install maven`"


def _check_jars(bundle: str) -> Callable[[], tuple[bool, str, str]]:
    def run() -> tuple[bool, str, str]:
        if jars.is_fetched(bundle):
            return True, f"{len(jars.require(bundle))} jars in {jars.jar_dir(bundle)}", ""
        return False, f"not fetched into {jars.jar_dir(bundle)}", (
            "run `coursekit fetch-jars` (once per environment: every user of it shares the jars)")
    return run


def _check_kafka() -> tuple[bool, str, str]:
    external = os.environ.get(kafka.BOOTSTRAP_ENV, "").strip()
    if external:
        try:
            kafka.wait_reachable(external, timeout=5)
        except CourseError as exc:
            return False, exc.problem, exc.fix
        return True, f"external cluster at {external} answers", ""
    running = kafka.status()
    if running is not None:
        return True, f"embedded broker running at {running.bootstrap} (pid {running.pid})", ""
    from coursekit.config import env_int

    if not os.environ.get(kafka.PORT_ENV, "").strip():
        return True, "embedded broker stopped; it will listen on a free port pair (19092 if free)", ""
    port = env_int(kafka.PORT_ENV, kafka.DEFAULT_PORT)
    busy = [p for p in (port, port + 1) if not kafka.port_free(p)]
    if busy:
        return (False, f"port(s) {', '.join(map(str, busy))} taken by another program",
                f"free them, or unset {kafka.PORT_ENV} so that the broker finds a free pair itself")
    return True, f"ports {port} and {port + 1} are free for the embedded broker", ""


def _check_memory() -> tuple[bool, str, str]:
    import psutil

    free = psutil.virtual_memory().available / 2**20
    return (free >= MIN_FREE_MB, f"{free:,.0f} MB available",
            "close other programs: a lesson with Spark and Kafka needs about 1.5 GB")


def _check_sandbox() -> tuple[bool, str, str]:
    from coursekit import sandbox

    if not sandbox.enabled():
        return True, f"{sandbox.MODE_ENV}=off: lab submissions are graded WITHOUT isolation", ""
    reason = sandbox.problem()
    if reason is None:
        return True, f"bubblewrap at {sandbox.bwrap_path()} isolates each graded submission", ""
    return False, "grading cannot isolate submissions", reason


def _check_duckdb() -> tuple[bool, str, str]:
    from coursekit import duck

    try:
        con = duck.connect(None)
        version = con.sql("SELECT version()").fetchone()[0]
        con.close()
    except Exception as exc:  # noqa: BLE001 - any failure to open DuckDB is the finding
        return False, f"DuckDB does not start: {exc}", "run `./course setup` to reinstall the locked packages"
    where = duck.path("orders")
    return True, f"DuckDB {version}; domain databases in {getattr(where, 'parent', where)}", ""


def _check_policy() -> tuple[bool, str, str]:
    from coursekit import policy

    probe = {"probe": "package probe\nimport rego.v1\nallow if input.ok"}
    try:
        allowed = policy.Engine(probe).query("data.probe.allow", {"ok": True})
    except (policy.PolicyError, ConnectionError, ImportError) as exc:
        where = policy.opa_url() or "regopy"
        return False, f"the policy engine ({where}) does not answer: {exc}", (
            f"start OPA (opa run --server) or unset {policy.OPA_ENV}" if policy.opa_url()
            else "run `./course setup` to reinstall the locked packages")
    if allowed is not True:
        return False, f"a probe policy evaluated to {allowed!r}, not true", "report this: the engine is broken"
    return True, f"Rego by OPA at {policy.opa_url()}" if policy.opa_url() else "Rego in-process (regopy)", ""


def _check_state() -> tuple[bool, str, str]:
    path = state_dir()
    ok = os.access(path, os.W_OK)
    return ok, str(path), "set COURSEKIT_HOME to a writable directory"


def _module_check(module: str) -> Callable[[], tuple[bool, str, str]]:
    """The ``check()`` of an engine module (imported only when the check runs: some import slowly)."""
    def run() -> tuple[bool, str, str]:
        import importlib

        return importlib.import_module(f"coursekit.{module}").check()
    return run


# the engine modules with a check of their own, in the doctor's order: (name in the table, module)
MODULE_CHECKS = (("model server", "serving"), ("object stores", "objectstore"), ("functions", "functions"),
                 ("kubernetes", "kube"), ("mqtt", "mqtt"), ("iceberg", "iceberg"))

INSTRUCTOR_CHECKS = ("grading sandbox",)  # what only the instructor's copy needs: it grades the labs


def checks() -> list[tuple[str, Callable[[], tuple[bool, str, str]]]]:
    """The checks of ``coursekit doctor``, in order: ``(name, check)``, each check returning
    ``(ok, what it found, the fix)``. Lesson 01 runs them from its notebook."""
    return [
        ("python", _check_python), ("java", _check_java), ("maven", _check_maven),
        *[(f"jars: {b}", _check_jars(b)) for b in jars.BUNDLES],
        ("kafka", _check_kafka), ("duckdb", _check_duckdb), ("policy", _check_policy),
        ("memory", _check_memory), ("state dir", _check_state),
        *[(name, _module_check(module)) for name, module in MODULE_CHECKS],
        ("grading sandbox", _check_sandbox),
    ]


def doctor() -> int:
    """Print a table of checks with a fix for each failure; return 1 if any failed."""
    rows = []
    failed = 0
    for name, run in checks():
        ok, detail, fix = run()
        failed += not ok
        rows.append((name, "ok" if ok else "FAIL", detail if ok else f"{detail} -> {fix}"))
    width = max(len(r[0]) for r in rows)
    for name, verdict, text in rows:
        print(f"{name:<{width}}  {verdict:<4}  {text}")
    print("all checks passed" if not failed else f"{failed} check(s) failed: apply the fix shown, then run again")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``coursekit`` command."""
    parser = argparse.ArgumentParser(prog="coursekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check Java, jars, ports and memory; print a fix for each failure")
    for verb in ("start", "stop"):
        p = sub.add_parser(verb, help=f"{verb} an embedded engine")
        p.add_argument("engine", choices=ENGINES)
    sub.add_parser("status", help="show the embedded engines and the state directory")
    sub.add_parser("fetch-jars", help="resolve the JVM jars with Maven into the environment (shared by its users)")
    native = sub.add_parser("fetch-native", help="install the engines that are neither Python nor JVM (Azurite with "
                                                 "npm; the Kubernetes control plane and kwok built with Go) into "
                                                 "the environment (shared by its users)")
    native.add_argument("engines", nargs="*", help="only these (default: all); one that fails does not stop the rest")
    sub.add_parser("fetch-sandbox", help="install bubblewrap (bwrap), which grading isolates submissions with, "
                                         "into the environment (Debian/Ubuntu, no root)")
    clean = sub.add_parser("clean", help="strip outputs and execution counts from notebooks")
    clean.add_argument("paths", nargs="*", type=Path)
    clean.add_argument("--check", action="store_true", help="only report notebooks that need cleaning")
    release = sub.add_parser("release", help="regenerate release/ from source/ with nbgrader (never edit release/)")
    release.add_argument("--course", type=Path, default=Path.cwd(), help="course directory (default: here)")
    dist = sub.add_parser("dist", help="build the learners' copy of the course (no solutions, hidden tests or "
                                       "grading state) into a new folder")
    dist.add_argument("into", type=Path)
    dist.add_argument("--course", type=Path, default=Path.cwd(), help="course directory (default: here)")
    bench = sub.add_parser("bench", help="execute notebooks; print wall time and peak memory against the budgets")
    bench.add_argument("paths", nargs="*", type=Path)
    bench.add_argument("--warm", action="store_true", help="keep the Kafka broker running between notebooks")
    bench.add_argument("--idle", action="store_true",
                       help="instead: memory and CPU of an idle learner (their broker started, nothing running)")
    grade = sub.add_parser("grade-bench", help="autograde N synthetic lab submissions; print throughput and memory")
    grade.add_argument("--lab", default="lab2_realtime_orders")
    grade.add_argument("-n", type=int, default=20, help="number of submissions (default 20)")
    grade.add_argument("--workers", type=int, default=2, help="nbgrader processes at once (default 2)")
    contents = sub.add_parser("contents", help="regenerate CONTENTS.md, the README's table of lessons and labs and "
                                               "every lesson's navigation cell (never edit them by hand)")
    contents.add_argument("--course", type=Path, default=Path.cwd(), help="course directory (default: here)")
    contents.add_argument("--check", action="store_true", help="only report what is out of date")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        return doctor()
    if args.command == "start":
        broker = kafka.start()
        print(f"Kafka broker (pid {broker.pid}) logs in {broker.log_dir}")
        print(broker.bootstrap)
        return 0
    if args.command == "stop":
        print("stopped" if kafka.stop() else "kafka was not running")
        return 0
    if args.command == "status":
        running = kafka.status()
        print(f"state dir: {state_dir()}")
        print(f"kafka: running at {running.bootstrap} (pid {running.pid}; controller port {running.controller_port})"
              if running else "kafka: stopped")
        return 0
    if args.command == "fetch-jars":
        for bundle in jars.BUNDLES:
            print(f"{bundle}: {jars.fetch(bundle)}")
        return 0
    if args.command == "fetch-native":
        return _fetch_native(args.engines)
    if args.command == "fetch-sandbox":
        from coursekit import sandbox

        print(f"bubblewrap: {sandbox.install()}")
        reason = sandbox.problem()
        if reason:
            print(f"warning: {reason}", file=sys.stderr)
        return 0
    if args.command == "clean":
        return _clean(args.paths, check=args.check)
    if args.command == "release":
        from coursekit import labs

        course = args.course.resolve()
        config = course / labs.CONFIG if (course / labs.CONFIG).is_file() else Path.cwd() / labs.CONFIG
        changed = labs.release_all(course, config)
        print(f"regenerated: {', '.join(changed)}" if changed else "release/ is up to date")
        return 0
    if args.command == "dist":
        from coursekit import distribution

        files = distribution.build(args.course.resolve(), args.into)
        print(f"{len(files)} files in {args.into}: push it to the repository learners clone and Binder builds from")
        return 0
    if args.command == "bench" and args.idle:
        from coursekit import bench

        figures = bench.idle_learner()
        print(f"idle learner: broker {figures['broker_rss_mb']:.0f} MB resident, {figures['broker_cores']:.3f} cores")
        return 0
    if args.command == "bench":
        return _bench(args.paths, warm=args.warm)
    if args.command == "grade-bench":
        from coursekit import bench, labs

        kafka.bootstrap_servers()  # start the broker first, so it is not counted as a submission's
        root = Path.cwd()
        figures = bench.grade_throughput(root, args.lab, root / labs.CONFIG, args.n, args.workers)
        print(" | ".join(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}" for k, v in figures.items()))
        return 0 if figures["scores_right"] else 1
    if args.command == "contents":
        from coursekit import contents

        stale = contents.generate(args.course.resolve(), write=not args.check)
        verb = "out of date (run `coursekit contents`)" if args.check else "regenerated"
        print(f"{verb}: {', '.join(stale)}" if stale else "the contents are up to date")
        return 1 if (args.check and stale) else 0
    raise AssertionError(args.command)


def _fetch_native(names: list[str]) -> int:
    import time

    from coursekit import builds

    failed = 0
    for name in names or list(builds.ENGINES):
        started = time.monotonic()
        if not builds.is_installed(name):
            print(f"installing {name}: {builds.ENGINES[name].note} ...", file=sys.stderr, flush=True)
        try:
            where = builds.install(name)
        except CourseError as exc:
            failed += 1
            print(f"{name}: not installed: {exc}", file=sys.stderr)
            continue
        print(f"{name}: {where} ({time.monotonic() - started:.0f} s)")
    return 1 if failed else 0


def _clean(paths: list[Path], *, check: bool) -> int:
    from coursekit import notebooks

    targets = [p for path in paths for p in (sorted(path.rglob("*.ipynb")) if path.is_dir() else [path])]
    if not paths:
        targets = list(notebooks.all_notebooks(Path.cwd()))
    dirty = [p for p in targets if notebooks.clean(notebooks.read(p)) != notebooks.read(p)]
    for path in dirty:
        if check:
            print(f"needs cleaning: {path}")
        else:
            notebooks.write_clean(path)
            print(f"cleaned {path}")
    return 1 if (check and dirty) else 0


def _bench(paths: list[Path], *, warm: bool) -> int:
    from coursekit import bench, notebooks

    targets = paths or notebooks.lesson_paths(Path.cwd())
    results = []
    for path in targets:
        print(f"running {path} ...", file=sys.stderr, flush=True)
        results.append(bench.run_one(path.resolve(), warm=warm))
    print(bench.table(results))
    return 0 if all(r.within_budget for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
