"""Kubernetes for the course: a real control plane on loopback with simulated nodes, or your own cluster.

::

    from coursekit import kube
    cluster = kube.start()                     # etcd + kube-apiserver + controller-manager + scheduler + kwok
    api = kube.client()                        # a kubernetes.client.ApiClient for the typed APIs
    kube.create(job_manifest, "l16-batch")     # POST with fieldValidation=Strict: the *server* validates
    kube.stop()

=============================================================  ===========================================
embedded default (this module starts it)                       switch to your own
=============================================================  ===========================================
etcd 3.7, kube-apiserver, kube-controller-manager and          ``COURSEKIT_KUBECONFIG=/path/to/kubeconfig``
kube-scheduler v1.37 on free 127.0.0.1 ports, and kwok 0.8     (its current context). :func:`start` then
managing a few fake nodes (:data:`NODES`) whose kubelets it    only checks that the cluster answers, creates
simulates: pods are scheduled, "start" and "complete", but no  no nodes and nothing cluster-wide: only
container runs, no image is pulled and pods have no logs.      namespaced objects in namespaces it is allowed
                                                               to use.
=============================================================  ===========================================

The binaries are compiled at set-up from Go modules pinned in ``coursekit/native/go`` (:mod:`coursekit.builds`);
without them (no Go at set-up) :func:`start` raises :class:`~coursekit.builds.NativeMissing`, :func:`available`
says why, and :func:`validate_offline` checks the same manifests against the published 1.37 schemas with
``kubernetes-validate``: schema checks only, no API server's own rules, no scheduling.

The control plane belongs to the kernel that started it: each component runs in a process group of its own that
gets SIGTERM when that kernel dies (Linux), its state (certificates, tokens, etcd's data, logs) is in
``<state>/kube/<pid>-<id>/`` and removed by :func:`stop`. etcd runs without fsync and with a 256 MB quota: a
throwaway store, not a durable one. Every client authenticates with a static bearer token (``--token-auth-file``),
the scheduler and the controller-manager as their own users, authorised by RBAC's bootstrap roles.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from coursekit import builds, naming
from coursekit.config import engine_dir
from coursekit.errors import CourseError, EngineFailed, EngineUnreachable, PortInUse
from coursekit.processes import free_port as _free_port
from coursekit.processes import log_tail as tail
from coursekit.processes import tied_to_this_process

if TYPE_CHECKING:
    import kubernetes.client

KUBECONFIG_ENV = "COURSEKIT_KUBECONFIG"
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 10.0
STOP_GRACE = 5.0
KUBERNETES_VERSION = "1.37"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# the controllers a data platform's batch workloads need; the others (endpoints, volumes, certificates, …)
# are off to keep the control plane small
CONTROLLERS = tuple(f"{name}-controller" for name in (
    "job", "cronjob", "ttl-after-finished", "garbage-collector", "namespace", "serviceaccount", "replicaset",
    "deployment", "pod-garbage-collector", "node-lifecycle", "taint-eviction"))
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


class Rejected(CourseError):
    """The API server refused a request: ``status`` (HTTP), ``reason`` and the server's ``message``."""

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}
        super().__init__(f"the API server rejected the request ({status} {reason}): {message}",
                         "read the server's message: it names the field and the rule")


@dataclass(frozen=True)
class NodeSpec:
    """A fake node: its name, capacity, labels and taints (``key=value:Effect``)."""

    name: str
    cpu: str
    memory: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[str, ...] = ()
    pods: int = 110


#: Brightcart's cluster: two general-purpose nodes and a tainted pool of two big nodes for Spark
NODES: tuple[NodeSpec, ...] = (
    NodeSpec("general-1", "4", "16Gi", {"pool": "general", "topology.kubernetes.io/zone": "eu-west-1a"}),
    NodeSpec("general-2", "4", "16Gi", {"pool": "general", "topology.kubernetes.io/zone": "eu-west-1b"}),
    NodeSpec("spark-1", "16", "64Gi", {"pool": "spark", "workload": "spark",
                                       "topology.kubernetes.io/zone": "eu-west-1a"}, ("workload=spark:NoSchedule",)),
    NodeSpec("spark-2", "16", "64Gi", {"pool": "spark", "workload": "spark",
                                       "topology.kubernetes.io/zone": "eu-west-1b"}, ("workload=spark:NoSchedule",)),
)

# kwok's stages (kwok v0.8.0, kustomize/stage/{node/fast,node/heartbeat-with-lease,pod/fast}): what a kubelet
# would report, written into the objects' status. Copied as they are, with their names.
STAGES = r"""
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $lastTransitionTime | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type  | Quote}}
      {{ end }}
      addresses:
      {{ with NodeIP }}
      - address: {{ . | Quote }}
        type: InternalIP
      {{ end }}
      {{ with NodeName }}
      - address: {{ . | Quote }}
        type: Hostname
      {{ end }}
      allocatable:
      {{ with .status.allocatable }}
      {{ YAML . 1 }}
      {{ else }}
        cpu: 1k
        memory: 1Ti
        pods: 1M
      {{ end }}
      capacity:
      {{ with .status.capacity }}
      {{ YAML . 1 }}
      {{ else }}
        cpu: 1k
        memory: 1Ti
        pods: 1M
      {{ end }}
      {{ $nodeInfo := .status.nodeInfo }}
      {{ $kwokVersion := printf "kwok-%s" Version }}
      nodeInfo:
        architecture: {{ or $nodeInfo.architecture "amd64" }}
        bootID: {{ or $nodeInfo.bootID `""` }}
        containerRuntimeVersion: {{ or $nodeInfo.containerRuntimeVersion $kwokVersion }}
        kernelVersion: {{ or $nodeInfo.kernelVersion $kwokVersion }}
        kubeProxyVersion: {{ or $nodeInfo.kubeProxyVersion $kwokVersion }}
        kubeletVersion: {{ or $nodeInfo.kubeletVersion $kwokVersion }}
        machineID: {{ or $nodeInfo.machineID `""` }}
        operatingSystem: {{ or $nodeInfo.operatingSystem "linux" }}
        osImage: {{ or $nodeInfo.osImage `""` }}
        systemUUID: {{ or $nodeInfo.systemUUID `""` }}
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-heartbeat-with-lease
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'In'
      values:
      - 'True'
  delay:
    durationMilliseconds: 600000
    jitterDurationMilliseconds: 610000
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $lastTransitionTime | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      {{ range .spec.readinessGates }}
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: {{ .conditionType | Quote }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      @PODIPS@
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-complete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.metadata.ownerReferences.[].kind'
      operator: 'In'
      values:
      - 'Job'
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $root := . }}
      containerStatuses:
      {{ range $index, $item := .spec.containers }}
      {{ $origin := index $root.status.containerStatuses $index }}
      - image: {{ $item.image | Quote }}
        name: {{ $item.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Succeeded
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    delete: true
"""

STAGES = STAGES.replace("@PODIPS@", '{{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) '
                        '( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}')



@dataclass
class Cluster:
    """A control plane this module started (``processes`` set) or a real cluster (``external``)."""

    server: str
    kubeconfig: Path
    namespace: str  #: the namespace of the kubeconfig's context (``default`` here)
    external: bool
    home: Path | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    logs: dict[str, Path] = field(default_factory=dict, repr=False)
    ready_after: float | None = None  #: seconds from :func:`start` until the nodes were Ready
    nodes: tuple[NodeSpec, ...] = ()
    _client: Any = field(default=None, repr=False)

    def running(self) -> bool:
        """True while every component is alive (always True for a real cluster)."""
        return all(p.poll() is None for p in self.processes.values())

    def pids(self) -> dict[str, int]:
        """The process id of each component (for measuring the control plane's memory)."""
        return {name: p.pid for name, p in self.processes.items()}


_cluster: Cluster | None = None


def external_kubeconfig() -> Path | None:
    """The kubeconfig named by ``$COURSEKIT_KUBECONFIG``, or ``None`` (start the embedded control plane)."""
    raw = os.environ.get(KUBECONFIG_ENV, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise EngineUnreachable(f"{KUBECONFIG_ENV}={raw!r} is not a file",
                                "point it at a kubeconfig (e.g. ~/.kube/config), or unset it to start the "
                                "course's control plane")
    return path


def available() -> tuple[bool, str]:
    """``(True, where)`` when a cluster can be used here, else ``(False, why)``: the lesson's fallback test."""
    try:
        path = external_kubeconfig()
    except EngineUnreachable as exc:
        return False, exc.problem
    if path is not None:
        return True, f"your cluster ({KUBECONFIG_ENV}={path})"
    try:
        for name in COMPONENTS:
            builds.program("kubernetes", name)
    except builds.NativeMissing as exc:
        return False, exc.problem
    return True, f"the course's control plane ({builds.engine_dir('kubernetes')}/bin)"


def _program(name: str) -> Path:
    path = builds.program("kubernetes", name)
    if not os.access(path, os.X_OK):
        raise builds.NativeMissing(f"{name} is missing from {path.parent} (or is not executable)",
                                   "run `coursekit fetch-native kubernetes` again")
    return path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _write_pki(home: Path) -> None:
    """A CA, the API server's serving certificate (127.0.0.1, localhost) and the service-account signing key."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coursekit-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default.svc"),
                x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (home / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (home / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (home / "apiserver.key").write_bytes(pem_key(key))
    (home / "sa.key").write_bytes(pem_key(ec.generate_private_key(ec.SECP256R1())))
    for name in ("apiserver.key", "sa.key"):
        (home / name).chmod(0o600)


_USERS = {  # kubeconfig name -> (user, groups): each component as the user RBAC's bootstrap roles expect
    "admin": ("coursekit-admin", "system:masters"),
    "scheduler": ("system:kube-scheduler", ""),
    "controller-manager": ("system:kube-controller-manager", ""),
    "kwok": ("kwok", "system:masters"),  # it plays every kubelet: it writes node and pod status
}


def _write_kubeconfigs(home: Path, server: str) -> dict[str, Path]:
    tokens = {name: secrets.token_urlsafe(24) for name in _USERS}
    lines = [f'{tokens[name]},{user},{user},"{groups}"' if groups else f"{tokens[name]},{user},{user}"
             for name, (user, groups) in _USERS.items()]
    (home / "tokens.csv").write_text("\n".join(lines) + "\n")
    (home / "tokens.csv").chmod(0o600)
    paths = {}
    for name in _USERS:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "coursekit", "preferences": {},
            "clusters": [{"name": "coursekit", "cluster": {"server": server,
                                                           "certificate-authority": str(home / "ca.crt")}}],
            "users": [{"name": name, "user": {"token": tokens[name]}}],
            "contexts": [{"name": "coursekit", "context": {"cluster": "coursekit", "user": name,
                                                          "namespace": "default"}}],
        }
        paths[name] = home / f"{name}.kubeconfig"
        paths[name].write_text(json.dumps(config, indent=1))  # JSON is YAML: every kubeconfig reader takes it
        paths[name].chmod(0o600)
    return paths


def _commands(home: Path, etcd_port: int, peer_port: int, api_port: int,
              configs: dict[str, Path]) -> dict[str, list[str]]:
    etcd = f"http://{HOST}:{etcd_port}"
    return {
        "etcd": [str(_program("etcd")), "--name", "coursekit", "--data-dir", str(home / "etcd"),
                 "--listen-client-urls", etcd, "--advertise-client-urls", etcd,
                 "--listen-peer-urls", f"http://{HOST}:{peer_port}",
                 "--initial-advertise-peer-urls", f"http://{HOST}:{peer_port}",
                 "--initial-cluster", f"coursekit=http://{HOST}:{peer_port}",
                 "--quota-backend-bytes", str(256 * 1024 * 1024), "--unsafe-no-fsync", "--log-level", "warn"],
        "kube-apiserver": [
            str(_program("kube-apiserver")), "--etcd-servers", etcd,
            "--bind-address", HOST, "--advertise-address", HOST, "--secure-port", str(api_port),
            "--endpoint-reconciler-type", "none",  # a loopback advertise address cannot be a Service endpoint
            "--tls-cert-file", str(home / "apiserver.crt"), "--tls-private-key-file", str(home / "apiserver.key"),
            "--client-ca-file", str(home / "ca.crt"),
            "--token-auth-file", str(home / "tokens.csv"), "--authorization-mode", "RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", str(home / "sa.key"),
            "--service-account-signing-key-file", str(home / "sa.key"),
            "--service-cluster-ip-range", "10.96.0.0/16", "--allow-privileged=false",
            "--watch-cache=false", "--profiling=false", "--enable-priority-and-fairness=false",
            "--storage-media-type", "application/vnd.kubernetes.protobuf", "-v", "0"],
        "kube-controller-manager": [
            str(_program("kube-controller-manager")), "--kubeconfig", str(configs["controller-manager"]),
            "--leader-elect=false", "--secure-port", "0", "--controllers", ",".join(CONTROLLERS),
            "--use-service-account-credentials", "--root-ca-file", str(home / "ca.crt"),
            "--kube-api-qps", "100", "--kube-api-burst", "200",
            "--concurrent-job-syncs", "5", "--profiling=false", "-v", "0"],
        "kube-scheduler": [
            str(_program("kube-scheduler")), "--kubeconfig", str(configs["scheduler"]),
            "--leader-elect=false", "--secure-port", "0", "--profiling=false", "-v", "0"],
        "kwok": [
            str(_program("kwok")), "--kubeconfig", str(configs["kwok"]), "--config", str(home / "stages.yaml"),
            "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            "--node-lease-duration-seconds", "40", "--cidr", "10.244.0.0/16", "--node-ip", "10.0.0.1",
            "--server-address", f"{HOST}:{_free_port()}", "-v", "WARN"],
    }


def _launch(name: str, command: list[str], home: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = home / f"{name}.log"
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)  # never a learner's own cluster by accident
    with log.open("wb") as sink:
        process = subprocess.Popen(tied_to_this_process(command, "the control plane"),
                                   stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                   cwd=home, start_new_session=True)
    return process, log


def _failed(cluster: Cluster, name: str) -> CourseError:
    end = tail(cluster.logs.get(name))
    if "address already in use" in end.lower() or "bind:" in end.lower():
        return PortInUse(f"{name} could not listen: another program took its port on {HOST} while it started. "
                         f"Last lines of its log:\n{end}", "run kube.start() again: new free ports are picked")
    code = cluster.processes[name].returncode
    return EngineFailed(f"{name} exited with code {code} while the control plane started. Last lines of its "
                        f"log ({cluster.logs.get(name)}):\n{end}",
                        "read the log; `coursekit doctor` checks the binaries; if memory is short, close other "
                        "notebooks (`coursekit status`) and start it again")


_T = TypeVar("_T")


def _wait(cluster: Cluster, what: str, component: str, probe: Callable[[], _T | None], deadline: float) -> _T:
    while True:
        for name, process in cluster.processes.items():
            if process.poll() is not None:
                _stop_processes(cluster)
                raise _failed(cluster, name)
        with contextlib.suppress(Exception):  # any error of a probe means "not yet"
            value = probe()
            if value is not None and value is not False:
                return value
        if time.monotonic() >= deadline:
            logs = tail(cluster.logs.get(component))
            _stop_processes(cluster)
            raise EngineUnreachable(f"the control plane was not ready in time: {what} (waited for "
                                    f"{component}). Last lines of its log:\n{logs}",
                                    "the machine may be short of memory or CPU: close other notebooks "
                                    "(`coursekit status`), then run kube.start() again")
        time.sleep(0.1)


def start(nodes: Iterable[NodeSpec] = NODES, *, timeout: float = START_TIMEOUT) -> Cluster:
    """The cluster for this kernel: started once (idempotent), or the real one ``$COURSEKIT_KUBECONFIG`` names.

    The embedded control plane is ready when ``/readyz`` answers ``ok``, the controller-manager has created the
    ``default`` service account and every fake node in ``nodes`` is ``Ready``. Raises
    :class:`~coursekit.builds.NativeMissing` without the binaries, :class:`~coursekit.errors.EngineFailed`
    (naming the component, with its log's tail) when one exits, :class:`~coursekit.errors.EngineUnreachable`
    when it is not ready within ``timeout`` seconds or a real cluster does not answer.
    """
    global _cluster
    if _cluster is not None and _cluster.running():
        return _cluster
    if _cluster is not None:
        stop()
    path = external_kubeconfig()
    if path is not None:
        _cluster = _external(path)
        return _cluster
    for name in COMPONENTS:
        _program(name)  # NativeMissing before anything starts
    began = time.monotonic()
    home = engine_dir("kube") / f"{os.getpid()}-{secrets.token_hex(3)}"
    home.mkdir(parents=True)
    _write_pki(home)
    (home / "stages.yaml").write_text(STAGES)
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    for component, port in (("etcd", etcd_port), ("etcd", peer_port), ("kube-apiserver", api_port)):
        if not _port_free(port) or len({etcd_port, peer_port, api_port}) < 3:
            shutil.rmtree(home, ignore_errors=True)
            raise PortInUse(f"{component} could not listen: port {port} on {HOST} is in use by another program",
                            "run kube.start() again: new free ports are picked")
    server = f"https://{HOST}:{api_port}"
    configs = _write_kubeconfigs(home, server)
    commands = _commands(home, etcd_port, peer_port, api_port, configs)
    cluster = Cluster(server=server, kubeconfig=configs["admin"], namespace="default", external=False, home=home,
                      nodes=tuple(nodes))
    _cluster = cluster
    deadline = began + timeout
    cluster.processes["etcd"], cluster.logs["etcd"] = _launch("etcd", commands["etcd"], home)
    _wait(cluster, f"etcd on {HOST}:{etcd_port}", "etcd", lambda: _listening(etcd_port), deadline)
    cluster.processes["kube-apiserver"], cluster.logs["kube-apiserver"] = _launch(
        "kube-apiserver", commands["kube-apiserver"], home)
    # the three clients start at once: they retry until the API server answers
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        cluster.processes[name], cluster.logs[name] = _launch(name, commands[name], home)
    _wait(cluster, f"{server}/readyz", "kube-apiserver", lambda: raw("GET", "/readyz", timeout=2.0).get("text") == "ok",
          deadline)
    for spec in cluster.nodes:
        _create_node(spec)
    _wait(cluster, "the default service account", "kube-controller-manager",
          lambda: raw("GET", "/api/v1/namespaces/default/serviceaccounts/default").get("kind") == "ServiceAccount",
          deadline)
    _wait(cluster, "every fake node Ready", "kwok", lambda: _nodes_ready([s.name for s in cluster.nodes]), deadline)
    cluster.ready_after = time.monotonic() - began
    return cluster


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
        return True
    return False


def _external(path: Path) -> Cluster:
    import yaml

    config = yaml.safe_load(path.read_text()) or {}
    current = config.get("current-context")
    context = next((c.get("context", {}) for c in config.get("contexts", []) if c.get("name") == current), {})
    server = next((c.get("cluster", {}).get("server", "") for c in config.get("clusters", [])
                   if c.get("name") == context.get("cluster")), "")
    cluster = Cluster(server=server, kubeconfig=path, namespace=context.get("namespace") or "default",
                      external=True)
    global _cluster
    _cluster = cluster
    try:
        answer = raw("GET", "/version", timeout=10.0)
    except Exception as exc:
        _cluster = None
        raise EngineUnreachable(f"the cluster of {KUBECONFIG_ENV}={path} ({server or 'no server'}) does not answer "
                                f"GET /version: {exc}",
                                "check the kubeconfig's current context and credentials (`kubectl version`), or "
                                f"unset {KUBECONFIG_ENV} to start the course's control plane") from exc
    if "gitVersion" not in answer:
        _cluster = None
        raise EngineUnreachable(f"{server} answered GET /version without a version: {answer}",
                                f"check that {KUBECONFIG_ENV} points at a Kubernetes API server")
    return cluster


def cluster() -> Cluster:
    """The cluster :func:`start` returned (starting it if needed)."""
    return _cluster if _cluster is not None and _cluster.running() else start()


def kubeconfig() -> Path:
    """The kubeconfig of the cluster (the admin's, for the embedded one): ``kubectl --kubeconfig`` takes it."""
    return cluster().kubeconfig


def client() -> kubernetes.client.ApiClient:
    """A ``kubernetes.client.ApiClient`` for the cluster (one per kernel): pass it to ``CoreV1Api(api)`` etc."""
    current = cluster()
    if current._client is None:
        from kubernetes import config as kube_config

        current._client = kube_config.new_client_from_config(config_file=str(current.kubeconfig))
    return current._client


def raw(method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None,
        content_type: str = "application/json", timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
    """One HTTP request to the API server, with no client-side validation: the answer's JSON (or ``{"text": …}``).

    Non-2xx answers raise :class:`Rejected` with the server's own ``reason`` and ``message``.
    """
    api = client()
    method, url, headers, payload, _ = api.param_serialize(
        method, path, query_params=list((query or {}).items()) or None,
        header_params={"Accept": "application/json", **({"Content-Type": content_type} if body is not None else {})},
        body=body, auth_settings=["BearerToken"])
    response = api.call_api(method, url, header_params=headers, body=payload, _request_timeout=timeout)
    text = response.read().decode(errors="replace")
    try:
        answer = json.loads(text) if text else {}
    except ValueError:
        answer = {"text": text}
    if not isinstance(answer, dict):
        answer = {"items": answer}
    if not 200 <= response.status < 300:
        raise Rejected(response.status, str(answer.get("reason", response.reason)),
                       str(answer.get("message", text[:500])), answer)
    return answer


_PLURAL = {"Job": "jobs", "CronJob": "cronjobs", "Pod": "pods", "Namespace": "namespaces", "Node": "nodes",
           "ConfigMap": "configmaps", "Service": "services", "Event": "events", "Deployment": "deployments",
           "CustomResourceDefinition": "customresourcedefinitions", "SparkApplication": "sparkapplications",
           "ServiceAccount": "serviceaccounts", "LimitRange": "limitranges", "ResourceQuota": "resourcequotas",
           "PriorityClass": "priorityclasses"}
_CLUSTER_SCOPED = {"Namespace", "Node", "CustomResourceDefinition", "PriorityClass"}


def path_of(api_version: str, kind: str, namespace: str | None = None, name: str | None = None) -> str:
    """The REST path of a collection or an object: ``path_of("batch/v1", "Job", "ns", "x")``."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    plural = _PLURAL.get(kind, kind.lower() + "s")
    where = "" if kind in _CLUSTER_SCOPED or namespace is None else f"/namespaces/{namespace}"
    return f"{root}{where}/{plural}" + (f"/{name}" if name else "")


def create(manifest: dict[str, Any], namespace: str | None = None, *, strict: bool = True,
           dry_run: bool = False) -> dict[str, Any]:
    """Create ``manifest`` on the server (``fieldValidation=Strict``: an unknown or duplicate field is an error).

    Returns the object as the server stored it (defaults filled in); with ``dry_run`` the server validates and
    admits it but stores nothing. Raises :class:`Rejected` with the server's message.
    """
    ns = namespace or manifest.get("metadata", {}).get("namespace")
    query = {"fieldValidation": "Strict" if strict else "Warn"}
    if dry_run:
        query["dryRun"] = "All"
    return raw("POST", path_of(manifest["apiVersion"], manifest["kind"], ns), manifest, query=query)


def get(api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    """The object, or ``None`` when it does not exist."""
    try:
        return raw("GET", path_of(api_version, kind, namespace, name))
    except Rejected as exc:
        if exc.status == 404:
            return None
        raise


def items(api_version: str, kind: str, namespace: str | None = None, *,
          selector: str | None = None, fields: str | None = None) -> list[dict[str, Any]]:
    """The objects of a kind (in ``namespace``), optionally by label and field selector."""
    query = {k: v for k, v in (("labelSelector", selector), ("fieldSelector", fields)) if v}
    return list(raw("GET", path_of(api_version, kind, namespace), query=query).get("items", []))


def delete(api_version: str, kind: str, name: str, namespace: str | None = None, *,
           propagation: str = "Background", grace_seconds: int | None = None) -> bool:
    """Delete an object (its dependents by ``propagation``); ``False`` if it did not exist."""
    body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
    if grace_seconds is not None:
        body["gracePeriodSeconds"] = grace_seconds
    try:
        raw("DELETE", path_of(api_version, kind, namespace, name), body)
    except Rejected as exc:
        if exc.status == 404:
            return False
        raise
    return True


def patch_status(api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch an object's ``status`` subresource (what a controller or a kubelet writes)."""
    return raw("PATCH", path_of(api_version, kind, namespace, name) + "/status", {"status": status},
               content_type="application/merge-patch+json")


def events(namespace: str, name: str | None = None, *, kind: str | None = None) -> list[dict[str, Any]]:
    """The core events of ``namespace`` (about object ``name``), oldest first: what controllers report."""
    selectors = [f"involvedObject.name={name}"] if name else []
    if kind:
        selectors.append(f"involvedObject.kind={kind}")
    found = items("v1", "Event", namespace, fields=",".join(selectors) or None)
    return sorted(found, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def wait_for(probe: Callable[[], _T | None], *, timeout: float = 20.0, poll: float = 0.2,
             what: str = "the condition") -> _T:
    """Poll ``probe()`` until it returns something truthy (returned), or raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(poll)


def namespace(name: str) -> str:
    """A namespace of the learner's own, empty: ``name`` (prefixed on a real cluster), created again if it exists.

    On a real cluster (``COURSEKIT_KUBECONFIG``) namespaces are cluster-wide objects you may not be allowed to
    create: then the context's namespace is used as it is, and the lesson's objects carry its names' prefix.
    """
    current = cluster()
    ns = naming.namespaced(name, current.external).replace(".", "-")
    if current.external:
        try:
            return _fresh_namespace(ns)
        except Rejected as exc:
            if exc.status != 403:
                raise
            return current.namespace
    return _fresh_namespace(ns)


def _fresh_namespace(ns: str) -> str:
    if get("v1", "Namespace", ns) is not None:
        delete("v1", "Namespace", ns, propagation="Foreground")
        wait_for(lambda: get("v1", "Namespace", ns) is None, timeout=30.0,
                 what=f"the deletion of the leftover namespace {ns}")
    create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    wait_for(lambda: get("v1", "ServiceAccount", "default", ns), timeout=15.0,
             what=f"the default service account of {ns}")
    return ns


def _create_node(spec: NodeSpec) -> None:
    taints = []
    for taint in spec.taints:
        key_value, effect = taint.rsplit(":", 1)
        key, _, value = key_value.partition("=")
        taints.append({"key": key, "value": value, "effect": effect})
    resources = {"cpu": spec.cpu, "memory": spec.memory, "pods": str(spec.pods)}
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": spec.name, "annotations": {KWOK_ANNOTATION: "fake"},
                         "labels": {"kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "type": "kwok", **spec.labels}},
            "spec": {"taints": taints} if taints else {},
            "status": {"capacity": resources, "allocatable": resources}}
    with contextlib.suppress(Rejected):  # a node of that name is there already
        create(node)


def _nodes_ready(names: list[str]) -> bool:
    ready = set()
    for node in items("v1", "Node"):
        conditions = node.get("status", {}).get("conditions", [])
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready.add(node["metadata"]["name"])
    return set(names) <= ready


def scheduler_verdicts(pods: Iterable[dict[str, Any]], namespace: str, nodes: Iterable[str] | None = None, *,
                       timeout: float = 15.0) -> dict[str, set[str]]:
    """Ask the real scheduler, for each pod manifest, on which of ``nodes`` (default: every node) it could run.

    For one pod at a time, a copy pinned to each node (an added ``nodeSelector`` on ``kubernetes.io/hostname``)
    is created; a copy the scheduler binds says "fits", one it marks ``Unschedulable`` says "does not". The copies
    are deleted before the next pod's, so pods never compete for a node. Returns pod name -> nodes it fits.
    """
    names = list(nodes) if nodes is not None else [n["metadata"]["name"] for n in items("v1", "Node")]
    verdicts: dict[str, set[str]] = {}
    for pod in pods:
        trials = {}
        for node in names:
            trial = json.loads(json.dumps(pod))
            trial["metadata"] = {"name": f"{pod['metadata']['name']}-on-{node}"[:63].rstrip("-"),
                                 "labels": {"coursekit/trial": "scheduling"}}
            trial["spec"]["nodeSelector"] = {**trial["spec"].get("nodeSelector", {}), "kubernetes.io/hostname": node}
            create(trial, namespace)
            trials[trial["metadata"]["name"]] = node

        def decided(trials: dict[str, str] = trials) -> dict[str, bool] | None:
            found = {}
            for current in items("v1", "Pod", namespace, selector="coursekit/trial=scheduling"):
                name = current["metadata"]["name"]
                if current["spec"].get("nodeName"):
                    found[name] = True
                elif any(c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
                         for c in (current.get("status") or {}).get("conditions") or []):
                    found[name] = False
            return found if set(found) >= set(trials) else None

        outcome = wait_for(decided, timeout=timeout, what=f"the scheduler's verdicts on {pod['metadata']['name']}")
        verdicts[pod["metadata"]["name"]] = {trials[name] for name, fits in outcome.items() if fits and name in trials}
        for name in trials:
            delete("v1", "Pod", name, namespace, grace_seconds=0)
        wait_for(lambda: not items("v1", "Pod", namespace, selector="coursekit/trial=scheduling"), timeout=timeout,
                 what="the deletion of the trial pods")
    return verdicts


def spark_submit(namespace: str, name: str, *args: str, conf: dict[str, str] | None = None,
                 timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run pyspark's ``spark-submit --master k8s://<this cluster> --deploy-mode cluster`` and return at once.

    ``spark.kubernetes.submission.waitAppCompletion=false``: spark-submit creates the driver pod (and its
    ConfigMap and Service) and exits; the driver, once its container runs, would create the executor pods.
    ``args`` are ``--class …`` and the application's jar and arguments. Needs Java 17+ (as the Spark lessons do).
    """
    from coursekit.java import find_java

    current = cluster()
    import pyspark

    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    settings = {"spark.kubernetes.namespace": namespace, "spark.kubernetes.submission.waitAppCompletion": "false",
                **(conf or {})}
    if not current.external:
        token = json.loads(current.kubeconfig.read_text())["users"][0]["user"]["token"]
        settings["spark.kubernetes.authenticate.submission.caCertFile"] = str(current.kubeconfig.parent / "ca.crt")
        settings["spark.kubernetes.authenticate.submission.oauthToken"] = token
    command = [str(submit), "--master", f"k8s://{current.server}", "--deploy-mode", "cluster", "--name", name]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    env = dict(os.environ, JAVA_HOME=str(find_java().resolve().parent.parent), SPARK_LOCAL_IP=HOST,
               KUBECONFIG=str(current.kubeconfig))
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _crd_schema() -> dict[str, Any]:
    pod = {"type": "object", "properties": {
        "cores": {"type": "integer", "format": "int32", "minimum": 1},
        "coreRequest": {"type": "string"}, "coreLimit": {"type": "string"},
        # Spark's own memory strings ("7g", "1024m", "2gb"): the operator's CRD checks no pattern, nor does this one
        "memory": {"type": "string"}, "memoryOverhead": {"type": "string"}, "serviceAccount": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
        "tolerations": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        "affinity": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    executor = json.loads(json.dumps(pod))
    executor["properties"]["instances"] = {"type": "integer", "format": "int32", "minimum": 1}
    return {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "required": ["driver", "executor", "mainApplicationFile", "sparkVersion", "type"],
                 "properties": {
            "type": {"type": "string", "enum": ["Java", "Python", "Scala", "R"]},
            "mode": {"type": "string", "enum": ["cluster", "client"]},
            "sparkVersion": {"type": "string"}, "image": {"type": "string"},
            "mainClass": {"type": "string"}, "mainApplicationFile": {"type": "string"},
            "arguments": {"type": "array", "items": {"type": "string"}},
            "sparkConf": {"type": "object", "additionalProperties": {"type": "string"}},
            "restartPolicy": {"type": "object", "properties": {
                "type": {"type": "string", "enum": ["Never", "Always", "OnFailure"]},
                "onFailureRetries": {"type": "integer", "format": "int32", "minimum": 0},
                "onFailureRetryInterval": {"type": "integer", "format": "int64", "minimum": 1}}},
            "timeToLiveSeconds": {"type": "integer", "format": "int64"},
            "driver": pod, "executor": executor}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}


#: The Spark operator's ``SparkApplication`` (``sparkoperator.k8s.io/v1beta2``) as a CRD: a faithful *subset* of
#: the operator's schema (kubeflow/spark-operator v2.5.2, ``config/crd/bases/sparkoperator.k8s.io_sparkapplications
#: .yaml``): the same required fields (``mainApplicationFile`` is required since v2.5; v2.0 did not require it), enums,
#: types and minimums for the fields it has, and nothing stricter; the real one has many more fields.
SPARK_APPLICATION_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "sparkapplications.sparkoperator.k8s.io",
                 "annotations": {"api-approved.kubernetes.io": "https://github.com/kubeflow/spark-operator/pull/1298"}},
    "spec": {"group": "sparkoperator.k8s.io", "scope": "Namespaced",
             "names": {"kind": "SparkApplication", "listKind": "SparkApplicationList", "plural": "sparkapplications",
                       "singular": "sparkapplication", "shortNames": ["sparkapp"]},
             "versions": [{"name": "v1beta2", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": _crd_schema()}}]},
}


def install_crd(crd: dict[str, Any] = SPARK_APPLICATION_CRD, *, timeout: float = 15.0) -> str:
    """Install ``crd`` unless one of its name exists; wait until the API serves it. Returns what was done.

    On a real cluster (``COURSEKIT_KUBECONFIG``) an existing definition (the operator's own) is never replaced,
    and a missing one is installed only if you are allowed to (CRDs are cluster-wide).
    """
    name = crd["metadata"]["name"]
    existing = get(crd["apiVersion"], crd["kind"], name)
    if existing is not None:
        done = "kept the definition already installed"
    else:
        create(crd)
        done = "installed"

    def established() -> bool:
        current = get(crd["apiVersion"], crd["kind"], name) or {}
        return any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in (current.get("status") or {}).get("conditions") or [])

    wait_for(established, timeout=timeout, what=f"the API server serving {name}")
    return done


def validate_offline(manifest: dict[str, Any], version: str = f"{KUBERNETES_VERSION}.0") -> list[str]:
    """The schema errors of ``manifest`` against Kubernetes ``version``'s published OpenAPI schemas (strict: no
    unknown fields), without a cluster: ``[]`` when it is valid. The fallback when the binaries are missing.

    Only the schema is checked: none of the API server's own validation (``restartPolicy: Always`` on a Job, a
    ``CRON_TZ`` in a schedule), no admission, no defaults, and nothing is scheduled.
    """
    import kubernetes_validate

    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(the object)"
        return [f"{where}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"no schema for {manifest.get('apiVersion')}/{manifest.get('kind')}: {exc}"]
    return []


def _offline_cases() -> list[tuple[str, dict[str, Any], str]]:
    """Manifests of lesson 16 with what the 1.37 API server answers to each (seen when it runs)."""
    job: dict[str, Any] = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "l16-orders-export"},
        "spec": {"completions": 4, "parallelism": 2, "completionMode": "Indexed", "backoffLimit": 2,
                 "activeDeadlineSeconds": 1800, "ttlSecondsAfterFinished": 3600,
                 "template": {"spec": {"restartPolicy": "Never", "containers": [
                     {"name": "export", "image": "ghcr.io/brightcart/orders-export:1.4",
                      "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}}]}}}}
    always = json.loads(json.dumps(job))
    always["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    typo = json.loads(json.dumps(job))
    typo["spec"]["ttlSecondsAfterFinish"] = typo["spec"].pop("ttlSecondsAfterFinished")
    cron_tz = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "l16-cron-tz"},
               "spec": {"schedule": "CRON_TZ=Europe/Amsterdam 30 2 * * *", "jobTemplate": {"spec": job["spec"]}}}
    too_big = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "l16-too-big"},
               "spec": {"containers": [{"name": "main", "image": "ghcr.io/brightcart/orders-export:1.4",
                                        "resources": {"requests": {"cpu": "1", "memory": "24Gi"}}}]}}
    return [
        ("the nightly export Job", job, "created; 4 pods run, 2 at a time, on the general nodes"),
        ("... with restartPolicy: Always", always, "422: spec.template.spec.restartPolicy: Required value"),
        ("... with ttlSecondsAfterFinish", typo, '400 (Strict): unknown field "spec.ttlSecondsAfterFinish"'),
        ("a CronJob with CRON_TZ= in its schedule", cron_tz, "422: cannot use TZ or CRON_TZ in schedule"),
        ("a pod requesting 24Gi", too_big, "created, then Pending: 2 Insufficient memory, 2 untolerated taint"),
    ]


def offline_fallback() -> None:
    """Nothing when a cluster can be used; else print what the published 1.37 schemas say about a few of lesson
    16's manifests next to what the API server would answer, then raise :class:`~coursekit.builds.NativeMissing`.

    The lesson's fallback without the binaries: it shows how far an offline check goes (the schema) and where it
    stops (the server's own rules, scheduling), then stops the notebook with the fix.
    """
    ok, why = available()
    if ok:
        return
    print(f"No Kubernetes control plane here: {why}.\n"
          f"What the published Kubernetes {KUBERNETES_VERSION} schemas say (kubernetes-validate, offline), and what "
          "the API server answers when it runs:\n")
    for what, manifest, server in _offline_cases():
        offline = "; ".join(validate_offline(manifest)) or "valid"
        print(f"- {what}\n    offline schema check: {offline}\n    API server:           {server}")
    print("\nThree of the five pass the schema and still fail on a cluster: only the API server's own rules catch "
          "two, only the scheduler the third. Sections 2-7 and the exercises' checks need the control plane.")
    try:
        for name in COMPONENTS:
            _program(name)
    except builds.NativeMissing as missing:
        raise builds.NativeMissing(f"{missing.problem}: this lesson cannot go on without a control plane",
                                   missing.fix) from None
    raise builds.NativeMissing(why, "run `coursekit doctor`: it says what is missing and how to fix it")


def _stop_processes(cluster: Cluster) -> bool:
    """SIGTERM to each component's group in three waves (the API's clients, the API server, etcd), SIGKILL to any
    still alive after :data:`STOP_GRACE` seconds; ``True`` if any was running."""
    stopped = False
    for wave in (("kwok", "kube-scheduler", "kube-controller-manager"), ("kube-apiserver",), ("etcd",)):
        running = [p for name in wave if (p := cluster.processes.get(name)) is not None and p.poll() is None]
        stopped = stopped or bool(running)
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_GRACE)
    return stopped


def stop() -> bool:
    """Stop the control plane this kernel started and remove its state; ``True`` if it was running.

    A real cluster (``COURSEKIT_KUBECONFIG``) is left alone (the objects a lesson created stay until it deletes
    them).
    """
    global _cluster
    current, _cluster = _cluster, None
    if current is None:
        return False
    if current._client is not None:
        with contextlib.suppress(Exception):
            current._client.close()
    if current.external:
        return False
    stopped = _stop_processes(current)
    if current.home is not None:
        shutil.rmtree(current.home, ignore_errors=True)
    return stopped


atexit.register(stop)


def check() -> tuple[bool, str, str]:
    """For ``coursekit doctor``: ``(ok, what it found, the fix)`` about Kubernetes."""
    try:
        path = external_kubeconfig()
    except EngineUnreachable as exc:
        return False, exc.problem, exc.fix
    if path is not None:
        try:
            _external(path)
        except EngineUnreachable as exc:
            return False, exc.problem, exc.fix
        finally:
            stop()
        return True, f"your cluster ({KUBECONFIG_ENV}={path}) answers", ""
    try:
        bins = [_program(name) for name in COMPONENTS]
    except builds.NativeMissing as exc:
        return (False, f"{exc.problem}; lesson 16 falls back to validating manifests offline (no scheduling)",
                exc.fix)
    return True, f"etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok in {bins[0].parent}", ""
