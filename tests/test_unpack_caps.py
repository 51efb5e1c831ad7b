"""Archives are unpacked under caps, checked while they stream: bytes, members, depth, and nothing that leads out.

raid's check of a project upload (`unpack_checked`: a plain tar for the container engine) and rai get's
(`unpack` into DEST) are the same `ArchiveCheck`. The archives here are crafted the way a hostile
student (or a hostile job writing /build) would craft them.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from rai.client.packing import pack_directory
from rai.domain.archive import check_archive, unpack, unpack_checked
from rai.domain.archive_check import ArchiveLimits, ArchiveRefused, upload_refusal
from rai.errors import UserError

MiB = 1024**2
SMALL = ArchiveLimits(max_bytes=10 * MiB, max_files=50, max_depth=8)


class Zeros(io.RawIOBase):
    """`n` zero bytes, read a chunk at a time (a 50 MiB member without 50 MiB in memory)."""

    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)


def member(name: str, type=tarfile.REGTYPE, size: int = 0, linkname: str = "", data=None):
    info = tarfile.TarInfo(name)
    info.type = type
    info.size = size
    info.linkname = linkname
    info.mode = 0o755 if type == tarfile.DIRTYPE else 0o644
    if data is None and size:
        data = Zeros(size)
    return info, data


def archive(path: Path, *members) -> Path:
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f) as zw:
        with tarfile.open(fileobj=zw, mode="w|", format=tarfile.PAX_FORMAT) as t:
            for info, data in members:
                t.addfile(info, data)
    return path


def names_in(tar_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar_path, "r:") as t:
        return {m.name: m for m in t}


def refused(tmp_path, path: Path, limits: ArchiveLimits = SMALL) -> ArchiveRefused:
    with pytest.raises(ArchiveRefused) as e:
        unpack_checked(path, tmp_path / "src.tar", limits)
    return e.value


# --- the limits -------------------------------------------------------------------------------------


def test_a_zstd_bomb_is_refused_when_its_member_header_comes_and_nothing_is_written(tmp_path):
    bomb = archive(tmp_path / "bomb.tar.zst", member("rai_build.yml", size=5, data=io.BytesIO(b"x: 1\n")),
                   member("data/zeros.bin", size=50 * MiB))
    assert bomb.stat().st_size < 64 * 1024  # 50 MiB of zeros compress to a few KiB
    started = time.monotonic()
    e = refused(tmp_path, bomb)
    assert e.kind == "max_bytes" and e.reason == "unpacks to more than 10.0MiB"
    assert time.monotonic() - started < 2  # refused at the header: the 50 MiB were never decompressed
    assert (tmp_path / "src.tar").stat().st_size < 1 * MiB
    assert upload_refusal(e) == ("refused: the project unpacks to more than 10.0MiB (docker.upload_limit); "
                                 "leave large data out with .raiignore")


def test_a_bomb_of_many_small_members_stops_at_the_limit(tmp_path):
    bomb = archive(tmp_path / "bomb.tar.zst", *[member(f"f{i:02}.bin", size=1 * MiB) for i in range(50)])
    e = refused(tmp_path, bomb, ArchiveLimits(max_bytes=10 * MiB))
    assert e.kind == "max_bytes"
    # the plain tar holds the members up to the limit, never more than the limit and a little tar overhead
    assert (tmp_path / "src.tar").stat().st_size <= 11 * MiB


def test_a_bomb_hidden_in_a_pax_header_is_refused_before_tarfile_reads_it_whole(tmp_path):
    info, _ = member("x.txt")
    info.pax_headers = {"comment": "0" * (1 * MiB)}
    e = refused(tmp_path, archive(tmp_path / "pax.tar.zst", (info, None)))
    assert e.kind == "corrupt" and "header record" in e.detail
    assert upload_refusal(e) == "refused: the upload is not a valid tar.zst archive; submit again with rai"


def test_the_decompressed_stream_itself_is_capped(tmp_path):
    """Bytes that are no member's content count too (here pax records, member after member):
    decompression stops a little past max_bytes, not at the end of the stream."""
    members = []
    for i in range(400):
        info, _ = member(f"f{i:03}.txt")
        info.pax_headers = {"comment": "x" * (12 * 1024)}
        members.append((info, None))
    path = archive(tmp_path / "records.tar.zst", *members)
    e = refused(tmp_path, path, ArchiveLimits(max_bytes=64 * 1024))
    assert e.kind == "max_bytes" and e.reason == "unpacks to more than 64.0KiB"
    assert len(names_in(tmp_path / "src.tar")) < 300  # of 400 (5 MiB of records): stopped after about 3 MiB


def test_header_records_have_a_budget(tmp_path):
    members = []
    for i in range(600):
        info, _ = member(f"f{i:03}.txt")
        info.pax_headers = {"comment": "x" * (15 * 1024)}
        members.append((info, None))
    e = refused(tmp_path, archive(tmp_path / "records.tar.zst", *members), ArchiveLimits())
    assert e.kind == "corrupt" and "header record" in e.detail


def test_a_pax_record_with_a_long_run_of_digits_is_refused_before_tarfile_searches_it(tmp_path):
    """Python's tarfile before 3.11.10 takes seconds on such a record (CVE-2024-6232)."""
    info, _ = member("x.txt")
    info.pax_headers = {"comment": "7" * (15 * 1024)}
    started = time.monotonic()
    e = refused(tmp_path, archive(tmp_path / "digits.tar.zst", (info, None)))
    assert time.monotonic() - started < 1
    assert e.kind == "corrupt" and "digits" in e.detail
    long_name = "2024/" + "1" * 64 + "/" + "x" * 80 + ".txt"  # over 100 bytes: a pax record holds the path
    ok = archive(tmp_path / "ok.tar.zst", member(long_name, size=1, data=io.BytesIO(b"x")))
    unpack_checked(ok, tmp_path / "ok.tar", SMALL)
    assert list(names_in(tmp_path / "ok.tar")) == [long_name]


def test_too_many_members(tmp_path):
    path = archive(tmp_path / "many.tar.zst", *[member(f"f{i}.txt") for i in range(51)])
    e = refused(tmp_path, path)
    assert e.kind == "max_files" and e.reason == "holds more than 50 files and folders"
    assert upload_refusal(e) == ("refused: the project holds more than 50 files and folders (docker.max_files); "
                                 "leave generated files out with .raiignore")
    assert unpack_checked(path, tmp_path / "ok.tar", ArchiveLimits(max_files=51)).members == 51


def test_too_deep(tmp_path):
    deep = "/".join(["d"] * 9)
    e = refused(tmp_path, archive(tmp_path / "deep.tar.zst", member(deep + "/f.txt")))
    assert e.kind == "max_depth" and e.reason.startswith("has a path more than 8 levels deep: d/d/d")
    assert "(docker.max_depth)" in upload_refusal(e)
    ok = archive(tmp_path / "ok.tar.zst", member("/".join(["d"] * 7) + "/f.txt"))
    assert unpack_checked(ok, tmp_path / "ok.tar", SMALL).files == 1


# --- members no project folder holds ---------------------------------------------------------------------


@pytest.mark.parametrize(("members", "reason"), [
    ([member("/etc/cron.d/x")], "holds an absolute path: /etc/cron.d/x"),
    ([member("../../x.txt")], "holds a path that leaves the project: ../../x.txt"),
    ([member("a/../../x.txt")], "holds a path that leaves the project: a/../../x.txt"),
    ([member("x", tarfile.SYMTYPE, linkname="/etc/passwd")], "holds a link to outside the project: x -> /etc/passwd"),
    ([member("sub/x", tarfile.SYMTYPE, linkname="../../etc")],
     "holds a link to outside the project: sub/x -> ../../etc"),
    ([member("x", tarfile.LNKTYPE, linkname="/etc/passwd")], "holds a link to outside the project: x -> /etc/passwd"),
    ([member("x", tarfile.LNKTYPE, linkname="../etc/passwd")],
     "holds a link to outside the project: x -> ../etc/passwd"),
    ([member("x", tarfile.LNKTYPE, linkname="later.txt"), member("later.txt")],
     "holds a hard link to a file that is not before it in the archive: x -> later.txt"),
    ([member("d", tarfile.DIRTYPE), member("x", tarfile.LNKTYPE, linkname="d")],
     "holds a hard link to a file that is not before it in the archive: x -> d"),
    # links through links: "d" is the root, so "d/.." is above it
    ([member("d", tarfile.SYMTYPE, linkname="."), member("e", tarfile.SYMTYPE, linkname="d/..")],
     "holds a link to outside the project: e -> d/.."),
    # the same, the other way round: harmless when it comes, leading out once "b" is known (checked at the end)
    ([member("a", tarfile.SYMTYPE, linkname="b/.."), member("b", tarfile.SYMTYPE, linkname=".")],
     "holds a link to outside the project: a -> b/.."),
    ([member("loop", tarfile.SYMTYPE, linkname="loop/x")],
     "holds links that loop (or chain more than 40 deep): loop -> loop/x"),
    ([member("a", tarfile.SYMTYPE, linkname="b"), member("b", tarfile.SYMTYPE, linkname="a")],
     "holds links that loop (or chain more than 40 deep): b -> a"),
    ([member("x"), member("x", tarfile.SYMTYPE, linkname="y")], "holds x twice, once as a link"),
    ([member("f"), member("f/g")], "holds f/g inside f, which is a file"),
    ([member("dev/sda", tarfile.BLKTYPE)], "holds a device file: dev/sda"),
    ([member("null", tarfile.CHRTYPE)], "holds a device file: null"),
    ([member("pipe", tarfile.FIFOTYPE)], "holds a pipe (FIFO): pipe"),
    ([member("n" * 256)], f"holds a name longer than 255 bytes: {'n' * 120}…"),
    ([member("x", tarfile.SYMTYPE, linkname="a/" * 2049)], "holds a link to a path longer than 4096 bytes: x"),
])
def test_members_no_project_holds_are_refused_by_name(tmp_path, members, reason):
    path = archive(tmp_path / "evil.tar.zst", member("main.sh", size=3, data=io.BytesIO(b"ok\n")), *members)
    e = refused(tmp_path, path)
    assert e.kind == "unsafe"
    assert e.reason == reason
    assert upload_refusal(e).startswith(f"refused: your archive {reason}; ")


def test_a_path_longer_than_linux_takes_is_refused(tmp_path):
    e = refused(tmp_path, archive(tmp_path / "long.tar.zst", member("/".join(["n" * 250] * 17))), ArchiveLimits())
    assert e.kind == "unsafe" and e.reason == "holds a path longer than 4096 bytes: " + "n" * 120 + "…"


def test_a_project_folder_with_links_inside_it_is_accepted(tmp_path):
    proj = tmp_path / "proj"
    (proj / "src" / "lib").mkdir(parents=True)
    (proj / "rai_build.yml").write_text("rai: {version: 0.2}\n")
    (proj / "src" / "lib" / "util.h").write_text("#pragma once\n")
    (proj / "src" / "util.h").symlink_to("lib/util.h")
    (proj / "include").symlink_to("src/lib")
    (proj / "top.h").symlink_to("./include/../src/lib/util.h")
    (proj / "dangling").symlink_to("not/there/yet")
    os.link(proj / "rai_build.yml", proj / "spec.yml")  # tar.add stores the second name as a hard link
    packed = tmp_path / "proj.tar.zst"
    pack_directory(proj, packed)
    stats = unpack_checked(packed, tmp_path / "src.tar", ArchiveLimits(4 * 1024**3, 100_000, 64))
    got = names_in(tmp_path / "src.tar")
    assert sorted(got) == ["dangling", "include", "rai_build.yml", "spec.yml", "src", "src/lib", "src/lib/util.h",
                           "src/util.h", "top.h"]
    assert got["src/util.h"].issym() and got["src/util.h"].linkname == "lib/util.h"
    assert got["include"].issym() and got["include"].linkname == "src/lib"
    assert got["spec.yml"].islnk() and got["spec.yml"].linkname == "rai_build.yml"
    assert got["src/lib/util.h"].isreg() and got["src/lib/util.h"].size == len("#pragma once\n")
    assert stats.members == 9
    with tarfile.open(tmp_path / "src.tar", "r:") as t:
        assert t.extractfile("rai_build.yml").read() == b"rai: {version: 0.2}\n"


def test_the_plain_tar_holds_only_what_was_checked(tmp_path):
    """Names normalized, setuid bits and odd member kinds gone: the engine sees the members the check saw."""
    info, data = member("./a//b.sh", size=3, data=io.BytesIO(b"hi\n"))
    info.mode = 0o4755
    path = archive(tmp_path / "a.tar.zst", member(".", tarfile.DIRTYPE), member("a", tarfile.DIRTYPE), (info, data))
    unpack_checked(path, tmp_path / "src.tar", SMALL)
    got = names_in(tmp_path / "src.tar")
    assert sorted(got) == ["a", "a/b.sh"]
    assert got["a/b.sh"].mode == 0o755


@pytest.mark.parametrize("content", [b"", b"not an archive at all\n" * 100,
                                     zstandard.ZstdCompressor().compress(b"zstd, but no tar inside" * 100)])
def test_not_a_tar_zst_is_refused_with_a_message_for_the_student(tmp_path, content):
    path = tmp_path / "upload.tar.zst"
    path.write_bytes(content)
    e = refused(tmp_path, path)
    assert e.kind == "corrupt"
    assert upload_refusal(e) == "refused: the upload is not a valid tar.zst archive; submit again with rai"


def test_an_archive_cut_short_is_corrupt_not_a_smaller_project(tmp_path):
    whole = tmp_path / "whole.tar"
    with tarfile.open(whole, "w", format=tarfile.PAX_FORMAT) as t:
        for name in ("a.txt", "b.txt"):
            info, data = member(name, size=600, data=io.BytesIO(b"y" * 600))
            t.addfile(info, data)
    raw = whole.read_bytes()
    for cut in (1024 + 512, 1024 + 700, 2048 + 512):  # after a.txt's data (a member boundary), in b.txt's data
        path = tmp_path / f"cut{cut}.tar.zst"
        path.write_bytes(zstandard.ZstdCompressor().compress(raw[:cut]))
        assert refused(tmp_path, path).kind == "corrupt", cut
    path = tmp_path / "ok.tar.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(raw))
    assert unpack_checked(path, tmp_path / "ok.tar", SMALL).files == 2


# --- rai get: the same caps on the student's disk --------------------------------------------------------


def test_rai_get_refuses_a_bomb_and_writes_nothing(tmp_path):
    bomb = archive(tmp_path / "build.tar.zst", member("build", tarfile.DIRTYPE),
                   member("build/small.txt", size=3, data=io.BytesIO(b"ok\n")),
                   member("build/zeros.bin", size=50 * MiB))
    dest = tmp_path / "out"
    with pytest.raises(UserError, match=r"too big to unpack: it unpacks to more than 10.0MiB") as e:
        unpack(bomb, dest, strip_top="build", limits=ArchiveLimits(max_bytes=10 * MiB))
    assert "rai get unpacks at most 10.0MiB" in str(e.value)
    assert not dest.exists()  # checked whole before the first byte is written
    assert unpack(bomb, dest, strip_top="build", limits=ArchiveLimits(max_bytes=60 * MiB)) == 2
    assert (dest / "zeros.bin").stat().st_size == 50 * MiB


@pytest.mark.parametrize(("members", "says"), [
    ([member("build/x", tarfile.SYMTYPE, linkname="/etc/passwd")], "a link to outside the project: x -> /etc/passwd"),
    ([member("build/x", tarfile.SYMTYPE, linkname="../..")], "a link to outside the project: x -> ../.."),
    ([member("build/x", tarfile.LNKTYPE, linkname="/etc/passwd")], "a link to outside the project: x -> /etc/passwd"),
    ([member("build/../../escape.txt")], "a path that leaves the project"),
    ([member("/tmp/escape.txt")], "an absolute path"),
    ([member("build/null", tarfile.CHRTYPE)], "a device file: null"),
    ([member(f"build/f{i}") for i in range(11)], "more than 10 files and folders"),
    ([member("build/" + "/".join(["d"] * 20))], "more than 8 levels deep"),
])
def test_rai_get_refuses_hostile_outputs_and_writes_nothing(tmp_path, members, says):
    path = archive(tmp_path / "build.tar.zst", member("build", tarfile.DIRTYPE),
                   member("build/a.txt", size=2, data=io.BytesIO(b"a\n")), *members)
    dest = tmp_path / "out"
    with pytest.raises(UserError, match="damaged or unsafe|too big") as e:
        unpack(path, dest, strip_top="build", limits=ArchiveLimits(max_bytes=MiB, max_files=10, max_depth=8))
    assert says in str(e.value)
    assert not dest.exists()
    assert not (tmp_path / "escape.txt").exists()


def test_rai_get_does_not_write_through_a_link_already_in_dest(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)  # the student's own link, leading out of DEST
    path = archive(tmp_path / "build.tar.zst", member("build", tarfile.DIRTYPE),
                   member("build/sub/f.txt", size=2, data=io.BytesIO(b"x\n")))
    with pytest.raises(UserError, match="damaged or unsafe"):
        unpack(path, dest, strip_top="build")
    assert list(outside.iterdir()) == []


def test_rai_get_unpacks_links_inside_and_hard_links(tmp_path):
    path = archive(tmp_path / "build.tar.zst", member("build", tarfile.DIRTYPE), member("build/lib", tarfile.DIRTYPE),
                   member("build/lib/a.txt", size=2, data=io.BytesIO(b"a\n")),
                   member("build/a.txt", tarfile.SYMTYPE, linkname="lib/a.txt"),
                   member("build/b.txt", tarfile.LNKTYPE, linkname="build/lib/a.txt"))
    assert check_archive(path, ArchiveLimits(), strip_top="build").members == 4
    dest = tmp_path / "out"
    assert unpack(path, dest, strip_top="build") == 2
    assert (dest / "a.txt").is_symlink() and (dest / "a.txt").read_text() == "a\n"
    assert (dest / "b.txt").read_text() == "a\n"
    assert (dest / "b.txt").stat().st_ino == (dest / "lib/a.txt").stat().st_ino


def test_rai_get_refuses_what_is_not_an_archive(tmp_path):
    path = tmp_path / "build.tar.zst"
    path.write_bytes(b"<html>a proxy's error page</html>")
    with pytest.raises(UserError, match="damaged or unsafe: it is not a valid tar.zst archive"):
        unpack(path, tmp_path / "out", strip_top="build")


# --- through a real raid ----------------------------------------------------------------------------------


def test_a_project_that_unpacks_past_upload_limit_is_refused_by_raid_and_leaves_nothing(rai_env):
    env = rai_env
    env.settings["docker"]["upload_limit"] = "10m"
    env.write_config()
    env.start_raid()
    ada = env.account("ada")
    proj = env.project(["echo should-never-run"], name="bomb")
    with open(proj / "zeros.bin", "wb") as f:  # 50 MiB of zeros: a few KiB once rai packs it
        f.truncate(50 * MiB)
    r = env.rai(ada, "submit", "-p", str(proj))
    assert r.returncode == 1, r.stderr
    assert "refused" in r.stderr
    assert "the project unpacks to more than 10.0MiB (docker.upload_limit)" in r.stderr
    assert ".raiignore" in r.stderr
    assert "should-never-run" not in r.stdout
    assert "internal error" not in r.stderr
    from_raid = r.stderr.split("» packing ", 1)[1].split("\n", 1)[1]  # rai's own first line names the project folder
    for leak in (str(env.tmp), "/var/lib", "overlay", "Traceback"):
        assert leak not in from_raid
    assert str(env.tmp / "work") not in r.stderr
    work = env.tmp / "work"
    assert not work.exists() or list(work.rglob("rai-*")) == []  # the partial tar went with its folder
    ok = env.project(["echo fine after the bomb"], name="ok")
    r = env.rai(ada, "submit", "-p", str(ok))
    assert r.returncode == 0, r.stderr + env.raid_output()[-2000:]
    assert "fine after the bomb" in r.stdout
    assert list(work.rglob("rai-*")) == []
