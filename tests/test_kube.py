"""The Kubernetes control plane of lesson 16: a real start, a Job run to completion on kwok's nodes, the server's own
validation (strict fields, a CRD's schema), and the errors for missing binaries, busy ports and unreachable
clusters."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from coursekit import builds, kube
from coursekit.errors import EngineUnreachable, PortInUse

INSTALLED, WHY = kube.available()
needs_binaries = pytest.mark.skipif(not INSTALLED, reason=f"the control plane is not installed: {WHY}")

JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "t-export"},
       "spec": {"completions": 3, "parallelism": 2, "completionMode": "Indexed", "backoffLimit": 1,
                "template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "c", "image": "example.invalid/export:1",
                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}


@pytest.fixture(scope="module")
def cluster() -> Iterator[kube.Cluster]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(kube.KUBECONFIG_ENV, raising=False)
        kube.stop()
        started = kube.start()
        yield started
        kube.stop()


@needs_binaries
def test_a_job_runs_to_completion_and_the_server_validates(cluster: kube.Cluster) -> None:
    assert kube.start() is cluster, "start() is idempotent in one kernel"
    assert cluster.ready_after is not None and cluster.running()
    assert {n["metadata"]["name"] for n in kube.items("v1", "Node")} == {s.name for s in kube.NODES}
    ns = kube.namespace("t-kube")
    kube.create(JOB, ns)
    kube.wait_for(lambda: ((kube.get("batch/v1", "Job", "t-export", ns) or {}).get("status") or {})
                  .get("succeeded") == 3, timeout=30, what="three completions")
    pods = kube.items("v1", "Pod", ns, selector="job-name=t-export")
    assert {p["status"]["phase"] for p in pods} == {"Succeeded"}
    assert all(not p["spec"]["nodeName"].startswith("spark-") for p in pods), "the Spark pool is tainted"

    typo = {**JOB, "metadata": {"name": "t-typo"}, "spec": {**JOB["spec"], "ttlSecondsAfterFinish": 5}}
    with pytest.raises(kube.Rejected, match=re.escape('unknown field "spec.ttlSecondsAfterFinish"')) as strict:
        kube.create(typo, ns)
    assert strict.value.status == 400
    always = {**JOB, "metadata": {"name": "t-always"}}
    always["spec"] = {**JOB["spec"], "template": {"spec": {**JOB["spec"]["template"]["spec"],  # type: ignore[dict-item]
                                                            "restartPolicy": "Always"}}}
    assert kube.validate_offline(always) == [], "the schema allows it ..."
    with pytest.raises(kube.Rejected, match="restartPolicy") as rule:
        kube.create(always, ns)
    assert rule.value.status == 422, "... the API server's own rule does not"


@needs_binaries
def test_scheduling_verdicts_and_a_crd(cluster: kube.Cluster) -> None:
    ns = kube.namespace("t-sched")
    big = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
           "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"memory": "32Gi"}}}]}}
    tolerating = {**big, "metadata": {"name": "big-tolerating"},
                  "spec": {**big["spec"], "tolerations": [
                      {"key": "workload", "operator": "Equal", "value": "spark", "effect": "NoSchedule"}]}}
    verdicts = kube.scheduler_verdicts([big, tolerating], ns)
    assert verdicts == {"big": set(), "big-tolerating": {"spark-1", "spark-2"}}
    kube.create(big, ns)
    event = kube.wait_for(lambda: [e for e in kube.events(ns, "big") if e["reason"] == "FailedScheduling"],
                          timeout=15)[-1]
    assert "Insufficient memory" in event["message"] and "untolerated taint" in event["message"]

    assert kube.install_crd() == "installed"
    assert kube.install_crd() == "kept the definition already installed"
    app = {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication", "metadata": {"name": "ok"},
           "spec": {"type": "Scala", "sparkVersion": "4.2.0", "mainApplicationFile": "local:///app.jar",
                    "driver": {"cores": 1, "memory": "2gb"}, "executor": {"instances": 2}}}
    kube.create(app, ns)
    bad = {**app, "metadata": {"name": "bad"}, "spec": {**app["spec"], "type": "PySpark", "executor": {"instances": 0}}}
    with pytest.raises(kube.Rejected, match="Unsupported value") as rejected:
        kube.create(bad, ns)
    assert "spec.executor.instances" in rejected.value.message
    no_file = {**app, "metadata": {"name": "no-file"}, "spec": {k: v for k, v in app["spec"].items()  # type: ignore[attr-defined]
                                                                if k != "mainApplicationFile"}}
    with pytest.raises(kube.Rejected, match="mainApplicationFile"):
        kube.create(no_file, ns)   # required by the operator's CRD since v2.5


def test_missing_binaries_say_so_and_the_offline_check_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(builds.NATIVE_ENV, str(tmp_path / "nothing"))
    monkeypatch.delenv(kube.KUBECONFIG_ENV, raising=False)
    kube.stop()
    ok, why = kube.available()
    assert not ok and "not installed" in why
    with pytest.raises(builds.NativeMissing, match="fetch-native"):
        kube.start()
    ok, found, fix = kube.check()
    assert not ok and "offline" in found and "fetch-native" in fix
    assert kube.validate_offline({**JOB, "spec": {**JOB["spec"], "ttlSecondsAfterFinish": 1}})[0].startswith("spec:")
    capsys.readouterr()
    with pytest.raises(builds.NativeMissing, match="fetch-native"):
        kube.offline_fallback()   # the lesson's fallback: the offline verdicts, then the fix
    shown = capsys.readouterr().out
    assert "not installed" in shown and shown.count("offline schema check: valid") == 4, shown
    assert "unknown field" in shown or "Additional properties" in shown, shown


def test_the_offline_fallback_is_silent_when_a_cluster_can_be_used(capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube, "available", lambda: (True, "a cluster"))
    kube.offline_fallback()
    assert capsys.readouterr().out == ""


@needs_binaries
def test_a_busy_port_names_the_component(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kube.KUBECONFIG_ENV, raising=False)
    kube.stop()
    with socket.socket() as busy:
        busy.bind((kube.HOST, 0))
        busy.listen()
        monkeypatch.setattr(kube, "_free_port", lambda: busy.getsockname()[1])
        with pytest.raises(PortInUse, match="etcd could not listen"):
            kube.start(timeout=20)
    kube.stop()


def test_an_unreachable_cluster_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kube.stop()
    monkeypatch.setenv(kube.KUBECONFIG_ENV, str(tmp_path / "absent"))
    with pytest.raises(EngineUnreachable, match="is not a file"):
        kube.start()
    config = tmp_path / "kubeconfig"
    with socket.socket() as closed:
        closed.bind((kube.HOST, 0))
        port = closed.getsockname()[1]   # bound, never listening: connections are refused
        config.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            f"clusters: [{{name: k, cluster: {{server: 'https://{kube.HOST}:{port}', "
            "insecure-skip-tls-verify: true}}]\n"
            "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n")
        monkeypatch.setenv(kube.KUBECONFIG_ENV, str(config))
        with pytest.raises(EngineUnreachable, match="does not answer"):
            kube.start()
        ok, found, _ = kube.check()
    assert not ok and "does not answer" in found
