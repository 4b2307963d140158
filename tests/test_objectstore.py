"""The object stores of lessons 14 and 15: one round trip on each cloud's real emulator, and the errors."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from coursekit import builds, data, objectstore
from coursekit.errors import EngineUnreachable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stores() -> Iterator[dict[str, objectstore.Store]]:
    if not builds.is_installed("azurite"):
        pytest.skip("Azurite is not installed: run `coursekit fetch-native azurite`")
    yield objectstore.start_all()
    objectstore.stop_all()


@pytest.mark.parametrize("cloud", objectstore.CLOUDS)
def test_the_same_parquet_round_trip_on_each_cloud(stores: dict[str, objectstore.Store], cloud: str) -> None:
    assert stores[cloud].endpoint is not None and stores[cloud].endpoint.startswith("http://127.0.0.1:")
    assert objectstore.start(cloud) is stores[cloud], "start is idempotent per kernel"
    fs = objectstore.filesystem(cloud)
    bucket = objectstore.bucket(f"t-{cloud}-lake", cloud)
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    orders = data.orders(n=300, seed=3)
    for region, part in orders.groupby("region"):
        part.drop(columns="region").to_parquet(
            objectstore.url(cloud, f"{bucket}/orders/region={region}/part-0.parquet"),
            storage_options=objectstore.storage_options(cloud), index=False)
    found = sorted(fs.find(f"{bucket}/orders"))
    assert len(found) == orders["region"].nunique() and all(p.endswith(".parquet") for p in found)
    back = pd.read_parquet(objectstore.url(cloud, f"{bucket}/orders"),
                           storage_options=objectstore.storage_options(cloud))
    assert sorted(back["order_id"]) == sorted(orders["order_id"])
    payload = b"brightcart" * 100
    fs.pipe_file(f"{bucket}/raw.bin", payload)
    assert hashlib.sha256(fs.cat_file(f"{bucket}/raw.bin")).digest() == hashlib.sha256(payload).digest()


def test_urls_and_options_name_each_cloud(stores: dict[str, objectstore.Store]) -> None:
    assert [objectstore.url(c, "b/k") for c in objectstore.CLOUDS] == ["s3://b/k", "gs://b/k", "abfs://b/k"]
    assert "BlobEndpoint=http://127.0.0.1:" in objectstore.storage_options("azure")["connection_string"]
    assert objectstore.storage_options("gcs")["token"] == "anon"
    with pytest.raises(ValueError, match="unknown cloud"):
        objectstore.start("oci")
    with pytest.raises(ValueError, match="s3 only"):
        objectstore.client("gcs")


def test_an_unreachable_deployment_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    monkeypatch.setenv(objectstore.GCS_ENDPOINT_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv(objectstore.AZURE_CONNECTION_ENV,
                       f"DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k;BlobEndpoint=http://127.0.0.1:{port}/a;")
    for cloud in ("gcs", "azure"):
        with pytest.raises(EngineUnreachable) as caught:
            objectstore._external(cloud, objectstore.external_endpoint(cloud) or "")
        assert objectstore.ENV[cloud] in caught.value.problem and "unset" in caught.value.fix
    ok, found, fix = objectstore.check()
    assert not ok and "does not answer" in found and objectstore.GCS_ENDPOINT_ENV in fix


def test_a_connection_string_that_is_not_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="not a storage connection string"):
        objectstore._external("azure", "https://myaccount.blob.core.windows.net")
    assert objectstore._blob_endpoint("AccountName=acme;AccountKey=k;EndpointSuffix=core.windows.net") == (
        "https://acme.blob.core.windows.net")


def test_azurite_missing_is_said_plainly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(builds.NATIVE_ENV, str(tmp_path))
    monkeypatch.delenv(objectstore.AZURE_CONNECTION_ENV, raising=False)
    with pytest.raises(builds.NativeMissing) as caught:
        objectstore.azurite_command()
    assert "azurite is not installed" in caught.value.problem and "fetch-native azurite" in caught.value.fix
    ok, found, fix = objectstore.check()
    assert not ok and "Azurite is not installed" in found and "fetch-native azurite" in fix


def test_bucket_names_get_the_learners_prefix_on_a_shared_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSEKIT_LEARNER", "Ada.Lovelace")
    for cloud in objectstore.CLOUDS:
        monkeypatch.delenv(objectstore.ENV[cloud], raising=False)
        assert objectstore.bucket("l14-lake", cloud) == "l14-lake"
    monkeypatch.setenv(objectstore.GCS_ENDPOINT_ENV, "google")
    name = objectstore.bucket("l14-lake", "gcs")
    assert name.startswith("ada-lovelace-") and name.endswith("-l14-lake") and "." not in name
    assert objectstore.bucket("l14-lake", "s3") == "l14-lake", "only the shared cloud's names are prefixed"
