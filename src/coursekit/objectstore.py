"""Cloud object storage for the course: real implementations of the clouds' storage APIs on loopback, or the
clouds themselves, all through one fsspec filesystem per cloud.

::

    from coursekit import objectstore
    store = objectstore.start("s3")             # moto's S3 server on a free 127.0.0.1 port (this kernel's)
    fs = objectstore.filesystem("s3")           # an s3fs filesystem pointed at it
    fs.mkdir(objectstore.bucket("l14-lake"))    # a per-learner bucket name on a shared account
    objectstore.client("s3")                    # a boto3 client for what fsspec does not cover (notifications)
    objectstore.start_all()                     # all three clouds; Azurite loads while the others start
    objectstore.filesystem("gcs"), objectstore.filesystem("azure")   # gcsfs and adlfs, the same fsspec API
    objectstore.url("azure", "l14-lake/orders") # 'abfs://l14-lake/orders', for pandas, pyarrow, DuckDB

=====  ====================================================  ==============================================
cloud  embedded default (this module starts it)              switch to your own
=====  ====================================================  ==============================================
s3     moto's S3 (and SQS) server, in a thread of the kernel ``COURSEKIT_S3_ENDPOINT=https://host`` (MinIO,
                                                             or ``aws`` for Amazon S3 with your credentials)
gcs    gcp-storage-emulator (the JSON API), in memory, in a  ``COURSEKIT_GCS_ENDPOINT=https://host`` (another
       thread of the kernel                                  emulator), or ``google`` for Google Cloud Storage
                                                             with Application Default Credentials
azure  Azurite (Microsoft's emulator, blob service), a Node  ``COURSEKIT_AZURE_CONNECTION_STRING=...`` (the
       process in memory that ends with the kernel           storage account's connection string, with its
                                                             key or a SAS token)
=====  ====================================================  ==============================================

An embedded store listens on ``127.0.0.1`` only and keeps its objects in memory: they are gone when the kernel
restarts (lessons create what they need). Azurite runs with ``--disableTelemetry`` (Azurite 3.35 and later
send usage telemetry unless told not to), ``--inMemoryPersistence --extentMemoryLimit 64`` (else it may take
half the machine's memory) and ``--skipApiVersionCheck --loose`` (adlfs' Azure SDK is newer than Azurite's
table of API versions); its log is ``<state>/objectstore/azurite-<pid>.log``. Azurite is installed into the
environment by the set-up (``coursekit fetch-native azurite``, see :mod:`coursekit.builds`) and needs Node.js 20
or newer.

Against a real deployment the credentials come from the cloud SDK's own chain, never from the course: for S3
``AWS_PROFILE``, environment variables or an instance role; for GCS Application Default Credentials
(``gcloud auth application-default login``, ``GOOGLE_APPLICATION_CREDENTIALS``) and the project in
``GOOGLE_CLOUD_PROJECT``; for Azure the connection string itself (the course does not use
``DefaultAzureCredential``: one variable, one way).

gcsfs must be imported with ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``, or its experimental class asks Google's
control API about every bucket (and stalls for a minute when that API cannot be reached): this module sets it,
unless it is set already, before it imports gcsfs. Import gcsfs through this module, or set it yourself first.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coursekit import naming
from coursekit.config import engine_dir
from coursekit.errors import EngineFailed, EngineUnreachable
from coursekit.processes import log_tail as _tail
from coursekit.processes import tied_to_this_process

if TYPE_CHECKING:
    import fsspec

HOST = "127.0.0.1"
S3_ENDPOINT_ENV = "COURSEKIT_S3_ENDPOINT"
GCS_ENDPOINT_ENV = "COURSEKIT_GCS_ENDPOINT"
AZURE_CONNECTION_ENV = "COURSEKIT_AZURE_CONNECTION_STRING"
ENV = {"s3": S3_ENDPOINT_ENV, "gcs": GCS_ENDPOINT_ENV, "azure": AZURE_CONNECTION_ENV}
REGION = "eu-west-1"  # not us-east-1: creating a bucket there must omit its location constraint
# moto accepts any key pair; these only make botocore sign requests (never real credentials)
_EMULATOR_KEYS = {"key": "coursekit", "secret": "coursekit"}
CLOUDS = ("s3", "gcs", "azure")
PROTOCOLS = {"s3": "s3", "gcs": "gs", "azure": "abfs"}  #: the URL scheme of each cloud in fsspec
GCS_PROJECT = "coursekit"  #: the project the GCS emulator's buckets belong to
#: Azurite's well-known development account (published in its README: not a secret, works only on Azurite)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_TIMEOUT = 30.0
_AZURITE_FLAGS = ("--blobHost", HOST, "--blobPort", "0", "--inMemoryPersistence", "--extentMemoryLimit", "64",
                  "--skipApiVersionCheck", "--loose", "--disableTelemetry")
_LISTENING = re.compile(r"successfully listens on (http://[\w.]+:\d+)")
_GCSFS_FLAG = "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"



@dataclass
class Store:
    """One cloud's object store: an embedded emulator (``server`` is set) or a real deployment."""

    cloud: str
    endpoint: str | None  #: the URL clients talk to; ``None`` for the cloud's own default endpoint
    external: bool
    server: Any = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop an embedded emulator (its objects are lost); a real deployment is left alone."""
        if self.server is not None:
            self.server.stop()
            self.server = None


@dataclass
class _Azurite:
    """Azurite's process, its log and its blob endpoint once it listens."""

    process: subprocess.Popen[bytes]
    log: Path
    started_at: float = field(default_factory=time.monotonic)
    endpoint: str | None = None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


_stores: dict[str, Store] = {}
_lock = threading.Lock()


def _cloud(cloud: str) -> str:
    if cloud not in CLOUDS:
        raise ValueError(f"unknown cloud {cloud!r}; choose one of {', '.join(CLOUDS)}")
    return cloud


def external_endpoint(cloud: str) -> str | None:
    """The real deployment named for ``cloud`` by its environment variable, or ``None`` (use the emulator).

    For ``azure`` this is the connection string."""
    return os.environ.get(ENV[_cloud(cloud)], "").strip() or None


def shared(cloud: str) -> bool:
    """True when ``cloud`` is a real deployment, which other learners may share: names get the learner's prefix."""
    return external_endpoint(cloud) is not None


def bucket(name: str, cloud: str = "s3") -> str:
    """``name`` as a bucket (Azure: container) name: with the learner's prefix on a shared deployment.

    Bucket names are global and take only lower-case letters, digits and ``-`` on every cloud, so the
    prefix is joined with ``-`` (``ada-l14-lake``).
    """
    return naming.namespaced(name, shared(cloud)).replace(".", "-")


def url(cloud: str, path: str) -> str:
    """``path`` (``bucket/key``) as the URL pandas, pyarrow and DuckDB's fsspec take: ``gs://bucket/key``."""
    return f"{PROTOCOLS[_cloud(cloud)]}://{path.lstrip('/')}"


def connection_string(endpoint: str) -> str:
    """The connection string of Azurite's development account at ``endpoint`` (``http://127.0.0.1:port``)."""
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};")


def _blob_endpoint(conn: str) -> str | None:
    """The blob endpoint a connection string names, or ``None`` when it only names an account on Azure."""
    parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
    if parts.get("BlobEndpoint"):
        return parts["BlobEndpoint"].rstrip("/")
    if parts.get("AccountName"):
        suffix = parts.get("EndpointSuffix", "core.windows.net")
        return f"{parts.get('DefaultEndpointsProtocol', 'https')}://{parts['AccountName']}.blob.{suffix}"
    return None


# --- the emulators ---------------------------------------------------------------------------------------

def _start_s3() -> Store:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request into the notebook
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return Store("s3", f"http://{host}:{port}", external=False, server=server)


def _quiet_handle_error(request: Any, client_address: Any) -> None:
    import logging

    logging.getLogger("gcp_storage_emulator").debug("request from %s failed", client_address, exc_info=True)


def _start_gcs() -> Store:
    from gcp_storage_emulator.server import create_server

    server = create_server(HOST, 0, in_memory=True, project_number=None)
    server.start()  # returns once its HTTP server is bound (port 0: the system picks a free one)
    httpd = server._api._httpd  # the emulator has no public accessor for its HTTP server
    # a client that closes a ranged read early (DuckDB, pyarrow) is normal: no traceback on stderr for it
    httpd.handle_error = _quiet_handle_error
    port = httpd.server_address[1]
    return Store("gcs", f"http://{HOST}:{port}", external=False, server=server)


def azurite_command() -> list[str]:
    """The command line that runs Azurite's blob service (raises ``NativeMissing`` when it is not installed)."""
    from coursekit import builds

    program = builds.program("azurite", "azurite-blob")
    node = shutil.which("node")
    if node is None:
        raise builds.NativeMissing("Azurite is installed but Node.js (`node`) is not on PATH",
                                   builds.ENGINES["azurite"].hint)
    return [node, str(program), *_AZURITE_FLAGS]


def _launch_azurite() -> _Azurite:
    command = azurite_command()
    home = engine_dir("objectstore")
    log = home / f"azurite-{os.getpid()}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(tied_to_this_process(command, "Azurite"),
                                   stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=home,
                                   start_new_session=True)
    return _Azurite(process, log)


def _await_azurite(azurite: _Azurite, timeout: float = AZURITE_TIMEOUT) -> Store:
    deadline = azurite.started_at + timeout
    while True:
        found = _LISTENING.search(azurite.log.read_text(errors="replace")) if azurite.log.is_file() else None
        if found:
            azurite.endpoint = found.group(1)
            return Store("azure", azurite.endpoint, external=False, server=azurite)
        if azurite.process.poll() is not None:
            raise EngineFailed(f"Azurite exited with code {azurite.process.returncode} while starting. Last lines "
                               f"of its log:\n{_tail(azurite.log)}",
                               f"read {azurite.log}; `coursekit doctor` checks Node.js and the Azurite install")
        if time.monotonic() > deadline:
            azurite.stop()
            raise EngineUnreachable(f"Azurite did not listen within {timeout:.0f} s. Last lines of its log:\n"
                                    f"{_tail(azurite.log)}",
                                    "the machine may be short of memory or CPU: close other notebooks "
                                    "(`coursekit status`), then start it again")
        time.sleep(0.05)


def _external(cloud: str, value: str) -> Store:
    if cloud == "s3":
        store = Store(cloud, None if value == "aws" else value, external=True)
    elif cloud == "gcs":
        store = Store(cloud, None if value == "google" else value.rstrip("/"), external=True)
    else:
        if "AccountName=" not in value and "BlobEndpoint=" not in value:
            raise ValueError(f"{AZURE_CONNECTION_ENV} is not a storage connection string (it names neither "
                             "AccountName= nor BlobEndpoint=); copy it from the storage account's 'Access keys'")
        store = Store(cloud, _blob_endpoint(value), external=True)
    _check_reachable(store)
    return store


def start(cloud: str) -> Store:
    """Return ``cloud``'s store: the real deployment its variable names, else this kernel's emulator (started
    once, on a free port). Raises :class:`EngineUnreachable` when a named deployment does not answer,
    ``NativeMissing`` when Azurite is not installed and :class:`EngineFailed` when it exits while starting."""
    return start_all((cloud,))[cloud]


def start_all(clouds: tuple[str, ...] = CLOUDS) -> dict[str, Store]:
    """Start (or return) the stores of ``clouds``: Azurite's process first, so it loads while the
    in-process emulators start. Idempotent per kernel."""
    for cloud in clouds:
        _cloud(cloud)
    with _lock:
        pending: _Azurite | None = None
        for cloud in sorted(clouds, key=lambda c: c != "azure"):  # azure first
            current = _stores.get(cloud)
            if current is not None and (current.external or current.server is not None):
                continue
            value = external_endpoint(cloud)
            if value is not None:
                _stores[cloud] = _external(cloud, value)
            elif cloud == "azure":
                pending = _launch_azurite()
            else:
                _stores[cloud] = _start_s3() if cloud == "s3" else _start_gcs()
        if pending is not None:
            _stores["azure"] = _await_azurite(pending)
        return {cloud: _stores[cloud] for cloud in clouds}


def _check_reachable(store: Store) -> None:
    if store.endpoint is None:
        return  # the cloud's own endpoint: the SDK reports its own errors
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(store.endpoint)
    port = where.port or (443 if where.scheme == "https" else 80)
    variable = ENV[store.cloud]
    try:
        with socket.create_connection((where.hostname or HOST, port), timeout=5):
            return
    except OSError as exc:
        raise EngineUnreachable(
            f"the {store.cloud} endpoint {store.endpoint} (from {variable}) does not answer: {exc}",
            f"check the URL and that the service is up, or unset {variable} to use the emulator") from exc


# --- clients ---------------------------------------------------------------------------------------------

def _gcsfs_flag() -> None:
    os.environ.setdefault(_GCSFS_FLAG, "false")


def storage_options(cloud: str) -> dict[str, Any]:
    """The fsspec ``storage_options`` for ``cloud``'s store (pandas, pyarrow, Dask and DuckDB's fsspec take them)."""
    store = start(cloud)
    if cloud == "s3":
        if store.external:
            return {"client_kwargs": {"endpoint_url": store.endpoint}} if store.endpoint else {}
        return {**_EMULATOR_KEYS, "client_kwargs": {"endpoint_url": store.endpoint, "region_name": REGION}}
    if cloud == "gcs":
        _gcsfs_flag()
        if store.external:
            if store.endpoint is None:
                return {"token": "google_default"}
            return {"endpoint_url": store.endpoint}
        return {"endpoint_url": store.endpoint, "token": "anon", "project": GCS_PROJECT}
    if store.external:
        return {"connection_string": external_endpoint("azure")}
    return {"connection_string": connection_string(str(store.endpoint))}


def filesystem(cloud: str) -> fsspec.AbstractFileSystem:
    """An fsspec filesystem on ``cloud``'s store (``s3fs``, ``gcsfs``, ``adlfs``), listing fresh each time."""
    import fsspec

    options = storage_options(cloud)
    if cloud == "gcs":
        _gcsfs_flag()
    return fsspec.filesystem(PROTOCOLS[cloud], skip_instance_cache=True, use_listings_cache=False, **options)


def client(cloud: str = "s3", service: str = "s3") -> Any:
    """A boto3 client for ``service`` (``s3``, ``sqs``) at the store's endpoint: what fsspec does not cover."""
    if cloud != "s3":
        raise ValueError(f"client() makes boto3 clients for s3 only; for {cloud} use filesystem({cloud!r})")
    import boto3

    store = start(cloud)
    if store.external:
        return boto3.client(service, endpoint_url=store.endpoint) if store.endpoint else boto3.client(service)
    return boto3.client(service, endpoint_url=store.endpoint, region_name=REGION,
                        aws_access_key_id=_EMULATOR_KEYS["key"], aws_secret_access_key=_EMULATOR_KEYS["secret"])


def stop_all() -> None:
    """Stop every emulator this kernel started (Azurite's process too)."""
    with _lock:
        for store in _stores.values():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                store.stop()
        _stores.clear()


atexit.register(stop_all)


# --- doctor ----------------------------------------------------------------------------------------------

def _node_major(node: str) -> int | None:
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.match(r"v(\d+)\.", done.stdout.strip())
    return int(found.group(1)) if found else None


def _check_one(cloud: str) -> tuple[bool, str, str]:
    import importlib.util

    value = external_endpoint(cloud)
    if value is not None:
        try:
            store = _external(cloud, value)
        except (EngineUnreachable, ValueError) as exc:
            fix = exc.fix if isinstance(exc, EngineUnreachable) else f"fix {ENV[cloud]}, or unset it"
            return False, f"{cloud}: {getattr(exc, 'problem', exc)}", fix
        return True, f"{cloud}: {store.endpoint or 'the cloud itself'} (from {ENV[cloud]})", ""
    if cloud in ("s3", "gcs"):
        module, package = {"s3": ("moto", "moto (S3 server)"), "gcs": ("gcp_storage_emulator", "gcp-storage-emulator")}[
            cloud]
        if importlib.util.find_spec(module) is None:
            return False, f"{cloud}: the emulator ({package}) is not installed", "run `./course setup`"
        return True, f"{cloud}: emulator {package} available", ""
    from coursekit import builds

    if not builds.is_installed("azurite"):
        return (False, f"azure: Azurite is not installed in {builds.engine_dir('azurite')}",
                "run `coursekit fetch-native azurite` (the set-up command `./course setup` does it)")
    node = shutil.which("node")
    major = _node_major(node) if node else None
    if major is None or major < 20:
        seen = "no node on PATH" if node is None else f"node {major}"
        return (False, f"azure: Azurite needs Node.js 20 or newer; found {seen}",
                builds.ENGINES["azurite"].hint)
    return True, f"azure: Azurite available (Node.js {major})", ""


def check() -> tuple[bool, str, str]:
    """For ``coursekit doctor``: ``(ok, what it found, the fix)`` about the three clouds' object stores."""
    results = [_check_one(cloud) for cloud in CLOUDS]
    ok = all(r[0] for r in results)
    return ok, "; ".join(r[1] for r in results), "; ".join(r[2] for r in results if r[2])
