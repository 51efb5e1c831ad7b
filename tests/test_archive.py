"""Project archives: .raiignore honoured, the profile never packed, outputs unpacked safely."""

from __future__ import annotations

import os
import tarfile

import pytest
import zstandard

from rai.client.packing import pack_directory
from rai.domain.archive import file_sha256, unpack
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


# --- packing: what tarfile.add writes, streamed ------------------------------------------------------------


def members(archive):
    """(name, type, size, mode, linkname, uid, gid, uname, gname, content) of each member, in order."""
    out = []
    with open(archive, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as zr:
        with tarfile.open(fileobj=zr, mode="r|") as t:
            for m in t:
                data = t.extractfile(m).read() if m.isreg() else None
                out.append((m.name, m.type, m.size, m.mode, m.linkname, m.uid, m.gid, m.uname, m.gname, data,
                            int(m.mtime)))
    return out


def tricky_project(root):
    proj = root / "proj"
    (proj / "src" / "sub").mkdir(parents=True)
    (proj / "src" / "a.c").write_text("int main() { return 0; }\n")
    (proj / "src" / "empty").write_bytes(b"")
    (proj / "src" / "sub" / "big.bin").write_bytes(os.urandom(3 * 1024**2 + 7))  # read a MiB at a time
    (proj / "src" / "exact.bin").write_bytes(os.urandom(1024**2))
    (proj / "src" / "ünïcode-名前.txt").write_text("u")
    (proj / ("L" * 150 + ".txt")).write_text("a pax name")
    deep = proj / "src" / ("d" * 90) / ("e" * 90)
    deep.mkdir(parents=True)
    (deep / "f.txt").write_text("x")
    os.symlink("a.c", proj / "src" / "to_file")
    os.symlink("sub", proj / "src" / "to_dir")
    os.symlink("nowhere", proj / "src" / "dangling")
    os.link(proj / "src" / "a.c", proj / "src" / "hard.c")
    os.mkfifo(proj / "src" / "fifo")
    return proj


def test_packed_members_are_what_tarfile_add_writes(tmp_path):
    """The packer writes its own tar stream: the same members, headers and contents as tarfile.add (the old
    packer), in os.walk's order; only the mtime is whole seconds (raid keeps no more)."""
    proj = tricky_project(tmp_path)
    res = pack_directory(proj, tmp_path / "a.tar.zst")
    got = members(tmp_path / "a.tar.zst")
    reference = tmp_path / "ref.tar.zst"
    with open(reference, "wb") as f, zstandard.ZstdCompressor().stream_writer(f) as zw:
        with tarfile.open(fileobj=zw, mode="w|", format=tarfile.PAX_FORMAT) as t:
            for root, dirs, files in os.walk(proj):
                dirs.sort()
                rel = os.path.relpath(root, proj)
                for name in dirs + sorted(files):
                    t.add(os.path.join(root, name), arcname=name if rel == "." else f"{rel}/{name}",
                          recursive=False)
    assert got == members(reference)
    assert got[0][0] == "src" and got[1][0] == "L" * 150 + ".txt"  # a folder's subfolders, then its files
    assert res.files == 9  # 7 files, the hard link, the link to a file
    assert res.sha256 == file_sha256(tmp_path / "a.tar.zst")
    with open(tmp_path / "a.tar.zst", "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as zr:
        assert len(zr.read()) % tarfile.RECORDSIZE == 0  # ended as tarfile ends an archive


def test_a_plain_members_header_is_byte_for_byte_tarfiles(tmp_path):
    """The packer writes the header of a member that needs no pax record itself (a fifth of tarfile's time):
    the very bytes tarfile's tobuf writes; any other member is left to tarfile."""
    from rai.client.packing import _tarinfo, _ustar, _walk
    from rai.domain.ignore import IgnoreRules

    proj = tricky_project(tmp_path)
    infos = [i for p, r, st in _walk(proj, IgnoreRules.for_project(proj), set())
             if (i := _tarinfo(p, r, st, {})) is not None]
    device = tarfile.TarInfo("dev/null0")
    device.type, device.devmajor, device.devminor, device.mode = tarfile.CHRTYPE, 1, 3, 0o620
    big = tarfile.TarInfo("big.bin")
    big.size, big.uid = 9 << 30, 3_000_000  # more than 8 GB and a uid over 7 octal digits: pax records
    infos += [device, big]
    written = {i.name: _ustar(i) for i in infos}
    for info in infos:
        if written[info.name] is not None:
            assert written[info.name] == info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    left_to_tarfile = sorted(name for name, block in written.items() if block is None)
    deep = "src/" + "d" * 90 + "/" + "e" * 90
    assert left_to_tarfile == sorted(["L" * 150 + ".txt", "big.bin", "src/ünïcode-名前.txt", deep, deep + "/f.txt"])
    assert written["dev/null0"] is not None and written["src"] is not None  # a device, a folder


def test_the_profile_is_left_out_by_its_inode_however_it_is_reached(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "rai_build.yml").write_text("x")
    profile = tmp_path / "elsewhere.profile"
    profile.write_text("secret")
    os.link(profile, proj / "copy.yml")  # a hard link: the same file under another name
    os.symlink(profile, proj / "link.yml")
    inside = proj / "mine"
    inside.write_text("secret too")
    res = pack_directory(proj, tmp_path / "a.tar.zst", exclude=[profile, inside, tmp_path / "no-such-file"])
    assert names(tmp_path / "a.tar.zst") == ["rai_build.yml"]
    assert res.files == 1


def test_a_stream_says_there_is_nothing_to_upload_before_its_first_byte(tmp_path):
    from rai.client.packing import PackStream

    proj = tmp_path / "proj"
    (proj / "a" / "b").mkdir(parents=True)  # folders only
    (proj / "x.o").write_text("x")
    (proj / ".raiignore").write_text("*.o\n.raiignore\n")
    got = []
    with PackStream(proj) as stream, pytest.raises(UserError, match="no files to upload"):
        for chunk in stream:
            got.append(chunk)
    assert got == []
    with pytest.raises(UserError, match="is not a directory"):
        PackStream(tmp_path / "nope")


def test_a_stream_is_the_archive_pack_directory_writes_and_stops_when_closed(tmp_path):
    import hashlib

    from rai.client.packing import PackStream

    proj = tricky_project(tmp_path)
    with PackStream(proj) as stream:
        data = b"".join(stream)
    res = stream.result
    assert res is not None and res.size == len(data) and res.sha256 == hashlib.sha256(data).hexdigest()
    (tmp_path / "s.tar.zst").write_bytes(data)
    pack_directory(proj, tmp_path / "p.tar.zst")
    assert members(tmp_path / "s.tar.zst") == members(tmp_path / "p.tar.zst")

    for i in range(40):
        (proj / f"more{i}.bin").write_bytes(os.urandom(1024**2))
    stream = PackStream(proj)
    next(iter(stream))
    stream.close()  # a reader that stops (the upload refused): the packer ends, nothing waits on it
    assert not stream._thread.is_alive() and stream.result is None
