"""Errors that tell the learner what is wrong and what to do about it."""

from __future__ import annotations


class CourseError(RuntimeError):
    """A problem with the course set-up: ``problem`` says what is wrong, ``fix`` what to do."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\n  What to do: {fix}")


class JavaError(CourseError):
    """Java is missing or too old for the JVM engines (Kafka, Spark)."""


class JarsMissing(CourseError):
    """The JVM jars have not been fetched from Maven Central yet."""


class PortInUse(CourseError):
    """A port the embedded engine needs is taken by another program."""


class EngineUnreachable(CourseError):
    """An engine (embedded or external) did not answer within its timeout."""


class EngineFailed(CourseError):
    """An embedded engine exited during start-up."""
