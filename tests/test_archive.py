"""Project archives: .raiignore honoured, the profile never packed, outputs unpacked safely."""

from __future__ import annotations

import tarfile

import pytest
import zstandard

from rai.archive import file_sha256, pack_directory, unpack
from rai.errors import UserError


def names(archive):
    with open(archive, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as zr:
        with tarfile.open(fileobj=zr, mode="r|") as t:
            return sorted(m.name for m in t)


def test_raiignore_and_the_profile_are_left_out(tmp_path):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "data").mkdir()
    (proj / "rai_build.yml").write_text("x")
    (proj / "src" / "main.cu").write_text("x")
    (proj / "src" / "main.o").write_text("x")
    (proj / "src" / "keep.o").write_text("x")
    (proj / "data" / "big.bin").write_text("x")
    (proj / ".rai_profile").write_text("secret")
    (proj / "my.profile").write_text("secret")
    (proj / ".raiignore").write_text("# comment\n*.o\n!keep.o\ndata/\n")
    res = pack_directory(proj, tmp_path / "a.tar.zst", exclude=[proj / "my.profile"])
    got = names(tmp_path / "a.tar.zst")
    assert got == [".raiignore", "rai_build.yml", "src", "src/keep.o", "src/main.cu"]
    assert res.files == 4
    assert res.sha256 == file_sha256(tmp_path / "a.tar.zst")


def test_an_empty_project_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no files"):
        pack_directory(tmp_path / "empty", tmp_path / "a.tar.zst")


def test_unpack_strips_the_build_folder_and_refuses_escapes(tmp_path):
    src = tmp_path / "b"
    (src / "build" / "sub").mkdir(parents=True)
    (src / "build" / "sub" / "out.txt").write_text("result")
    archive = tmp_path / "o.tar.zst"
    with open(archive, "wb") as f, zstandard.ZstdCompressor().stream_writer(f) as zw:
        with tarfile.open(fileobj=zw, mode="w|") as t:
            t.add(src / "build", arcname="build")
    assert unpack(archive, tmp_path / "dest", strip_top="build") == 1
    assert (tmp_path / "dest" / "sub" / "out.txt").read_text() == "result"

    evil = tmp_path / "evil.tar.zst"
    with open(evil, "wb") as f, zstandard.ZstdCompressor().stream_writer(f) as zw:
        with tarfile.open(fileobj=zw, mode="w|") as t:
            info = tarfile.TarInfo("../escape.txt")
            info.size = 0
            t.addfile(info)
    with pytest.raises(UserError, match="damaged or unsafe"):
        unpack(evil, tmp_path / "dest2")
    assert not (tmp_path / "escape.txt").exists()
