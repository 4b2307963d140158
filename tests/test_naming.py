"""Per-learner names on shared engines (coursekit.naming, kafka.name, tracking.name)."""

from __future__ import annotations

import pytest

from coursekit import kafka, naming, tracking


def test_names_are_the_notebook_s_on_private_engines_and_the_learner_s_on_shared_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "ada")
    monkeypatch.delenv(kafka.BOOTSTRAP_ENV, raising=False)
    assert kafka.name("l11.orders") == "l11.orders"
    monkeypatch.setenv(kafka.BOOTSTRAP_ENV, "class-kafka:9092")
    assert kafka.name("l11.orders") == "ada.l11.orders"
    assert kafka.name(kafka.name("l11.orders")) == "ada.l11.orders", "idempotent: names pass through helpers"
    monkeypatch.setenv(naming.LEARNER_ENV, "grace")
    assert kafka.name("l11.orders") == "grace.l11.orders", "COURSEKIT_LEARNER overrides the hub's user"
    monkeypatch.setenv(naming.MODE_ENV, "never")
    assert kafka.name("l11.orders") == "l11.orders"
    monkeypatch.setenv(naming.MODE_ENV, "sometimes")
    with pytest.raises(ValueError, match=r"auto .*always or never"):
        kafka.name("x")


def test_tracking_names_follow_the_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "ada")
    monkeypatch.delenv(tracking.URI_ENV, raising=False)
    assert tracking.name("l19-churn") == "l19-churn"
    monkeypatch.setenv(tracking.URI_ENV, "http://mlflow.class:5000")
    assert tracking.name("l19-churn") == "ada.l19-churn"


@pytest.mark.parametrize(("user", "expected"), [("ada", "ada"), ("Ada.Lovelace@uni.edu", "ada-lovelace-uni-edu-"),
                                                ("ада", "learner-")])
def test_a_learner_name_is_safe_in_every_engine_s_names(monkeypatch: pytest.MonkeyPatch, user: str,
                                                        expected: str) -> None:
    monkeypatch.delenv(naming.LEARNER_ENV, raising=False)
    monkeypatch.setenv("JUPYTERHUB_USER", user)
    name = naming.learner()
    assert name.startswith(expected) and all(c.isascii() and (c.isalnum() or c == "-") for c in name)
    if name != user:
        monkeypatch.setenv("JUPYTERHUB_USER", user.upper() + "x")
        assert naming.learner() != name, "names that differ only in dropped characters stay apart"
