"""`rai submit` packs straight into the upload (no archive on disk): what the user sees when the stream passes
the server's cap, when there is nothing to upload, and that the digest pinned by the job request is the one
the server measured. A real rai-server and Redis; no raid (the jobs stay queued)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rai.client.channel import Channel
from rai.client.profile import load_profile
from rai.domain.models import JobRequest
from rai.errors import UserError
from tests.fixtures.server import client_of

MiB = 1024**2


@pytest.fixture
def capped(rai_env):
    env = rai_env
    env.settings["server"]["max_upload"] = 2 * MiB
    env.write_config()
    env.start_server()
    env.ada = env.account("ada")
    return env


def client(env):
    return client_of(type("Server", (), {"url": env.server_url})(), load_profile(env.ada))


def requests_sent(monkeypatch) -> list[tuple[str, str]]:
    """(method, path) of each request the submits make from here on."""
    sent: list[tuple[str, str]] = []
    request = Channel.request
    monkeypatch.setattr(Channel, "request", lambda self, method, path, **kw: sent.append((method, path)) or
                        request(self, method, path, **kw))
    return sent


def uploads(env) -> list:
    return sorted((env.tmp / "store" / "uploads").rglob("*.tar.zst")) if (env.tmp / "store").exists() else []


def test_a_stream_past_the_cap_ends_with_the_servers_message(capped):
    env = capped
    big = env.project(["true"], name="big")
    (big / "data.bin").write_bytes(os.urandom(24 * MiB))  # incompressible: 12 times the cap
    # rai stops the stream itself at the cap whoami gave it: exit 2, the limit named, no broken pipe
    r = env.rai(env.ada, "submit", "--no-follow", "-p", str(big))
    assert r.returncode == 2, r.stderr
    assert "over the server's limit of 2.0MiB" in r.stderr and ".raiignore" in r.stderr
    for noise in ("Traceback", "Broken pipe", "cannot reach", "BrokenPipe"):
        assert noise not in r.stderr
    # a client that does not know the cap: the server answers 413 mid-stream, and that answer is what it says
    c = client(env)
    c.whoami().pop("max_upload")
    for _ in range(3):
        with pytest.raises(UserError) as refused:
            c.submit(big)
        assert refused.value.exit_code == 2
        assert "over the server's limit of 2.0MiB" in refused.value.message and ".raiignore" in refused.value.hint
    assert uploads(env) == []


def test_nothing_to_upload_is_said_before_any_upload(capped, monkeypatch):
    env = capped
    proj = env.project(["true"], name="ignored", files={"main.o": "x"})
    (proj / "build").mkdir()
    (proj / ".raiignore").write_text("*.o\nbuild/\n.raiignore\nrai_build.yml\n")
    r = env.rai(env.ada, "submit", "--no-follow", "-p", str(proj))
    assert r.returncode == 2 and "has no files to upload" in r.stderr and "Traceback" not in r.stderr
    c = client(env)
    sent = requests_sent(monkeypatch)
    with pytest.raises(UserError, match="has no files to upload"):
        c.submit(proj)
    assert sent == [("GET", "/v1/whoami")]  # whoami only: no PUT, no job
    assert uploads(env) == []


def test_the_server_keeps_what_was_packed_and_the_job_pins_its_digest(capped):
    env = capped
    proj = env.project(["true"], name="fine")
    for i in range(30):  # compressible: several chunks, well under the cap once packed
        (proj / f"part{i}.txt").write_text(f"line {i}\n" * 20000)
    (proj / "noise.bin").write_bytes(os.urandom(MiB))
    progress = []
    sub = client(env).submit(proj, upload_progress=lambda n, total: progress.append((n, total)))
    assert len(progress) > 1 and {t for _, t in progress} == {None} and sum(n for n, _ in progress) == sub.size
    (kept,) = uploads(env)
    assert kept.stat().st_size == sub.size
    claimed = env.backends.queue.claim(sub.queue, "test", block=1)  # the job request, as raid would get it
    job = JobRequest.model_validate_json(claimed.body)
    assert job.job_id == sub.job_id
    assert job.upload_sha256 == hashlib.sha256(kept.read_bytes()).hexdigest() and job.upload_size == sub.size
    assert sub.files == 33  # the parts, the noise, main.sh, rai_build.yml


def test_rai_submit_sends_before_the_rest_of_the_client_loads(capped):
    """`rai submit --no-follow` talks to the server on the standard library's http.client: it loads neither
    httpx nor rich nor the operators' config models (what the packing would share its CPU with)."""
    env = capped
    proj = env.project(["true"], name="light")
    env.ensure_server()
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "rai", "--profile", str(env.ada), "submit",
                        "--no-follow", "-p", str(proj)], capture_output=True, text=True, env=env.student_env,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    job_id = r.stdout.strip()
    assert env.backends.live.get_job(job_id).state.value == "queued"  # it is queued: the report is of a submit
    modules = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert {"rai.client.submitting", "rai.client.channel", "http.client"} <= modules
    loaded = sorted(m for m in modules if m.split(".")[0] in ("httpx", "httpcore", "h11", "rich", "anyio")
                    or m in ("rai.config", "rai.client.api", "rai.client.core", "platformdirs"))
    assert loaded == []


def test_a_bad_spec_is_said_before_any_upload_even_with_no_server(capped, monkeypatch, tmp_path):
    env = capped
    proj = env.project(["true"], name="typo")
    (proj / "rai_build.yml").write_text("rai:\n  image: localhost/rai-test:latest\ncommands:\n  biuld:\n    - 'true'\n")
    c = client(env)
    sent = requests_sent(monkeypatch)
    with pytest.raises(UserError, match="did you mean build"):
        c.submit(proj)
    assert sent == [("GET", "/v1/whoami")] and uploads(env) == []
    # offline (nothing answers at the server's address): the spec's own words still come first
    nowhere = tmp_path / "nowhere.yml"
    nowhere.write_text("server:\n  url: http://127.0.0.1:9\n  timeout: 2\n")
    r = subprocess.run([sys.executable, "-m", "rai", "--config", str(nowhere), "--profile", str(env.ada), "submit",
                        "--no-follow", "-p", str(proj)], capture_output=True, text=True, env=env.student_env,
                       timeout=60)
    assert r.returncode == 2 and "did you mean build" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_spec_that_passed_is_not_checked_again_until_it_changes(capped):
    """The client keeps the rai_build.yml files that passed (rai/client/spec_cache.py): a second submit of an
    unchanged project loads no pydantic at all; an edited spec is checked again, and refused in its words."""
    env = capped
    proj = env.project(["true"], name="again")
    env.ensure_server()

    def submit() -> tuple[subprocess.CompletedProcess, set[str]]:
        r = subprocess.run([sys.executable, "-X", "importtime", "-m", "rai", "--profile", str(env.ada), "submit",
                            "--no-follow", "-p", str(proj)], capture_output=True, text=True, env=env.student_env,
                           timeout=120)
        return r, {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}

    first, modules = submit()
    assert first.returncode == 0, first.stderr[-3000:]
    assert "pydantic" in modules  # the first submit of this spec checks it with the models
    second, modules = submit()
    assert second.returncode == 0, second.stderr[-3000:]
    assert [m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_core")] == []
    assert len(list(Path(os.environ["RAI_CACHE_DIR"]).rglob("*.json"))) == 1  # this test's own cache
    jobs = [queued_job(env, r.stdout.strip()) for r in (first, second)]
    assert jobs[0].spec == jobs[1].spec and jobs[1].spec["commands"]["build"] == ["true"]
    before = uploads(env)
    (proj / "rai_build.yml").write_text("rai:\n  image: localhost/rai-test:latest\ncommands:\n  build: []\n")
    bad, modules = submit()
    assert bad.returncode == 2 and "at least one shell command" in bad.stderr and "pydantic" in modules
    assert uploads(env) == before  # refused before anything was sent
    (proj / "rai_build.yml").write_text("rai:\n  image: localhost/rai-test:latest\ncommands:\n  build: [make]\n")
    third, _ = submit()
    assert third.returncode == 0, third.stderr[-3000:]
    assert queued_job(env, third.stdout.strip()).spec["commands"]["build"] == ["make"]


def queued_job(env, job_id: str) -> JobRequest:
    """The job request `job_id`, the next waiting in its queue, as raid would get it."""
    claimed = env.backends.queue.claim(env.backends.live.get_job(job_id).queue, "test", block=1)
    job = JobRequest.model_validate_json(claimed.body)
    assert job.job_id == job_id
    return job
