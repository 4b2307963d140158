"""The native engines (Azurite, the Kubernetes control plane): pinned manifests, the set-up's install, its errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from coursekit import builds
from coursekit.errors import CourseError


def test_every_manifest_is_in_the_package_and_pins_exact_versions() -> None:
    for engine in builds.ENGINES.values():
        for path in engine.manifests:
            assert builds._manifest(path), f"{engine.name}: {path} is empty"
    lock = builds._manifest("azurite/package-lock.json").decode()
    assert '"node_modules/azurite"' in lock and '"version": "3.37.0"' in lock
    kube = builds._manifest("go/kubernetes/go.mod").decode()
    assert "k8s.io/kubernetes v1.37.2" in kube
    # every staging module k8s.io/kubernetes replaces with ./staging/... is pinned to the matching v0.37.2
    assert kube.count(" v0.37.2") >= 30
    for module in ("etcd", "kubernetes", "kwok"):
        assert b"h1:" in builds._manifest(f"go/{module}/go.sum"), f"{module}: go.sum holds no hashes"


def test_a_missing_engine_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(builds.NATIVE_ENV, str(tmp_path))
    assert not builds.is_installed("kubernetes")
    with pytest.raises(builds.NativeMissing) as caught:
        builds.program("kubernetes", "kube-apiserver")
    assert "coursekit fetch-native kubernetes" in caught.value.fix
    with pytest.raises(ValueError, match="has no program"):
        builds.program("kubernetes", "kubelet")
    with pytest.raises(ValueError, match="unknown native engine"):
        builds.engine_dir("minikube")


def test_installing_without_the_tool_names_the_tool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(builds.NATIVE_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # neither npm nor go
    for name, tool in (("azurite", "npm"), ("kubernetes", "go")):
        with pytest.raises(CourseError) as caught:
            builds.install(name)
        assert f"`{tool}` is not on PATH" in caught.value.problem
        assert "install" in caught.value.fix.lower()
    assert not any(tmp_path.iterdir()), "a failed install leaves nothing half-written behind"


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go here: the set-up cannot build it (lesson 16 falls back)")
def test_the_built_control_plane_runs() -> None:
    assert builds.is_installed("kubernetes"), "Go is here, yet the set-up did not build the control plane"
    for program in builds.ENGINES["kubernetes"].programs:
        name = Path(program).name
        flag = "--version" if name in ("etcd", "kwok") else "--version=raw"
        done = subprocess.run([builds.program("kubernetes", name), flag], capture_output=True, text=True,
                              timeout=30, check=False)
        assert done.returncode == 0, f"{name} {flag}: {done.stderr[-500:]}"
        version = done.stdout + done.stderr
        want = {"etcd": "3.7.3", "kwok": "0.8.0"}.get(name, "1.37.2")
        assert want in version, f"{name} reports {version[:200]!r}, not {want}"


@pytest.mark.skipif(shutil.which("npm") is None, reason="no npm here: the set-up cannot install Azurite")
def test_installed_azurite_is_the_pinned_version() -> None:
    assert builds.is_installed("azurite"), "npm is here, yet the set-up did not install Azurite"
    done = subprocess.run([builds.program("azurite", "azurite-blob"), "--version"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0 and "3.37.0" in done.stdout, done.stdout + done.stderr
