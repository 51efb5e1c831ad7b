"""The container executor on a real engine (Podman here, Docker in production): real containers, no mocks."""

from __future__ import annotations

import io
import secrets
import tarfile
import time
from pathlib import Path

import docker.errors
import docker.types
import pytest

from rai.config import DockerConfig
from rai.domain.models import JobState
from rai.errors import ServiceUnavailable
from raid.container_output import JobUpload, OutputDemux, Uploading
from raid.executor import Executor, ImageNotFound, RunResult, RunSpec, _dirs_tar
from raid.job_script import job_script, marker_token, token_tar

pytestmark = pytest.mark.timeout(120)


class RecordingSink:
    """Records what a user would see: output bytes per stream and status lines, in order."""

    def __init__(self):
        self.events: list[tuple[str, bytes | str]] = []

    def output(self, kind: str, data: bytes) -> None:
        assert kind in ("stdout", "stderr")
        assert isinstance(data, bytes) and data
        self.events.append((kind, data))

    def status(self, text: str) -> None:
        self.events.append(("status", text))

    def text(self, kind: str = "stdout") -> str:
        return b"".join(d for k, d in self.events if k == kind).decode()

    def statuses(self) -> list[str]:
        return [d for k, d in self.events if k == "status"]


def make_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            ti.uid = ti.gid = 1000
            ti.mtime = int(time.time())
            t.addfile(ti, io.BytesIO(data))
    return path


@pytest.fixture
def executor(docker_client) -> Executor:
    return Executor(docker_client)


@pytest.fixture
def job(tmp_path, test_image, executor):
    """job(commands, **RunSpec fields) -> (RunResult, RecordingSink, build archive path)."""
    source = make_tar(tmp_path / "src.tar", {"hello.txt": b"hello from src\n", "sub/data.csv": b"a,b\n1,2\n"})

    def run(commands: list[str], should_cancel=lambda: None, **fields) -> tuple[RunResult, RecordingSink, Path]:
        job_id = "t" + secrets.token_hex(5)
        image = fields.pop("image", test_image)
        spec = RunSpec(job_id=job_id, image=image, commands=commands, env=fields.pop("env", {}),
                       source_tar=source, labels={"rai.node": "test-executor"}, **fields)
        sink = RecordingSink()
        archive = tmp_path / f"{job_id}-build.tar"
        result = executor.run(spec, sink, should_cancel, archive)
        assert executor.wait_removals(30)
        remaining = executor.client.containers.list(all=True, filters={"label": f"rai.job={job_id}"})
        assert remaining == [], "the container must be removed"
        return result, sink, archive

    return run


def archive_files(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}


# --- output ------------------------------------------------------------------------------------

def test_many_lines_arrive_complete_and_in_order(job):
    started = time.monotonic()
    result, sink, _ = job(["seq 1 20000"])
    assert result.state == JobState.succeeded, result
    assert result.exit_code == 0
    assert sink.text() == "".join(f"{i}\n" for i in range(1, 20001))
    assert sink.text("stderr") == ""
    assert time.monotonic() - started < 10


def test_the_engine_keeps_no_second_copy_of_the_output(job, docker_client):
    """raid keeps a job's output in its log; the engine writes no log file of its own on the node's disk (a
    job printing gigabytes would fill it, and writing it slowed the live log by a quarter)."""
    seen = []

    def look() -> None:
        for c in docker_client.containers.list(all=True, filters={"label": "rai.node=test-executor"}):
            seen.append(c.attrs["HostConfig"]["LogConfig"]["Type"])
            try:
                seen.append(c.logs())
            except docker.errors.APIError as e:  # Docker 501 "logging driver does not support reading", Podman 500
                seen.append(b"" if e.status_code in (500, 501) else e)
        return None

    result, sink, _ = job(["seq 1 5000", "sleep 1"], should_cancel=lambda: look() if not seen else None)
    assert result.state == JobState.succeeded and sink.text().count("\n") == 5000
    assert seen[0] == "none" and seen[1] == b"", seen


def test_stderr_is_told_apart_from_stdout(job):
    result, sink, _ = job(["echo out; echo err >&2; echo out2"])
    assert result.state == JobState.succeeded
    assert sink.text() == "out\nout2\n"
    assert sink.text("stderr") == "err\n"


def test_marker_token_never_reaches_the_output(job):
    result, sink, _ = job(["printf abc", "printf 'def\\037rai-'", "printf '\\037'", "echo; echo end"])
    assert result.state == JobState.succeeded, result
    out = b"".join(d for k, d in sink.events if k == "stdout")
    assert out == b"abcdef\x1frai-\x1f\nend\n"
    # each command announced before its output, none of the script's markers in between
    kinds = [(k, d) for k, d in sink.events]
    assert kinds[0] == ("status", "$ printf abc")
    assert sink.statuses() == ["$ printf abc", "$ printf 'def\\037rai-'", "$ printf '\\037'", "$ echo; echo end"]
    assert b"step" not in out and b" end " not in out


def test_demux_finds_markers_split_across_frames():
    token = marker_token(secrets.token_hex(16))
    got: list[tuple[str, bytes]] = []
    markers: list[tuple[str, list[str]]] = []
    demux = OutputDemux(token, lambda k, d: got.append((k, d)), lambda k, w: markers.append((k, w)))
    stream = b"partial" + token + b"step 2\nafter\x1f" + token + b"end 2 3 0\n" + b"tail\x1f"
    frames = b""
    for i in range(0, len(stream), 7):  # 7-byte stdout frames, stderr frames in between
        frames += b"\x01\0\0\0" + len(stream[i:i + 7]).to_bytes(4, "big") + stream[i:i + 7]
        if i == 14:
            frames += b"\x02\0\0\0\0\0\0\x03err"
        if i == 49:
            frames += b"\x02\0\0\0" + (len(token) + 4).to_bytes(4, "big") + token + b"eof\n"
    for i in range(0, len(frames), 5):  # and the socket hands them over 5 bytes at a time
        demux.feed(frames[i:i + 5])
    demux.flush()
    assert b"".join(d for k, d in got if k == "stdout") == b"partialafter\x1ftail\x1f"
    assert b"".join(d for k, d in got if k == "stderr") == b"err"
    assert ("stdout", ["step", "2"]) in markers and ("stderr", ["eof"]) in markers
    assert [m for m in markers if m[0] == "stdout"] == [("stdout", ["step", "2"]), ("stdout", ["end", "2", "3", "0"])]


def test_no_command_can_read_the_marker_token_or_fake_the_end(job):
    """The token is in no file, argument or environment a command can read: a job that looks for it finds
    nothing, and a forged end marker with a guessed token is just output."""
    look = ("cat /proc/1/cmdline /proc/1/environ /.rai-token 2>/dev/null | tr '\\000' '\\n' | "
            "grep -o 'rai-[0-9a-f]\\{32\\}' || echo no-token-found")
    fake = "printf '\\037rai-%s end 0 0 -\\n' 0123456789abcdef0123456789abcdef; echo still-running"
    result, sink, _ = job([look, fake, "exit 4"])
    assert "no-token-found" in sink.text()
    assert "still-running" in sink.text() and result.state == JobState.failed and result.exit_code == 4


def test_job_script_quotes_commands():
    script = job_script(["echo 'a b' \"$HOME\"; exit 3"])
    assert "/bin/sh -c 'echo '\"'\"'a b'\"'\"' \"$HOME\"; exit 3'" in script


# --- commands ------------------------------------------------------------------------------------

def test_commands_run_in_order_in_build_with_src_uploaded(job):
    def broken_cancel_check():
        raise ConnectionError("redis is down")  # must not end the job

    result, sink, _ = job(["pwd", "cat /src/hello.txt /src/sub/data.csv", "cp -r /src/. /build/ && mkdir d && ls"],
                          should_cancel=broken_cancel_check)
    assert result.state == JobState.succeeded, result
    assert result.message == "all 3 commands succeeded"
    assert sink.text() == "/build\nhello from src\na,b\n1,2\nd\nhello.txt\nsub\n"
    assert sink.statuses() == ["$ pwd", "$ cat /src/hello.txt /src/sub/data.csv",
                               "$ cp -r /src/. /build/ && mkdir d && ls"]


def test_the_project_arrives_whole_in_one_upload_with_long_names_and_links(executor, test_image, tmp_path):
    """The folders, the token and the project go into the container in one put_archive: a name longer than
    a tar header holds, a hard link and a symbolic link arrive under /src as they were packed."""
    long = "d" * 60 + "/" + "f" * 80 + ".txt"
    source = tmp_path / "src.tar"
    with tarfile.open(source, "w", format=tarfile.PAX_FORMAT) as t:
        for name, data in ((long, b"long name\n"), ("a.txt", b"first\n")):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            t.addfile(ti, io.BytesIO(data))
        hard = tarfile.TarInfo("hard.txt")
        hard.type, hard.linkname = tarfile.LNKTYPE, "a.txt"
        soft = tarfile.TarInfo("soft.txt")
        soft.type, soft.linkname = tarfile.SYMTYPE, "a.txt"
        t.addfile(hard)
        t.addfile(soft)
    spec = RunSpec(job_id="t" + secrets.token_hex(5), image=test_image, env={}, source_tar=source,
                   labels={"rai.node": "test-executor"},
                   commands=[f"cat /src/{long} /src/hard.txt /src/soft.txt", "readlink /src/soft.txt",
                             "stat -c '%h' /src/a.txt", "ls -a / | grep -c rai-token || true"])
    sink = RecordingSink()
    result = executor.run(spec, sink, lambda: None, tmp_path / "build.tar")
    assert executor.wait_removals(30)
    assert result.state == JobState.succeeded, (result, sink.events)
    assert sink.text() == "long name\nfirst\nfirst\na.txt\n2\n0\n"


class _Refusing:
    """A container whose engine answers put_archive with `error` (the real engines here take every archive
    raid's own checks let through, so the refusal is played)."""

    def __init__(self, error: BaseException):
        self.error = error
        self.read = b""

    def put_archive(self, path, data):
        self.read = data.read()
        raise self.error


def test_the_upload_beside_the_attach_hands_the_engines_refusal_to_the_job_and_raises_the_rest(tmp_path):
    """The project goes in from a thread of its own while the attach is made: an engine's refusal comes back to
    the job's thread as a value (the job ends refused), an engine gone is raised there (the job ends with
    ServiceUnavailable); either way the upload is closed."""
    source = tmp_path / "src.tar"
    with tarfile.open(source, "w") as t:
        ti = tarfile.TarInfo("a.txt")
        ti.size = 3
        t.addfile(ti, io.BytesIO(b"hi\n"))
    refused = docker.errors.APIError("no such thing as /var/lib/containers/...")
    container = _Refusing(refused)
    upload = JobUpload(source, b"")
    assert Uploading(container, upload).result() is refused
    assert b"hi\n" in container.read and upload.closed
    gone = ConnectionError("the engine's socket went away")
    upload = JobUpload(source, b"")
    with pytest.raises(ConnectionError):
        Uploading(_Refusing(gone), upload).result()
    assert upload.closed


def test_a_failing_command_stops_the_job(job):
    result, sink, _ = job(["echo one", "echo two; exit 3", "echo three"])
    assert result.state == JobState.failed
    assert result.exit_code == 3
    assert result.failed_command == 2
    assert result.message == "command 2 (echo two; exit 3) exited with 3"
    assert sink.text() == "one\ntwo\n"
    assert "$ echo three" not in sink.statuses()


def test_environment_and_confinement(job):
    result, sink, _ = job(["echo $CI $RAI $RAI_SOURCE_DIR $RAI_BUILD_DIR $RAI_JOB_ID $FOO",
                           "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status", "ulimit -n"],
                          env={"FOO": "bar", "CI": "not-rai"})
    assert result.state == JobState.succeeded, result
    lines = sink.text().splitlines()
    words = lines[0].split()
    assert words[:4] == ["rai", "true", "/src", "/build"] and words[4].startswith("t") and words[5] == "bar"
    caps = int(lines[1].split()[1], 16)
    assert caps & ~0xFB == 0, f"capabilities beyond the safe set: {caps:x}"
    assert lines[2].split() == ["NoNewPrivs:", "1"]
    assert lines[3] == "1024"


# --- limits ------------------------------------------------------------------------------------

def test_time_limit(job):
    started = time.monotonic()
    result, sink, _ = job(["echo start", "sleep 30"], time_limit=2)
    assert time.monotonic() - started < 8
    assert result.state == JobState.timeout
    assert result.message == "time limit of 2s reached"
    assert 1.9 < result.duration < 4
    assert sink.text() == "start\n"


def test_memory_limit(job):
    result, sink, _ = job(["echo before", "awk 'BEGIN { s = \"x\"; while (1) s = s s }'", "echo after"],
                          memory_limit=32 << 20)
    assert result.state == JobState.oom, result
    assert result.failed_command == 2
    assert result.message.startswith("out of memory: the job's limit is 32 MiB")
    assert "after" not in sink.text()


def test_cancel(job):
    calls = []

    def should_cancel():
        calls.append(time.monotonic())
        return "cancelled by ada" if len(calls) > 3 else None

    started = time.monotonic()
    result, sink, _ = job(["sleep 30"], should_cancel=should_cancel)
    assert result.state == JobState.cancelled
    assert result.message == "cancelled by ada"
    assert time.monotonic() - started < 5
    assert result.exit_code is None


def test_network_off_by_default_and_on_when_asked(job, docker_client):
    result, sink, _ = job(["cat /proc/net/dev"])
    assert result.state == JobState.succeeded
    ifaces = [line.split(":")[0].strip() for line in sink.text().splitlines()[2:]]
    assert ifaces == ["lo"]
    if not any(n.name in ("bridge", "podman") for n in docker_client.networks.list()):
        pytest.skip("network off: checked; on: this engine has no bridge network to give a job "
                    "(./dev's dockerd runs with --bridge=none)")
    result, sink, _ = job(["cat /proc/net/dev"], network=True)
    ifaces = [line.split(":")[0].strip() for line in sink.text().splitlines()[2:]]
    assert "lo" in ifaces and len(ifaces) > 1


# --- /build --------------------------------------------------------------------------------------

def test_build_folder_comes_back(job):
    result, _, archive = job(["mkdir -p out && echo result > out/answer.txt", "echo log > run.log"])
    assert result.state == JobState.succeeded
    assert result.output_truncated is False
    files = archive_files(archive)
    assert files["build/out/answer.txt"] == b"result\n"
    assert files["build/run.log"] == b"log\n"


def test_an_empty_build_folder_is_not_asked_of_the_engine(job, monkeypatch):
    """A job that leaves nothing in /build gets the archive of the folder alone, as the engine would give it,
    without the copy that costs Podman ~80 ms; a dotfile, a dangling link or a /build replaced by a link is
    something to copy."""
    from docker.models.containers import Container

    copies: list[str] = []
    get_archive = Container.get_archive
    monkeypatch.setattr(Container, "get_archive", lambda self, path, **kw: copies.append(path) or
                        get_archive(self, path, **kw))
    result, _, archive = job(["echo printed only", "touch scratch && rm scratch"])
    assert result.state == JobState.succeeded and copies == []
    assert archive_members(archive) == [("build", tarfile.DIRTYPE)]
    for command, member in (("echo x > .hidden", "build/.hidden"), ("ln -s /nowhere dangling", "build/dangling"),
                            ("echo x > ..odd", "build/..odd")):
        result, _, archive = job([command])
        assert result.state == JobState.succeeded and copies[-1] == "/build"
        assert member in dict(archive_members(archive)), command
    result, _, archive = job(["mkdir /elsewhere && echo x > /elsewhere/f && cd / && rm -rf /build && "
                              "ln -s /elsewhere /build"])
    assert result.state == JobState.succeeded and len(copies) == 4  # not "empty": copied as before


def archive_members(archive: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(archive) as t:
        return [(m.name, m.type) for m in t]


def test_build_folder_comes_back_after_a_failure_and_a_timeout(job):
    result, _, archive = job(["echo partial > p.txt", "exit 1"])
    assert result.state == JobState.failed
    assert archive_files(archive)["build/p.txt"] == b"partial\n"
    result, _, archive = job(["echo partial > p.txt; sleep 30"], time_limit=1)
    assert result.state == JobState.timeout
    assert archive_files(archive)["build/p.txt"] == b"partial\n"


def test_a_job_whose_shell_the_kernel_kills_for_memory_ends_out_of_memory(job):
    """The OOM killer takes the job's own shell (made its first choice, after the hog started), so no end marker
    comes: the engine's word (Docker's OOMKilled) or the exit code 137 under a memory limit (Podman) says why."""
    hog = "(while [ ! -e /tmp/go ]; do sleep 0.05; done; exec awk 'BEGIN { s = \"x\"; while (1) s = s s }') &"
    result, sink, _ = job([f"{hog} echo 1000 > /proc/1/oom_score_adj && echo marked && touch /tmp/go; wait",
                           "echo after"], memory_limit=32 << 20, time_limit=30)
    assert sink.text() == "marked\n"
    assert result.state == JobState.oom, result
    assert result.message == "out of memory: the job's limit is 32 MiB"


def test_a_job_killed_from_outside_is_not_called_out_of_memory(executor, test_image, tmp_path):
    if not executor.engine_reports_oom:
        pytest.skip("Podman reports no OOM kills (State.OOMKilled stays false), so raid reads an exit 137 under a "
                    "memory limit as out of memory there")
    job_id = "kill" + secrets.token_hex(4)
    spec = RunSpec(job_id=job_id, image=test_image, commands=["echo up", "sleep 30"], env={},
                   source_tar=make_tar(tmp_path / "src.tar", {"x": b"x"}), labels={"rai.node": "test-executor"},
                   memory_limit=64 << 20, time_limit=30)
    sink = RecordingSink()

    def kill_once_up():  # an operator's `docker kill` while the job runs
        if "up" in sink.text():
            for c in executor.client.containers.list(filters={"label": f"rai.job={job_id}"}):
                c.kill()
        return None

    result = executor.run(spec, sink, kill_once_up, tmp_path / "build.tar")
    assert executor.wait_removals(30)
    assert result.state == JobState.error and result.exit_code == 137, result
    assert result.message == "the job's shell ended unexpectedly (exit code 137)"


def test_a_gpu_the_engine_cannot_give_is_named(job, engine):
    if engine.name == "podman" or "nvidia" in (engine.client.info().get("Runtimes") or {}):
        pytest.skip(f"{engine.name} here does not refuse a GPU request (Podman ignores it; Docker has the NVIDIA "
                    "runtime)")
    result, sink, _ = job(["echo ran"], gpus=1)
    assert result.state == JobState.error and sink.text() == ""
    assert result.message == ("the node's container engine could not give the job 1 GPU (no NVIDIA container "
                              "runtime there); tell the operators")


def test_build_archive_is_capped(job):
    result, _, archive = job(["head -c 300000 /dev/zero > big.bin && echo small > small.txt"],
                             output_limit=100_000)
    assert result.state == JobState.succeeded
    assert result.output_truncated is True
    assert archive.stat().st_size <= 100_000
    files = archive_files(archive)
    assert "build/big.bin" not in files and files["build/small.txt"] == b"small\n"


# --- engine ---------------------------------------------------------------------------------------

def test_remove_leftovers(executor, test_image):
    node = "test-" + secrets.token_hex(4)
    kw = dict(labels={"rai.node": node, "rai.job": "x"}, network_mode="none",
              ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024),
                       docker.types.Ulimit(name="nproc", soft=4096, hard=4096)])
    executor.client.containers.create(test_image, ["true"], **kw)
    executor.client.containers.run(test_image, ["sleep", "30"], detach=True, **kw)
    other = executor.client.containers.create(test_image, ["true"], **{**kw, "labels": {"rai.node": node + "x"}})
    try:
        assert executor.remove_leftovers({"rai.node": node}) == 2
        assert executor.client.containers.list(all=True, filters={"label": f"rai.node={node}"}) == []
        assert executor.remove_leftovers({"rai.node": node}) == 0
    finally:
        other.remove(force=True)


def test_no_container_is_removed_while_another_is_set_up(executor, test_image):
    """A finished job's container goes once no other job's container is being set up (the engine does one thing
    at a time: a removal beside a setup delays that job's first line), and at once for whoever waits."""
    from raid.container_removal import REMOVE_AFTER, SETUP_WAIT, ContainerRemover

    kw = dict(labels={"rai.node": "test-" + secrets.token_hex(4)}, network_mode="none",
              ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024),
                       docker.types.Ulimit(name="nproc", soft=4096, hard=4096)])
    remover = ContainerRemover()
    finished = [executor.client.containers.run(test_image, ["sleep", "30"], detach=True, **kw) for _ in range(2)]

    def exists(c) -> bool:
        try:
            c.reload()
            return True
        except docker.errors.NotFound:
            return False

    try:
        remover.setup_begins()
        remover.remove_later(finished[0], "j1")
        time.sleep(REMOVE_AFTER + 0.3)  # well past its moment, well before SETUP_WAIT
        assert REMOVE_AFTER + 0.3 < SETUP_WAIT / 2 and exists(finished[0])
        remover.setup_ends()
        assert remover.wait(20) and not exists(finished[0])
        remover.setup_begins()  # a setup that never ends: who waits has the removal done anyway
        remover.remove_later(finished[1], "j2")
        started = time.monotonic()
        assert remover.wait(20) and not exists(finished[1])
        assert time.monotonic() - started < SETUP_WAIT
    finally:
        for c in finished:
            if exists(c):
                c.remove(force=True)


def test_missing_image(executor, job):
    sink = RecordingSink()
    with pytest.raises(ImageNotFound, match="image localhost/rai-no-such-image:1 not found"):
        executor.ensure_image("localhost/rai-no-such-image:1", sink)
    assert sink.statuses() == ["pulling image localhost/rai-no-such-image:1"]
    result, _, archive = job(["true"], image="localhost/rai-no-such-image:1")
    assert result.state == JobState.error
    assert result.message.startswith("image localhost/rai-no-such-image:1 not found: the node has no such image")
    assert not archive.exists()


def test_from_config(engine):
    ex = Executor.from_config(DockerConfig(base_url=engine.url))
    assert ex.ping()
    with pytest.raises(ServiceUnavailable, match="no container engine answers"):
        Executor.from_config(DockerConfig(base_url="unix:///nonexistent/docker.sock"))


def test_nothing_the_commands_leave_running_outlives_them(executor, test_image):
    """When the commands end, the script kills every process they left in the background before it says so,
    so nothing can change /build while raid copies it (a loop rewriting a ranked result.json, say)."""
    token = secrets.token_hex(16)
    loop = "sh -c 'while true; do echo forged > /build/result.json; sleep 0.01; done' >/dev/null 2>&1 &"
    container = executor.client.containers.create(
        test_image, entrypoint=["/bin/sh"], command=["-c", job_script([loop, "sleep 0.3", "true"])],
        network_mode="none", labels={"rai.node": "test-executor"},
        ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024),
                 docker.types.Ulimit(name="nproc", soft=4096, hard=4096)])
    try:
        container.put_archive("/", _dirs_tar())
        container.put_archive("/", token_tar(token))
        container.start()
        deadline = time.monotonic() + 30
        while marker_token(token) + b"eof" not in container.logs(stdout=False, stderr=True):
            assert time.monotonic() < deadline, "the job script did not end"
            time.sleep(0.05)
        before = container.exec_run(["cat", "/build/result.json"]).output
        time.sleep(0.3)
        ps = container.exec_run(["ps", "-o", "pid,args"]).output.decode().splitlines()[1:]
        others = [line.split(None, 1)[1] for line in ps if line.split()[0] != "1"]
        assert sorted(others) == ["ps -o pid,args", "sleep 2147483647"], ps  # the loop is gone
        assert container.exec_run(["cat", "/build/result.json"]).output == before  # and nothing writes any more
    finally:
        container.remove(force=True)


def test_a_fork_bomb_ends_with_the_process_limit_named_and_leaves_nothing(job, executor):
    result, _sink, _archive = job(["b(){ b|b& }; b", "sleep 1", "echo survived"], pids_limit=64, time_limit=20)
    assert "hit the process limit of 64" in result.message, result.message
    again, sink, _ = job(["echo next job"])  # the node serves the next job at once
    assert again.state == JobState.succeeded and sink.text() == "next job\n"


class CountingSink:
    def __init__(self):
        self.bytes = 0
        self.statuses: list[str] = []

    def output(self, kind: str, data: bytes) -> None:
        self.bytes += len(data)

    def status(self, text: str) -> None:
        self.statuses.append(text)


def test_an_output_flood_ends_on_its_time_limit_and_its_container_is_removed(executor, test_image, tmp_path):
    source = make_tar(tmp_path / "src.tar", {"x": b"x"})
    job_id = "flood" + secrets.token_hex(4)
    spec = RunSpec(job_id=job_id, image=test_image, commands=["yes flood-flood-flood"], env={}, source_tar=source,
                   labels={"rai.node": "test-executor"}, time_limit=3)
    sink = CountingSink()
    result = executor.run(spec, sink, lambda: None, tmp_path / "build.tar")
    assert result.state == JobState.timeout and sink.bytes > 1_000_000
    assert executor.wait_removals(60)
    assert executor.client.containers.list(all=True, filters={"label": f"rai.job={job_id}"}) == []
    out = RecordingSink()  # and the next job runs at once
    nxt = RunSpec(job_id="after" + secrets.token_hex(4), image=test_image, commands=["echo next"], env={},
                  source_tar=source, labels={"rai.node": "test-executor"})
    assert executor.run(nxt, out, lambda: None, tmp_path / "b2.tar").state == JobState.succeeded
    assert out.text() == "next\n"


def test_a_build_folder_that_cannot_be_copied_is_retried_a_bounded_number_of_times(job, caplog):
    from raid.build_copy import BUILD_COPY_ATTEMPTS

    with caplog.at_level("INFO", logger="raid.executor"):
        result, sink, archive = job(["cd / && rm -rf /build"])  # nothing left to copy out
    assert result.state == JobState.succeeded
    assert not archive.exists()
    assert any("could not copy /build" in s for s in sink.statuses())  # said once, in the student's words
    tries = [r for r in caplog.records if "copying /build failed" in r.getMessage()]
    assert len(tries) == BUILD_COPY_ATTEMPTS - 1  # retried, then given up (the last failure is the warning)
