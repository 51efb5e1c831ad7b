"""The ObjectStore port: LocalStore (embedded) and S3Store (moto_server over HTTP) pass the same tests."""

from __future__ import annotations

import hashlib
import os
import urllib.request

import pytest

from rai.backends.s3_store import S3Store
from rai.backends.store import LocalStore
from rai.domain.object_keys import output_key, upload_key
from rai.errors import NotFound, UserError


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return S3Store(request.getfixturevalue("s3_config"))


def write(path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def test_a_file_goes_up_and_comes_back_whole_with_progress(store, tmp_path):
    data = write(tmp_path / "a.tar.zst", 11 * 1024**2 + 17)  # several multipart parts on S3
    sent, got = [], []
    key = upload_key("ada", "j1")
    store.put_file(key, tmp_path / "a.tar.zst", progress=sent.append)
    assert sum(sent) == len(data) and len(sent) > 1
    store.get_file(key, tmp_path / "b", progress=got.append)
    assert hashlib.sha256((tmp_path / "b").read_bytes()).digest() == hashlib.sha256(data).digest()
    assert sum(got) == len(data)


def test_exists_delete_and_missing_objects(store, tmp_path):
    write(tmp_path / "f", 100)
    key = output_key("ada", "j2")
    assert not store.exists(key)
    store.put_file(key, tmp_path / "f")
    assert store.exists(key)
    store.put_file(key, tmp_path / "f")  # overwriting is fine
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting twice is fine
    with pytest.raises(NotFound):
        store.get_file(key, tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_the_url_serves_the_object(store, tmp_path):
    data = write(tmp_path / "f", 1000)
    key = output_key("ada", "j3")
    store.put_file(key, tmp_path / "f")
    with urllib.request.urlopen(store.url(key), timeout=10) as r:
        assert r.read() == data


@pytest.mark.parametrize("key", ["/etc/passwd", "uploads/../../x", ""])
def test_keys_that_escape_are_refused(store, tmp_path, key):
    write(tmp_path / "f", 10)
    with pytest.raises(UserError):
        store.put_file(key, tmp_path / "f")


def test_a_consumed_file_is_stored_whole_and_the_caller_owns_nothing_after(store, tmp_path):
    """rai-server hands its spooled upload over with consume=True: stored whole (a local store moves it in,
    no copy), readable by the store's owner only, and whatever is left at the path is the caller's to delete."""
    data = write(tmp_path / "spooled", 3 * 1024**2)
    key = upload_key("ada", "j4")
    store.put_file(key, tmp_path / "spooled", consume=True)
    store.get_file(key, tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data
    if isinstance(store, LocalStore):
        assert not (tmp_path / "spooled").exists()  # moved, not copied
        assert (store.root / key).stat().st_mode & 0o777 == 0o600
