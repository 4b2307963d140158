"""Cloud object storage for the course: real implementations of the clouds' storage APIs on loopback, or the
clouds themselves, all through one fsspec filesystem per cloud.

::

    from coursekit import objectstore
    store = objectstore.start("s3")             # moto's S3 server on a free 127.0.0.1 port (this kernel's)
    fs = objectstore.filesystem("s3")           # an s3fs filesystem pointed at it
    fs.mkdir(objectstore.bucket("l14-lake"))    # a per-learner bucket name on a shared account
    objectstore.client("s3")                    # a boto3 client for what fsspec does not cover (notifications)

=====  ====================================================  ==============================================
cloud  embedded default (this module starts it)              switch to your own
=====  ====================================================  ==============================================
s3     moto's S3 (and SQS) server, in a thread of the kernel ``COURSEKIT_S3_ENDPOINT=https://host`` (MinIO,
                                                             or ``aws`` for Amazon S3 with your credentials)
=====  ====================================================  ==============================================

An embedded store listens on ``127.0.0.1`` only and keeps its objects in the kernel's memory: they are gone
when the kernel restarts (lessons create what they need). Against a real deployment the credentials come from
the cloud SDK's own chain (``AWS_PROFILE``, environment variables, an instance role), never from the course.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coursekit import naming
from coursekit.errors import EngineUnreachable

if TYPE_CHECKING:
    import fsspec

HOST = "127.0.0.1"
S3_ENDPOINT_ENV = "COURSEKIT_S3_ENDPOINT"
REGION = "eu-west-1"  # not us-east-1: creating a bucket there must omit its location constraint
# moto accepts any key pair; these only make botocore sign requests (never real credentials)
_EMULATOR_KEYS = {"key": "coursekit", "secret": "coursekit"}
CLOUDS = ("s3",)


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


_stores: dict[str, Store] = {}
_lock = threading.Lock()


def _cloud(cloud: str) -> str:
    if cloud not in CLOUDS:
        raise ValueError(f"unknown cloud {cloud!r}; choose one of {', '.join(CLOUDS)}")
    return cloud


def external_endpoint(cloud: str) -> str | None:
    """The real deployment named for ``cloud`` by its environment variable, or ``None`` (use the emulator)."""
    _cloud(cloud)
    return os.environ.get(S3_ENDPOINT_ENV, "").strip() or None


def shared(cloud: str) -> bool:
    """True when ``cloud`` is a real deployment, which other learners may share: names get the learner's prefix."""
    return external_endpoint(cloud) is not None


def bucket(name: str, cloud: str = "s3") -> str:
    """``name`` as a bucket name: with the learner's prefix on a shared deployment (``ada-l14-lake``).

    Bucket names are global and take only lower-case letters, digits and ``-`` on every cloud, so the
    prefix is joined with ``-``.
    """
    return naming.namespaced(name, shared(cloud)).replace(".", "-")


def _start_s3() -> Store:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request into the notebook
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return Store("s3", f"http://{host}:{port}", external=False, server=server)


def start(cloud: str) -> Store:
    """Return ``cloud``'s store: the real deployment its variable names, else this kernel's emulator (started
    once, on a free port). Raises :class:`EngineUnreachable` when a named deployment does not answer."""
    _cloud(cloud)
    with _lock:
        if cloud in _stores and (_stores[cloud].external or _stores[cloud].server is not None):
            return _stores[cloud]
        endpoint = external_endpoint(cloud)
        if endpoint is not None:
            store = Store(cloud, None if endpoint == "aws" else endpoint, external=True)
            _check_reachable(store)
        else:
            store = _start_s3()
        _stores[cloud] = store
        return store


def _check_reachable(store: Store) -> None:
    if store.endpoint is None:
        return  # the cloud's own endpoint: the SDK reports its own errors
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(store.endpoint)
    port = where.port or (443 if where.scheme == "https" else 80)
    try:
        with socket.create_connection((where.hostname or HOST, port), timeout=5):
            return
    except OSError as exc:
        raise EngineUnreachable(
            f"the {store.cloud} endpoint {store.endpoint} (from {S3_ENDPOINT_ENV}) does not answer: {exc}",
            f"check the URL and that the service is up, or unset {S3_ENDPOINT_ENV} to use the emulator") from exc


def storage_options(cloud: str) -> dict[str, Any]:
    """The fsspec ``storage_options`` for ``cloud``'s store (pandas, pyarrow, Dask and DuckDB's fsspec take them)."""
    store = start(cloud)
    if store.external:
        return {"client_kwargs": {"endpoint_url": store.endpoint}} if store.endpoint else {}
    return {**_EMULATOR_KEYS, "client_kwargs": {"endpoint_url": store.endpoint, "region_name": REGION}}


def filesystem(cloud: str) -> fsspec.AbstractFileSystem:
    """An fsspec filesystem on ``cloud``'s store (``s3fs``), listing fresh each time (no stale cache)."""
    import fsspec

    return fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False, **storage_options(cloud))


def client(cloud: str = "s3", service: str = "s3") -> Any:
    """A boto3 client for ``service`` (``s3``, ``sqs``) at the store's endpoint: what fsspec does not cover."""
    import boto3

    store = start(cloud)
    if store.external:
        return boto3.client(service, endpoint_url=store.endpoint) if store.endpoint else boto3.client(service)
    return boto3.client(service, endpoint_url=store.endpoint, region_name=REGION,
                        aws_access_key_id=_EMULATOR_KEYS["key"], aws_secret_access_key=_EMULATOR_KEYS["secret"])


def stop_all() -> None:
    """Stop every emulator this kernel started."""
    with _lock:
        for store in _stores.values():
            store.stop()
        _stores.clear()
