"""The BlobStore seam on both backends, against a real S3 server (SeaweedFS)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import zstandard

from klinika.config import load_settings
from klinika.errors import ConfigError, KlinikaError, NotFound, StorageUnavailable
from klinika.index import schema
from klinika.runtime import Runtime
from klinika.storage import BlobStore, StoredBlob, open_blob_store
from klinika.storage.s3 import S3Store
from tests.factories import make_instance
from tests.objectstore import SECRET_KEY, SeaweedFS, s3_env


@pytest.fixture
def store(tmp_path: Path, blob_env: dict[str, str]) -> Iterator[BlobStore]:
    blobs = open_blob_store(load_settings(env=blob_env, data_dir=tmp_path / "data"))
    yield blobs
    blobs.close()


def test_every_operation_of_the_seam_works_on_both_backends(store: BlobStore) -> None:
    data = make_instance(rows=64, columns=64)
    key = hashlib.sha256(data).hexdigest()
    assert not store.exists(key) and list(store.blob_keys()) == []
    (ref,) = store.put_many([data])
    assert not isinstance(ref, Exception) and (ref.key, ref.size) == (key, len(data))
    assert store.exists(key) and store.read(key) == data
    assert store.read_ranges(key, ((10, 20), (300, 7))) == data[10:30] + data[300:307]
    assert b"".join(store.stream(key, chunk_size=1000)) == data
    with store.open(key) as handle:
        assert handle.read(5) == data[:5] and handle.read() == data[5:]
    assert store.read_stored(key) == StoredBlob(data, compressed=False)
    assert list(store.blob_keys()) == [key]
    assert store.check() is None and store.usage().kind == store.kind
    store.delete(key)
    store.delete(key)  # a missing blob is not an error
    assert not store.exists(key)
    with pytest.raises(NotFound):
        store.read(key)
    with pytest.raises(KlinikaError):
        store.read("../../etc/passwd")


def test_a_compressed_blob_from_a_backup_reads_back_as_its_original_bytes(
    store: BlobStore,
) -> None:
    data = make_instance(rows=64, columns=64)
    key = hashlib.sha256(data).hexdigest()
    store.put_stored(key, StoredBlob(zstandard.ZstdCompressor().compress(data), compressed=True))
    assert store.read(key) == data
    assert hashlib.sha256(b"".join(store.stream(key))).hexdigest() == key


def test_many_blobs_go_up_concurrently_and_are_listed(store: BlobStore) -> None:
    items = [make_instance() for _ in range(20)]
    refs = store.put_many(items)
    keys = {hashlib.sha256(d).hexdigest() for d in items}
    assert {r.key for r in refs if not isinstance(r, Exception)} == keys
    assert set(store.blob_keys()) == keys


def test_prefixes_keep_installations_apart(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    one = open_blob_store(load_settings(env=s3_env(request), data_dir=tmp_path / "one"))
    two = open_blob_store(load_settings(env=s3_env(request), data_dir=tmp_path / "two"))
    ref = one.put(make_instance())
    assert one.exists(ref.key) and not two.exists(ref.key)
    assert list(two.blob_keys()) == []


def test_a_large_instance_goes_up_in_parts_and_frames_come_back_by_range(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = s3_env(request) | {"KLINIKA_S3_MULTIPART_MB": "5"}
    store = open_blob_store(load_settings(env=env, data_dir=tmp_path / "data"))
    assert isinstance(store, S3Store)
    data = make_instance(rows=512, columns=512, frames=24)  # 12 MiB of pixels
    ref = store.put(data)
    assert store.etag(ref.key).strip('"').endswith("-2")  # two 8 MiB parts: a multipart upload
    assert hashlib.sha256(store.read(ref.key)).hexdigest() == ref.key
    frame = 512 * 512 * 2
    tail = len(data) - frame
    assert store.read_ranges(ref.key, ((tail, frame),)) == data[tail:]


def test_s3_settings_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="s3_bucket"):
        load_settings(env={"KLINIKA_STORAGE": "s3"}, data_dir=tmp_path)
    with pytest.raises(ConfigError, match="storage must be"):
        load_settings(env={"KLINIKA_STORAGE": "ftp"}, data_dir=tmp_path)


def test_the_secret_key_can_come_from_a_file(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = s3_env(request)
    secret = tmp_path / "s3.secret"
    secret.write_text(env.pop("KLINIKA_S3_SECRET_ACCESS_KEY") + "\n")
    env["KLINIKA_S3_SECRET_ACCESS_KEY_FILE"] = str(secret)
    settings = load_settings(env=env, data_dir=tmp_path / "data")
    assert SECRET_KEY not in repr(load_settings(env=s3_env(request), data_dir=tmp_path))
    store = open_blob_store(settings)
    assert store.check() is None
    assert store.read(store.put(b"x" * 100).key) == b"x" * 100


def test_the_store_going_away_rejects_clearly_and_indexes_nothing(
    own_seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    env = own_seaweedfs.env("down") | {"KLINIKA_S3_RETRY_SECONDS": "1"}
    with Runtime(load_settings(env=env, data_dir=tmp_path / "data")) as runtime:
        archive = runtime.archive
        assert archive.store(make_instance()).status == "stored"
        own_seaweedfs.kill()
        started = time.monotonic()
        outcomes = archive.store_many([make_instance() for _ in range(3)])
        assert time.monotonic() - started < 30  # retries end; the caller is told
        assert {(o.status, o.reason) for o in outcomes} == {("rejected", "storage-unavailable")}
        assert all(own_seaweedfs.endpoint in (o.message or "") for o in outcomes)
        with archive.database.reader.connect() as connection:
            indexed = connection.execute(sa.select(sa.func.count()).select_from(schema.instances))
            assert indexed.scalar_one() == 1  # only the one stored before
        problem = runtime.blobs.check()
        assert problem and "cannot be reached" in problem
        with pytest.raises(StorageUnavailable):
            runtime.blobs.read(hashlib.sha256(b"anything").hexdigest())
        own_seaweedfs.start()  # back on the same ports and data: what was acknowledged is there
        assert runtime.blobs.check() is None
        assert len(list(runtime.blobs.blob_keys())) == 1


def test_a_new_blob_folder_is_fsynced_into_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob is durable only if the ``ab/cd`` folders that hold it are: each folder the
    store creates has its entry fsynced into its parent, then the blob's own entry."""
    from klinika.storage import files

    synced: list[Path] = []
    real_fsync_dir = files._fsync_dir
    monkeypatch.setattr(
        files, "_fsync_dir", lambda path: (synced.append(path), real_fsync_dir(path))
    )
    store = files.FileStore(tmp_path / "blobs")
    data = make_instance(rows=8, columns=8)
    key = store.put(data).key
    root = tmp_path / "blobs"
    assert synced == [root, root / key[:2], root / key[:2] / key[2:4]]
    synced.clear()
    other = make_instance(rows=8, columns=9)
    other_key = hashlib.sha256(other).hexdigest()
    first_level_is_new = not (root / other_key[:2]).exists()
    store.put(other)
    first, second = root / other_key[:2], root / other_key[:2] / other_key[2:4]
    expected = [root, first, second] if first_level_is_new else [first, second]
    assert synced == expected
