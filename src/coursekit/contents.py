"""The course's generated contents: ``CONTENTS.md``, the README's table of lessons and labs, and the
navigation cell at the end of every lesson (previous, contents, next, and where the lesson's ideas come back).

``coursekit contents`` makes them from ``../shared/SYLLABUS.md`` (lessons, labs, objectives) and the notebooks
that exist; ``tests/test_contents.py`` fails when what is committed differs from what it makes now. So none
of it is edited by hand (STYLE.md, convention 8), and a lesson cannot be added, renamed or removed without
every page that lists it following.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from coursekit import notebooks
from coursekit.errors import CourseError

SYLLABUS = Path("..", "shared", "SYLLABUS.md")  # beside the course directory
WORDS_PER_MINUTE = 200
MINUTES_PER_CODE_CELL = 1
NAV_TAG = "generated:navigation"  # a tag, because `coursekit clean` keeps tags and drops other cell metadata
NAV_ID = "coursekit-navigation"
README_START, README_END = "<!-- contents:start -->", "<!-- contents:end -->"

# The objectives each lab serves (the syllabus's labs table does not say): Lab 1 builds a data product with a
# contract and policies (1) and its tests and quality gates (2); Lab 2 is streaming (3); Lab 3 scores a Kafka
# stream (3) with a feature store and a registered model (5).
LAB_OBJECTIVES: dict[str, tuple[int, ...]] = {"Lab 1": (1, 2), "Lab 2": (3,), "Lab 3": (3, 5)}

# Where each lesson's ideas come back, from the lessons' own text and the syllabus; a target not written yet is
# shown as "to come". Lesson 23, the capstone, is where every part comes back.
COMES_BACK: dict[str, tuple[str, ...]] = {
    "01": ("02", "10", "18", "23"),             # Brightcart's domains, events and models; the platform end to end
    "02": ("03", "04", "05", "Lab 1"),          # domain datasets become products, governed, migrated
    "03": ("04", "08", "09", "Lab 1"),          # contracts: policies over them, contract tests, SLOs
    "04": ("Lab 1",),                           # policy compliance is graded
    "05": ("07", "23"),                         # data diffs on every pull request; migration decisions
    "06": ("07", "08", "09", "Lab 1"),          # the practices that move the DORA metrics
    "07": ("08", "09", "Lab 1"),                # tests under CI; Lab 1 grades tests against planted defects
    "08": ("09", "21", "Lab 1"),                # pandera validation of training data; Lab 1's grader
    "09": ("21", "22", "Lab 1"),                # versioned tables (time travel) and data SLOs
    "10": ("11", "12", "22", "Lab 2"),          # event-time windows and watermarks; streaming into tables
    "11": ("12", "13", "17", "20", "Lab 2", "Lab 3"),  # topics, consumer groups, transactions; the MQTT bridge
    "12": ("Lab 2",),                           # the live metric from streaming aggregates
    "13": ("15", "21", "Lab 2"),                # dead-letter queues; change events driving pipelines
    "14": ("15", "22", "23"),                   # the object stores under functions and tables; the cost model
    "15": ("17", "23"),                         # idempotent handlers of at-least-once events; serverless costs
    "16": ("23",),                              # where batch and Spark jobs run, in the architectures compared
    "17": ("23",),                              # the edge feeding Kafka, in the platform end to end
    "18": ("19", "20", "21", "Lab 3"),          # tracking, registry, aliases
    "19": ("20", "21", "Lab 3"),                # point-in-time features, online store
    "20": ("21", "Lab 3"),                      # scoring a Kafka stream with a registered model
    "21": ("Lab 3", "23"),                      # validated, versioned training data
    "22": ("23",),                              # the lakehouse table of the platform end to end
}

# "What runs": an engine is listed when a code cell imports one of its modules (or a submodule of one).
ENGINES: dict[str, tuple[str, ...]] = {
    "Kafka": ("coursekit.kafka", "confluent_kafka"),
    "Spark": ("coursekit.spark", "pyspark"),
    "MLflow": ("coursekit.tracking", "mlflow"),
    "Feast": ("coursekit.featurestore", "feast"),
    "model server": ("coursekit.serving",),
    "DuckDB": ("coursekit.duck", "coursekit.mesh", "duckdb"),
    "Rego policies": ("coursekit.policy", "regopy"),
    "SQLMesh": ("coursekit.transform", "sqlmesh"),
    "Delta Lake": ("coursekit.lake", "deltalake"),
    "Iceberg": ("coursekit.iceberg", "pyiceberg"),
    "object stores": ("coursekit.objectstore", "s3fs", "gcsfs", "adlfs", "moto"),
    "functions": ("coursekit.functions", "functions_framework"),
    "Kubernetes": ("coursekit.kube", "kubernetes"),
    "MQTT": ("coursekit.mqtt", "paho", "amqtt"),
}

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Part:
    """A lesson (``key`` "09") or a lab (``key`` "Lab 1") of the syllabus, and its notebook if it exists."""

    key: str
    title: str
    objectives: tuple[int, ...]
    path: Path | None  # relative to the course directory
    after: str = ""    # a lab: the lesson it follows

    @property
    def is_lab(self) -> bool:
        return self.key.startswith("Lab")

    @property
    def name(self) -> str:
        return f"{self.key if self.is_lab else 'Lesson ' + self.key} — {self.title}"


@dataclass(frozen=True)
class Course:
    """The syllabus's objectives and its lessons and labs in study order (each lab after its lesson)."""

    root: Path
    objectives: dict[int, str]
    parts: list[Part]

    def part(self, key: str) -> Part:
        return next(p for p in self.parts if p.key == key)

    @property
    def lessons(self) -> list[Part]:
        return [p for p in self.parts if not p.is_lab]


def parse_objectives(text: str) -> tuple[int, ...]:
    """``"1–5"`` → (1, 2, 3, 4, 5); ``"1, 4"`` → (1, 4)."""
    found: list[int] = []
    for piece in re.split(r"\s*,\s*|\s+and\s+", text.strip()):
        low, _, high = piece.replace("-", "–").partition("–")
        found += range(int(low), int(high or low) + 1)
    return tuple(found)


def _objectives_text(numbers: tuple[int, ...]) -> str:
    if len(numbers) >= 3 and list(numbers) == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}–{numbers[-1]}"
    return ", ".join(map(str, numbers))


def _title(path: Path) -> str:
    """The title after the dash of a notebook's first line (``# Lesson 09 — Title``)."""
    first = notebooks.read(path).cells[0].source.splitlines()[0]
    return first.partition(" — ")[2].strip() or first.lstrip("# ").strip()


def load(root: Path, syllabus: Path | None = None) -> Course:
    """Read the syllabus beside ``root`` and find the notebooks that exist."""
    syllabus = syllabus or root / SYLLABUS
    if not syllabus.is_file():
        raise CourseError(f"no syllabus at {syllabus}", "run from the course directory, with ../shared/SYLLABUS.md")
    text = syllabus.read_text()
    goals = text.split("Learning objectives", 1)[1].split("\n\n", 1)[0]
    objectives = {int(n): goal.strip() for n, goal in re.findall(r"^(\d)\. (.+)$", goals, re.MULTILINE)}
    lessons, labs = [], []
    for number, title, objective in re.findall(r"^\| (\d\d) \| (.+?) \| (.+?) \|", text, re.MULTILINE):
        found = sorted(root.glob(f"notebooks/{number}_*.ipynb"))
        path = found[0].relative_to(root) if found else None
        lessons.append(Part(number, _title(root / path) if path else title, parse_objectives(objective), path))
    for number, title, after in re.findall(r"^\| Lab (\d) — (.+?) \| (\d\d) \|", text, re.MULTILINE):
        key = f"Lab {number}"
        found = sorted(root.glob(f"release/lab{number}_*/lab{number}_*.ipynb"))
        path = found[0].relative_to(root) if found else None
        labs.append(Part(key, _title(root / path) if path else title, LAB_OBJECTIVES[key], path, after))
    parts = [q for lesson in lessons for q in (lesson, *(lab for lab in labs if lab.after == lesson.key))]
    return Course(root, objectives, parts)


def _is_generated(cell: NotebookNode) -> bool:
    return NAV_TAG in cell.metadata.get("tags", [])


def minutes(nb: NotebookNode) -> int:
    """Reading and running time: words of prose / 200 wpm + 1 min a code cell, rounded to 5 min.

    Prose leaves out fenced code in markdown, the folded reference solutions and wrong answers
    (``solution:``/``wrong:`` cells, opened only when stuck) and the generated navigation cell.
    """
    words, code = 0, 0
    for cell in nb.cells:
        roles = {tag.partition(":")[0] for tag in cell.metadata.get("tags", [])}
        if cell.cell_type == "code":
            code += 1
        elif cell.cell_type == "markdown" and not roles & {"solution", "wrong"} and not _is_generated(cell):
            words += len(_FENCE.sub(" ", cell.source).split())
    return max(5, 5 * round((words / WORDS_PER_MINUTE + code * MINUTES_PER_CODE_CELL) / 5))


def _imports(source: str) -> set[str]:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def engines(nb: NotebookNode, modules: tuple[str, ...] = ()) -> list[str]:
    """The engines a notebook's code (and the source of the ``modules`` beside it) imports, in the order of
    :data:`ENGINES`."""
    sources = [*(c.source for c in nb.cells if c.cell_type == "code"), *modules]
    imported = set().union(*map(_imports, sources))
    return [name for name, prefixes in ENGINES.items()
            if any(m == p or m.startswith(p + ".") for m in imported for p in prefixes)]


def coverage(course: Course) -> dict[int, tuple[list[Part], list[Part], list[Part]]]:
    """For each objective: the lessons written that serve it, those to come, and the labs that serve it."""
    table = {}
    for number in course.objectives:
        serving = [p for p in course.parts if number in p.objectives]
        lessons = [p for p in serving if not p.is_lab]
        table[number] = ([p for p in lessons if p.path], [p for p in lessons if not p.path],
                         [p for p in serving if p.is_lab])
    return table


def _link(part: Part, where: Path, label: str | None = None) -> str:
    """A markdown link to ``part`` from a file in the folder ``where`` (relative to the course directory)."""
    label = label or part.name
    if part.path is None:
        return f"{label} (to come)"
    return f"[{label}]({Path(os.path.relpath(part.path, where)).as_posix()})"


def _row(part: Part, root: Path) -> str:
    if part.path is None:
        return f"| {part.key} | {part.title} *(to come)* | {_objectives_text(part.objectives)} | — | — |"
    nb = notebooks.read(root / part.path)
    time = f"{minutes(nb)} min" + (" + solving" if part.is_lab else "")
    title = f"[{part.title}]({part.path.as_posix()})"
    beside = tuple(p.read_text() for p in sorted((root / part.path).parent.glob("*.py"))) if part.is_lab else ()
    runs = ", ".join(engines(nb, beside))
    return f"| {part.key} | {title} | {_objectives_text(part.objectives)} | {time} | {runs} |"


def contents_page(course: Course) -> str:
    """The text of ``CONTENTS.md``."""
    written = [p for p in course.lessons if p.path]
    total = sum(minutes(notebooks.read(course.root / p.path)) for p in written if p.path)
    legend = "; ".join(f"{name}: `{'`, `'.join(mods)}`" for name, mods in ENGINES.items())
    lines = [
        "# Contents", "",
        "<!-- generated by `coursekit contents` from ../shared/SYLLABUS.md and the notebooks: do not edit -->", "",
        f"{len(written)} of {len(course.lessons)} lessons written (about {total / 60:.0f} h of study), "
        f"{sum(1 for p in course.parts if p.is_lab and p.path)} labs. Each lab comes after the lesson it follows.",
        "", "| # | lesson or lab | objective | time | what runs |", "|---|---|---|---|---|",
        *(_row(p, course.root) for p in course.parts), "",
        f"**Time** is estimated from the notebook: words of prose / {WORDS_PER_MINUTE} words a minute + "
        f"{MINUTES_PER_CODE_CELL} min a code cell, rounded to 5 min (prose leaves out code blocks, the folded "
        "solutions and wrong answers, and the navigation cell). For a lab it is the reading and running only; "
        "solving the parts takes longer.",
        "", "**What runs** lists the engines whose modules the notebook's code imports (a lab's, also the Python "
        f"modules beside it): {legend}.", "",
        "## Objective coverage", "",
        "Each objective should be served by at least 3 lessons and a lab (only lessons written count).", "",
        "| objective | lessons written | to come | lab | ≥ 3 lessons and a lab |", "|---|---|---|---|---|",
    ]
    for number, (done, to_come, labs) in coverage(course).items():
        short = [f"{len(done)} lesson{'s' if len(done) != 1 else ''} written"] if len(done) < 3 else []
        short += [] if any(lab.path for lab in labs) else ["no lab serves it"]
        verdict = "✓" if not short else "✗ " + "; ".join(short)
        lines.append(f"| {number}. {course.objectives[number]} | {', '.join(p.key for p in done) or '—'} | "
                     f"{', '.join(p.key for p in to_come) or '—'} | {', '.join(p.key for p in labs) or '—'} | "
                     f"{verdict} |")
    return "\n".join(lines) + "\n"


def readme_section(course: Course) -> str:
    """The README's table of lessons and labs (what goes between its contents markers)."""
    rows = [f"| {p.key} | {_link(p, Path(), p.title) if p.path else p.title + ' *(to come)*'} | "
            f"{_objectives_text(p.objectives)} |" for p in course.parts]
    return "\n".join([
        "", "| # | lesson or lab | objective |", "|---|---|---|", *rows, "",
        "Study time, the engines each part runs and how the five objectives are covered: "
        "[CONTENTS.md](CONTENTS.md) (generated by `coursekit contents`, like this table).", ""])


def navigation(course: Course, key: str) -> str:
    """The navigation cell of the lesson ``key``: previous and next lesson written, the lab when one comes
    next, the contents, and where the lesson's ideas come back."""
    here = Path("notebooks")
    lessons = [p for p in course.lessons if p.path]
    index = [p.key for p in lessons].index(key)
    pieces = [f"← {_link(lessons[index - 1], here)}"] if index else []
    pieces.append("[Contents](../CONTENTS.md)")
    following = course.parts[[p.key for p in course.parts].index(key) + 1:]
    lab = following[0] if following and following[0].is_lab else None
    later = lessons[index + 1] if index + 1 < len(lessons) else None
    if lab is not None:
        where = f" in `{lab.path.parent.as_posix()}/`" if lab.path else ""
        pieces.append(f"Next: {_link(lab, here)}{where}" + (f", then {_link(later, here)} →" if later else ""))
    elif later is not None:
        pieces.append(f"{_link(later, here)} →")
    back = [_link(course.part(k), here) for k in COMES_BACK.get(key, ())]
    text = ["---", "", " · ".join(pieces)]
    if back:
        text += ["", "**Where this comes back:** " + " · ".join(back)]
    return "\n".join([*text, "", "<sub>Generated by `coursekit contents`: do not edit this cell.</sub>"])


def with_navigation(nb: NotebookNode, source: str) -> NotebookNode:
    """``nb`` with its navigation cell (the last cell, tagged :data:`NAV_TAG`) set to ``source``."""
    cells = [c for c in nb.cells if not _is_generated(c)]
    cell = nbformat.v4.new_markdown_cell(source, id=NAV_ID)
    cell.metadata["tags"] = [NAV_TAG]
    nb.cells = [*cells, cell]
    return nb


def _replace_between_markers(text: str, section: str) -> str:
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise CourseError(f"README.md lacks the markers {README_START} … {README_END}",
                          "put them, each on its own line, where the table of lessons and labs goes")
    return text[:start + len(README_START)] + "\n" + section + "\n" + text[end:]


def generate(root: Path, syllabus: Path | None = None, *, write: bool = True) -> list[str]:
    """Regenerate CONTENTS.md, the README's section and every lesson's navigation cell; return the files that
    were (with ``write=False``: would be) changed, relative to ``root``."""
    course = load(root, syllabus)
    wanted: dict[str, str] = {"CONTENTS.md": contents_page(course)}
    readme = (root / "README.md").read_text()
    wanted["README.md"] = _replace_between_markers(readme, readme_section(course))
    for lesson in course.lessons:
        if lesson.path:
            nb = with_navigation(notebooks.read(root / lesson.path), navigation(course, lesson.key))
            wanted[lesson.path.as_posix()] = nbformat.writes(nb) + "\n"
    changed = [name for name, text in wanted.items()
               if not (root / name).is_file() or (root / name).read_text() != text]
    if write:
        for name in changed:
            (root / name).write_text(wanted[name])
    return changed
