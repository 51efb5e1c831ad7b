"""Images on a real engine (Podman): a project's Dockerfile built, cached and rebuilt; a failing build names its
step; the allow-list at submit; pull failures said plainly; the node's prune; CPU quota; a full disk."""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import docker.errors
import pytest
import yaml

from rai.config import Config, RoleLimits
from rai.domain.image_policy import image_allowed, image_refusal
from raid.image_prune import prune
from raid.images import (
    BuildRequest,
    ImageNotFound,
    ImageUses,
    PullProgress,
    base_images,
    build_image,
    ensure_image,
)
from tests.fixtures.e2e import TEST_IMAGE, wait_for

pytestmark = pytest.mark.timeout(240)


class Sink:
    def __init__(self):
        self.lines: list[str] = []

    def status(self, text: str) -> None:
        self.lines.append(text)

    def output(self, kind: str, data: bytes) -> None:
        self.lines.append(data.decode())


def make_tar(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w") as t:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="session")
def can_build(docker_client, test_image, tmp_path_factory):
    """Skips when the engine cannot run a build step at all (the shared Podman service started with a
    CONTAINERS_CONF file that has since been removed): an engine's setup fault, not rai's."""
    ctx = make_tar(tmp_path_factory.mktemp("probe") / "ctx.tar",
                   {"Dockerfile": f"FROM {test_image}\nRUN true\n"})
    try:
        for ev in docker_client.api.build(fileobj=open(ctx, "rb"), custom_context=True, decode=True, rm=True,
                                          network_mode="none"):
            if ev.get("error") and "CONTAINERS_CONF" in ev["error"]:
                pytest.skip(f"the container engine cannot run build steps here: {ev['error'].strip()}")
    except docker.errors.APIError as e:
        pytest.skip(f"the container engine cannot build images here: {e}")


def remove_built(client, image_name: str) -> None:
    for img in client.images.list(filters={"label": f"rai.image_name={image_name}"}):
        for tag in img.tags:
            try:
                client.images.remove(tag, force=True)
            except docker.errors.APIError:
                pass


def build_project(env, name: str, dockerfile: str, commands: list[str], files: dict[str, str],
                  build: dict) -> Path:
    proj = env.project(commands, name=name, files={"Dockerfile": dockerfile, **files})
    spec = yaml.safe_load((proj / "rai_build.yml").read_text())
    spec["commands"]["build_image"] = build
    (proj / "rai_build.yml").write_text(yaml.safe_dump(spec))
    return proj


def test_a_projects_dockerfile_builds_once_and_its_commands_see_its_file_and_env(running_raid, docker_client,
                                                                                 can_build):
    env = running_raid
    ada = env.account("ada")
    token = secrets.token_hex(4)
    name = f"myimage-{token}"
    dockerfile = f"FROM {TEST_IMAGE}\nENV GREETING=hello-{token}\nCOPY note.txt /opt/note.txt\n"
    build = {"image_name": name, "dockerfile": "Dockerfile"}
    proj = build_project(env, "built", dockerfile, ["cat /opt/note.txt", "echo greeting=$GREETING"],
                         {"note.txt": f"note {token}\n"}, build)
    try:
        first = env.rai(ada, "submit", "-p", str(proj))
        assert first.returncode == 0, first.stderr + env.raid_output()[-2000:]
        assert f"note {token}" in first.stdout and f"greeting=hello-{token}" in first.stdout
        said = first.stdout + first.stderr
        assert f"building image {name}" in said and "COPY note.txt /opt/note.txt" in said
        assert f"built image {name}" in said

        second = env.rai(ada, "submit", "-p", str(proj))
        assert second.returncode == 0, second.stderr
        said = second.stdout + second.stderr
        assert f"{name} is built already" in said and "cached image" in said
        assert "COPY note.txt" not in said  # no build ran
        assert f"greeting=hello-{token}" in second.stdout

        build["no_cache"] = True
        proj = build_project(env, "built", dockerfile, ["cat /opt/note.txt", "echo greeting=$GREETING"],
                             {"note.txt": f"note {token}\n"}, build)
        third = env.rai(ada, "submit", "-p", str(proj))
        assert third.returncode == 0, third.stderr
        said = third.stdout + third.stderr
        assert f"building image {name} from Dockerfile (no_cache)" in said and "is built already" not in said
        assert f"note {token}" in third.stdout
        tags = [t for img in docker_client.images.list(filters={"label": f"rai.image_name={name}"}) for t in img.tags]
        assert tags and all(t.startswith("localhost/rai-build/ada/") for t in tags)  # the user's own namespace
    finally:
        remove_built(docker_client, name)


def test_a_failing_build_step_ends_the_job_and_is_named(running_raid, docker_client, can_build):
    env = running_raid
    ada = env.account("ada")
    token = secrets.token_hex(4)
    name = f"broken-{token}"
    dockerfile = f"FROM {TEST_IMAGE}\nENV T={token}\nRUN echo about-to-fail && exit 3\n"
    proj = build_project(env, "broken", dockerfile, ["echo never-runs"], {}, {"image_name": name})
    try:
        r = env.rai(ada, "submit", "-p", str(proj))
        assert r.returncode == 1
        assert "never-runs" not in r.stdout
        assert "the image build failed at step 3/" in r.stderr
        assert "RUN echo about-to-fail && exit 3" in r.stderr
        assert "about-to-fail" in r.stdout + r.stderr  # the build's own output came through
        assert "/var/tmp" not in r.stderr and "Traceback" not in r.stderr
    finally:
        remove_built(docker_client, name)


def test_an_image_outside_the_allow_list_is_refused_at_submit(rai_env):
    env = rai_env
    env.settings["docker"]["allowed_images"] = ["localhost/rai-test:*"]
    env.write_config()
    ada = env.account("ada")
    proj = env.project(["echo hi"], image="docker.io/library/ubuntu:22.04")
    r = env.rai(ada, "submit", "-p", str(proj))
    assert r.returncode != 0
    assert "docker.io/library/ubuntu:22.04" in r.stderr and "not allowed" in r.stderr
    assert "localhost/rai-test:*" in r.stderr  # the allowed patterns are named
    assert env.backends.queue.depth(env.queue).waiting == 0  # nothing was queued


def test_allow_list_per_role_and_raids_own_check():
    cfg = Config(docker={"allowed_images": ["nvidia/cuda:*", "localhost/*"]},
                 roles={"student": RoleLimits(), "ta": RoleLimits(allowed_images=["*"])})
    assert image_refusal("nvidia/cuda:12.4.1-devel-ubuntu22.04", cfg, "student") is None
    assert image_refusal("localhost/rai-test", cfg, "student") is None  # :latest implied
    refusal = image_refusal("ubuntu:22.04", cfg, "student")
    assert refusal is not None and "nvidia/cuda:*, localhost/*" in refusal
    assert image_refusal("ubuntu:22.04", cfg, "ta") is None  # the role's own list wins
    assert base_images("FROM --platform=linux/amd64 nvidia/cuda:12 AS dev\nRUN x\nFROM dev\nfrom ubuntu:22.04\n") \
        == ["nvidia/cuda:12", "ubuntu:22.04"]
    assert not image_allowed("ubuntu:22.04", ["nvidia/cuda:*"])


def test_a_dockerfile_from_a_disallowed_image_is_refused_by_raid(docker_client, tmp_path):
    ctx = make_tar(tmp_path / "ctx.tar", {"Dockerfile": "FROM ubuntu:22.04\nRUN true\n"})
    req = BuildRequest("ada", "x", "Dockerfile", False, ctx, 256 << 20, False, ["localhost/rai-test:*"])
    with pytest.raises(Exception, match=r"builds FROM ubuntu:22.04, which is not allowed.*localhost/rai-test:\*"):
        build_image(docker_client, req, Sink(), 60)


def test_a_missing_dockerfile_is_said_plainly(docker_client, tmp_path):
    ctx = make_tar(tmp_path / "ctx.tar", {"main.sh": "echo\n"})
    req = BuildRequest("ada", "x", "docker/Dockerfile", False, ctx, 256 << 20, False, ["*"])
    with pytest.raises(Exception, match="docker/Dockerfile is not in the project"):
        build_image(docker_client, req, Sink(), 60)


def test_failed_pulls_say_why(docker_client):
    sink = Sink()
    with pytest.raises(ImageNotFound, match="localhost/ images are made on the node, never pulled"):
        ensure_image(docker_client, f"localhost/rai-no-such-{secrets.token_hex(3)}:1", sink)
    # no registry is reachable from here: the student reads that, not "not found"
    with pytest.raises(ImageNotFound) as e:
        ensure_image(docker_client, f"registry.invalid/rai/no-such-{secrets.token_hex(3)}:1", Sink())
    assert "cannot be reached from the node" in e.value.message


def test_pull_progress_sums_layers_in_a_line_not_one_per_chunk():
    said: list[str] = []
    progress = PullProgress("nvidia/cuda:12", said.append, every=3600)
    for current in range(0, 3 * 2**20, 2**16):  # many chunks, one line at most an hour
        progress.event({"id": "a", "status": "Downloading", "progressDetail": {"current": current,
                                                                               "total": 3 * 2**20}})
    assert said == []
    progress.event({"id": "b", "status": "Downloading", "progressDetail": {"current": 2**20, "total": 2**21}})
    progress.event({"id": "a", "status": "Download complete"})
    assert progress.line() == "pulling nvidia/cuda:12: 4.0MiB of 5.0MiB (2 layers: 3.0MiB, 2.0MiB)"


def test_raid_pull_says_a_local_image_is_there_and_a_missing_one_why(rai_env):
    r = subprocess.run([sys.executable, "-m", "raid", "pull", TEST_IMAGE], capture_output=True, text=True,
                       env=rai_env.env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"{TEST_IMAGE} is on this node already" in r.stdout
    r = subprocess.run([sys.executable, "-m", "raid", "pull", "localhost/rai-not-here:9"], capture_output=True,
                       text=True, env=rai_env.env, timeout=60)
    assert r.returncode == 1
    assert "error: image localhost/rai-not-here:9 not found" in r.stderr and "Traceback" not in r.stderr


def _env_image(client, tmp_path: Path, label: str) -> str:
    """A tiny image built from the test image (ENV steps only: no build container needed)."""
    ctx = make_tar(tmp_path / f"{label}.tar", {"Dockerfile": f"FROM {TEST_IMAGE}\nENV RAI_PRUNE_TEST={label}\n"})
    return build_image(client, BuildRequest("prune-test", label, "Dockerfile", False, ctx, 256 << 20, False, ["*"]),
                       Sink(), 120)


def test_prune_removes_an_old_unused_image_but_not_one_in_use(docker_client, test_image, tmp_path):
    token = secrets.token_hex(3)
    old, running, waiting = (f"{kind}-{token}" for kind in ("old", "running", "waiting"))
    tags = {n: _env_image(docker_client, tmp_path, n) for n in (old, running, waiting)}
    uses = ImageUses(tmp_path / "uses.json")
    week_ago = time.time() - 8 * 86400
    for tag in tags.values():
        uses.touch(tag, at=week_ago)
    container = docker_client.containers.create(tags[running], command=["true"], network_mode="none")
    try:
        removed = prune(docker_client, uses, keep=7 * 86400, budget=None, needed=[tags[waiting]])
        assert tags[old] in removed
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(tags[old])
        docker_client.images.get(tags[running])  # a container uses it
        docker_client.images.get(tags[waiting])  # a waiting job needs it
        docker_client.images.get(test_image)  # never pulled or built by the node: an operator's, kept
        assert set(uses.load()) == {tags[running], tags[waiting]}

        # over the built-images budget: oldest first, still never one in use
        removed = prune(docker_client, uses, keep=None, budget=0, needed=[])
        assert removed == [tags[waiting]]
        docker_client.images.get(tags[running])
    finally:
        container.remove(force=True)
        for n in (old, running, waiting):
            remove_built(docker_client, n)


def test_cpu_limit_sets_the_quota_and_thread_counts(rai_env):
    env = rai_env
    env.settings["docker"]["cpu_limit"] = 1.5
    env.write_config()
    env.start_raid()
    ada = env.account("ada")
    proj = env.project(["echo threads=$OMP_NUM_THREADS/$MKL_NUM_THREADS",
                        "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"],
                       limits={"cpus": 4})
    r = env.rai(ada, "submit", "-p", str(proj))
    assert r.returncode == 0, r.stderr
    assert "threads=2/2" in r.stdout  # 4 asked, capped to 1.5 by the server, rounded up for thread counts
    assert "150000" in r.stdout  # the quota: 1.5 CPUs of each 100 ms period


def test_below_min_free_disk_the_node_takes_no_jobs_and_says_why(rai_env):
    env = rai_env
    env.settings["raid"]["min_free_disk"] = "1000000T"
    env.write_config()
    env.start_raid()
    b = env.backends

    def refusing():
        nodes = [n for n in b.live.nodes() if n.name == env.node and n.heartbeat is not None]
        return nodes and nodes[0].heartbeat.refusing and nodes[0]

    node = wait_for(refusing, timeout=30, what="the node's heartbeat saying it refuses jobs")
    assert node.state == "low disk"
    assert "below raid.min_free_disk" in node.heartbeat.refusing
    ada = env.account("ada")
    p = env.rai_popen(ada, "submit", "-p", str(env.project(["echo should-wait"])))
    try:
        wait_for(lambda: b.queue.depth(env.queue).waiting == 1, timeout=30, what="the job to be queued")
        queued_at = time.time()

        def beats_since() -> bool:  # two heartbeats later the worker slots have looked at the queue again
            hb = next(n.heartbeat for n in b.live.nodes() if n.name == env.node)
            return hb is not None and hb.at.timestamp() > queued_at + 2 * env.settings["raid"]["heartbeat_interval"]

        wait_for(beats_since, timeout=30, what="two more heartbeats")
        assert b.queue.depth(env.queue).waiting == 1  # nothing claimed it while the disk is low
        assert "taking no jobs" in env.raid_output()
    finally:
        p.kill()
        p.wait()
