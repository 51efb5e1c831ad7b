"""End to end through the command line: rai submit → Redis queue → raid → container → live logs → outputs.

Real redis-server, real raid subprocess, real containers through Podman's Docker-compatible socket.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

from rai.domain.models import JobState
from tests.fixtures.e2e import wait_for


def status(env, profile, job_id) -> dict:
    r = env.rai(profile, "status", job_id, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_output_is_complete_and_in_order_stdout_and_stderr_apart(running_raid):
    env = running_raid
    ada = env.account("ada")
    proj = env.project(["seq 1 20000", "echo to-stderr >&2", "echo to-stdout"])
    r = env.rai(ada, "submit", "-p", str(proj))
    assert r.returncode == 0, r.stderr + env.raid_output()[-2000:]
    lines = r.stdout.splitlines()
    assert lines[:20000] == [str(i) for i in range(1, 20001)]
    assert lines[20000:] == ["to-stdout"]
    assert "to-stderr" in r.stderr and "to-stderr" not in r.stdout
    assert "succeeded" in r.stderr and "exit 0" in r.stderr


def test_first_failing_command_ends_the_job_with_its_exit_code(running_raid):
    env = running_raid
    ada = env.account("ada")
    proj = env.project(["echo one", "sh -c 'exit 3'", "echo never-runs"])
    r = env.rai(ada, "submit", "-p", str(proj))
    assert r.returncode == 1
    assert "one" in r.stdout and "never-runs" not in r.stdout
    assert "failed" in r.stderr and "exit 3" in r.stderr
    job_id = r.stderr.split("job ", 1)[1].split()[0]
    rec = status(env, ada, job_id)
    assert rec["state"] == "failed" and rec["exit_code"] == 3


def test_time_limit_ends_the_job_and_says_so(running_raid):
    env = running_raid
    ada = env.account("ada")
    proj = env.project(["echo start", "sleep 60"], limits={"time": "2s"})
    r = env.rai(ada, "submit", "-p", str(proj), timeout=60)
    assert r.returncode == 1
    assert "timeout" in r.stderr and "time limit" in r.stderr


def test_memory_limit_ends_the_job_and_says_so(running_raid):
    env = running_raid
    ada = env.account("ada")
    hog = "awk 'BEGIN { s = \"x\"; while (1) { s = s s; if (length(s) > 1e9) break } }'"
    proj = env.project([hog], limits={"memory": "32m"})
    r = env.rai(ada, "submit", "-p", str(proj), timeout=60)
    assert r.returncode == 1
    assert "oom" in r.stderr and "memory" in r.stderr


def test_network_is_off(running_raid):
    env = running_raid
    ada = env.account("ada")
    proj = env.project(["cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"])
    r = env.rai(ada, "submit", "-p", str(proj))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["lo"]


def test_no_follow_then_late_logs_replay_everything_and_outputs_come_back(running_raid, tmp_path):
    env = running_raid
    ada = env.account("ada")
    proj = env.project(["seq 1 5000", "cp -r /src/. /build/", "echo result > /build/answer.txt"],
                       files={"input.txt": "data\n"})
    r = env.rai(ada, "submit", "--no-follow", "-p", str(proj))
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip()
    assert "\n" not in job_id and job_id
    wait_for(lambda: status(env, ada, job_id)["state"] == "succeeded", 60, what="the job to succeed")
    late = env.rai(ada, "logs", job_id)
    assert late.stdout.splitlines() == [str(i) for i in range(1, 5001)]
    followed = env.rai(ada, "logs", job_id, "--follow")
    assert followed.returncode == 0 and followed.stdout == late.stdout
    out = tmp_path / "out"
    got = env.rai(ada, "get", job_id, "-o", str(out))
    assert got.returncode == 0, got.stderr
    assert (out / "answer.txt").read_text() == "result\n"
    assert (out / "input.txt").read_text() == "data\n"
    assert not (out / "ada.profile").exists()


def test_submit_output_option_downloads_build(running_raid, tmp_path):
    env = running_raid
    ada = env.account("ada")
    proj = env.project(["echo built > /build/program.out"])
    r = env.rai(ada, "submit", "-p", str(proj), "--output", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "program.out").read_text() == "built\n"


def test_original_form_rai_dash_p_submits(running_raid):
    env = running_raid
    ada = env.account("ada")
    proj = env.project(["echo original-form"])
    r = env.rai(ada, "-p", str(proj))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "original-form"


def test_kill_9_of_raid_mid_job_the_job_completes_after_restart(rai_env):
    env = rai_env
    ada = env.account("ada")
    env.start_raid(workers=1)
    proj = env.project(["echo started", "sleep 3", "echo finished"])
    r = env.rai(ada, "submit", "--no-follow", "-p", str(proj))
    job_id = r.stdout.strip()
    wait_for(lambda: status(env, ada, job_id)["state"] == "running", 30, what="the job to run")
    env.raid.send_signal(signal.SIGKILL)
    env.raid.wait(10)
    work = env.tmp / "work" / env.node
    assert [p.name for p in work.iterdir() if p.name.startswith(f"rai-{job_id}-")], "the killed run left its folder"
    env.start_raid(workers=1)
    wait_for(lambda: status(env, ada, job_id)["state"] == "succeeded", 60, what="the job to complete after restart")
    assert [p.name for p in work.iterdir() if p.name.startswith("rai-")] == []  # the left folder removed at start,
    # the new attempt's at its end (images-used.json, what the node ran, stays: prune reads it)
    logs = env.rai(ada, "logs", job_id).stdout
    assert logs.count("finished") == 1
    client = env.backends
    import docker

    d = docker.DockerClient(base_url=env.settings["docker"]["base_url"])
    wait_for(lambda: d.containers.list(all=True, filters={"label": f"rai.node={env.node}"}) == [], 30,
             what="every container of the node removed (the killed run's at restart, the job's after its end)")
    assert client.db.get_job(job_id).attempts == 2


def test_forged_and_revoked_credentials_are_refused_and_nothing_runs(running_raid):
    env = running_raid
    ada = env.account("ada")
    proj = env.project(["echo SHOULD-NOT-RUN"])
    forged = env.tmp / "forged.profile"
    forged.write_text(ada.read_text().replace("secret_key: ", "secret_key: x"))
    r = env.rai(forged, "submit", "-p", str(proj))  # refused at the server's door, before anything is uploaded
    assert r.returncode == 5
    assert "SHOULD-NOT-RUN" not in r.stdout
    assert "signature does not match your key" in r.stderr

    unknown = env.tmp / "unknown.profile"
    unknown.write_text(ada.read_text().replace("access_key: ", "access_key: NOPE"))
    r = env.rai(unknown, "submit", "-p", str(proj))
    assert r.returncode == 5 and "unknown" in r.stderr

    assert env.keygen("revoke", "ada").returncode == 0
    r = env.rai(ada, "submit", "-p", str(proj))
    assert r.returncode == 5
    assert "SHOULD-NOT-RUN" not in r.stdout and "revoked" in r.stderr
    assert not any((env.tmp / "store").rglob("*.tar.zst")) if (env.tmp / "store").exists() else True
    assert env.backends.queue.depth(env.queue).waiting == 0


def test_a_gpu_job_is_refused_where_no_node_has_a_gpu_and_runs_on_one_that_has(rai_env, engine):
    env = rai_env
    env.settings["raid"]["gpus"] = 0  # this node offers none, whatever nvidia-smi says
    env.write_config()
    env.start_raid()
    ada = env.account("ada")
    proj = env.project(["echo RAN-WITH-A-GPU"], gpus=1)
    r = env.rai(ada, "submit", "-p", str(proj))
    assert r.returncode == 1 and "RAN-WITH-A-GPU" not in r.stdout
    assert f"the job asks for 1 GPU and no node on queue {env.queue} has one" in r.stderr
    assert "remove resources.gpu.count from rai_build.yml" in r.stderr

    # a GPU node joins the queue, drained for now: the job waits for it instead of being refused
    gpu_node = env.node + "-gpu"
    env.backends.live.set_draining(gpu_node, True)  # drained before its first claim
    env.start_other_raid(gpu_node, gpus=1)
    job_id = env.rai(ada, "submit", "--no-follow", "-p", str(proj)).stdout.strip()
    waiting = f"the job asks for 1 GPU and node {env.node} has none; it goes back to the queue for a node that has them"
    wait_for(lambda: waiting in (status(env, ada, job_id).get("message") or ""), what="the job waiting for a GPU")
    assert status(env, ada, job_id)["state"] == "queued"
    env.backends.live.set_draining(gpu_node, False)  # back from maintenance: it takes the job
    r = env.rai(ada, "logs", job_id, "--follow", timeout=60)
    assert status(env, ada, job_id)["node"] == gpu_node and waiting in r.stderr
    if engine.name == "docker" and "nvidia" not in (engine.client.info().get("Runtimes") or {}):
        # this node says it has a GPU (raid.gpus) but its Docker cannot give one: the student is told so
        assert r.returncode == 1 and "RAN-WITH-A-GPU" not in r.stdout
        assert "the node's container engine could not give the job 1 GPU" in r.stderr
    else:  # Podman runs it (it ignores the GPU request where it has none to give)
        assert r.returncode == 0, r.stderr
        assert "RAN-WITH-A-GPU" in r.stdout


def test_submit_says_when_no_node_can_start_the_job_soon(rai_env):
    env = rai_env
    ada = env.account("ada")
    proj = env.project(["echo hi"])
    r = env.rai(ada, "submit", "--no-follow", "-p", str(proj))
    assert r.returncode == 0 and len(r.stdout.split()) == 1  # JOB=$(rai submit --no-follow) still works
    assert f"no rai node serves queue {env.queue} right now: the job waits there until one starts" in r.stderr

    env.settings["raid"]["gpus"] = 0
    env.write_config()
    env.start_raid()
    r = env.rai(ada, "submit", "--no-follow", "-p", str(proj))
    assert r.returncode == 0 and "»" not in r.stderr  # a node is up: nothing to say
    gpu_proj = env.project(["echo hi"], name="gpu", gpus=1)
    r = env.rai(ada, "submit", "--no-follow", "-p", str(gpu_proj))
    assert f"no node on queue {env.queue} has 1 GPU: the job will be refused unless one starts first" in r.stderr
    env.backends.live.set_draining(env.node, True)
    r = env.rai(ada, "submit", "--no-follow", "-p", str(proj))
    assert f"every node on queue {env.queue} is drained for now" in r.stderr


def test_a_waiting_job_shows_its_place_in_the_queue_until_it_starts(rai_env):
    env = rai_env
    ada = env.account("ada")
    proj = env.project(["echo done"])
    first = env.rai(ada, "submit", "--no-follow", "-p", str(proj)).stdout.strip()
    second = env.rai(ada, "submit", "--no-follow", "-p", str(proj)).stdout.strip()
    r = env.rai(ada, "status", second)
    assert "place  1 job ahead of yours (2 waiting)" in r.stdout
    assert json.loads(env.rai(ada, "status", first, "--json").stdout)["waiting"] == {"ahead": 0, "on_queue": 2}

    # a third, followed live: it says where it stands while no node runs anything, then runs
    follower = env.rai_popen(ada, "submit", "-p", str(proj))
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(follower.stderr), daemon=True)
    reader.start()
    wait_for(lambda: any(f"waiting on {env.queue}: 2 jobs ahead of yours (3 waiting)" in line for line in said),
             what="the place in the queue")
    env.start_raid()
    assert follower.wait(60) == 0
    reader.join(10)
    assert "done" in follower.stdout.read()
    assert any("succeeded" in line for line in said)
    assert "waiting" not in env.rai(ada, "status", first, "--json").stdout


def test_revoking_refuses_a_job_already_queued(rai_env):
    env = rai_env
    ada = env.account("ada")
    proj = env.project(["echo SHOULD-NOT-RUN"])
    job_id = env.rai(ada, "submit", "--no-follow", "-p", str(proj)).stdout.strip()
    assert env.keygen("revoke", "ada").returncode == 0
    env.start_raid()
    wait_for(lambda: (rec := env.backends.db.get_job(job_id)) is not None and rec.state.finished, 30,
             what="raid to end the job")
    record = env.backends.db.get_job(job_id)
    assert record.state == JobState.refused and "revoked" in record.message
    assert not any(e.kind.value == "stdout" for _, e in env.backends.logs.read(job_id))
    r = env.rai(ada, "logs", job_id, "--follow")  # and the revoked key reads nothing any more
    assert r.returncode == 5 and "revoked" in r.stderr and "SHOULD-NOT-RUN" not in r.stdout


def test_invalid_spec_is_refused_before_upload(rai_env):
    env = rai_env
    ada = env.account("ada")
    proj = env.project(["echo x"])
    (proj / "rai_build.yml").write_text("rai: {image: x}\ncommands: {biuld: [make]}\n")
    r = env.rai(ada, "submit", "-p", str(proj))
    assert r.returncode == 2
    assert "commands.biuld" in r.stderr and "Traceback" not in r.stderr
    assert not (env.tmp / "store").exists() or not any((env.tmp / "store").rglob("*.tar.zst"))
    assert env.backends.queue.depth(env.queue).waiting == 0


def test_cancel_a_running_job(running_raid):
    env = running_raid
    ada = env.account("ada")
    proj = env.project(["echo started", "sleep 60", "echo never"])
    follower = env.rai_popen(ada, "submit", "-p", str(proj))
    job_id = wait_for(lambda: next((r["job_id"] for r in [_latest(env)] if r and r["state"] == "running"), None),
                      30, what="the job to run")
    c = env.rai(ada, "cancel", job_id)
    assert c.returncode == 0, c.stderr
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 1
    assert "cancelled" in err and "never" not in out
    assert status(env, ada, job_id)["state"] == "cancelled"


def test_someone_else_cannot_cancel_my_job(running_raid):
    env = running_raid
    ada, bob = env.account("ada"), env.account("bob")
    proj = env.project(["sleep 2", "echo survived"])
    job_id = env.rai(ada, "submit", "--no-follow", "-p", str(proj)).stdout.strip()
    wait_for(lambda: status(env, ada, job_id)["state"] == "running", 30, what="the job to run")
    env.rai(bob, "cancel", job_id)
    r = env.rai(ada, "logs", job_id, "--follow")
    assert "survived" in r.stdout and r.returncode == 0


def test_sigterm_lets_the_running_job_finish(rai_env):
    env = rai_env
    ada = env.account("ada")
    env.start_raid(workers=1, grace=30)
    proj = env.project(["sleep 2", "echo done-before-exit"])
    job_id = env.rai(ada, "submit", "--no-follow", "-p", str(proj)).stdout.strip()
    wait_for(lambda: status(env, ada, job_id)["state"] == "running", 30, what="the job to run")
    assert env.stop_raid(signal.SIGTERM) == 0
    assert status(env, ada, job_id)["state"] == "succeeded"
    assert not any(n.name == env.node for n in env.backends.live.nodes())


def test_user_errors_are_messages_not_tracebacks(rai_env, tmp_path):
    env = rai_env
    r = env.run(sys.executable, "-m", "rai", "--profile", str(tmp_path / "nope"), "submit", "-p", ".")
    assert r.returncode == 2 and "no profile" in r.stderr and "Traceback" not in r.stderr
    ada = env.account("ada")
    r = env.rai(ada, "status", "20990101000000-000000000000")
    assert r.returncode == 4 and "no job" in r.stderr and "Traceback" not in r.stderr
    bad = subprocess.run([sys.executable, "-m", "rai", "--config", str(tmp_path / "missing.yml"), "version"],
                         capture_output=True, text=True)
    assert "Traceback" not in bad.stderr


def _latest(env):
    jobs = env.backends.db.list_jobs(limit=1)
    return jobs[0].model_dump(mode="json") if jobs else None


def test_failed_jobs_never_shrink_capacity(rai_env):
    env = rai_env
    ada = env.account("ada", role="admin")
    env.start_raid(workers=2)
    failing = [
        env.project(["exit 7"], name="fails"),
        env.project(["echo x"], name="noimage", image="localhost/does-not-exist:1"),
        env.project(["sleep 30"], name="slow", limits={"time": "1s"}),
    ]
    ids = [env.rai(ada, "submit", "--no-follow", "-p", str(p)).stdout.strip() for p in failing * 2]
    for job_id in ids:
        wait_for(lambda j=job_id: status(env, ada, j)["state"] in ("failed", "error", "timeout"), 60,
                 what=f"failing job {job_id} to end")
    sleepers = env.project(["sleep 8"], name="sleepers")
    a = env.rai(ada, "submit", "--no-follow", "-p", str(sleepers)).stdout.strip()
    b = env.rai(ada, "submit", "--no-follow", "-p", str(sleepers)).stdout.strip()
    wait_for(lambda: status(env, ada, a)["state"] == "running" and status(env, ada, b)["state"] == "running",
             60, what="both workers to run a job at once after six failures")
