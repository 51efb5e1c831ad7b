"""GET /metrics on a real rai-server (its own process) over a real raid and Redis: what a Prometheus
scrape sees as jobs wait, run and end."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.e2e import wait_for


def scrape(env, token: str | None = None) -> dict[tuple[str, tuple], float]:
    env.ensure_server()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(env.server_url + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_waiting_running_and_ended_jobs(rai_env):
    env = rai_env
    ada = env.account("ada")
    q = (("queue", env.queue),)
    # no node yet: the submitted jobs wait
    ok = env.rai(ada, "submit", "--no-follow", "-p", str(env.project(["echo hi"], name="ok")))
    bad = env.rai(ada, "submit", "--no-follow", "-p", str(env.project(["sh -c 'exit 3'"], name="bad")))
    assert ok.returncode == 0 and bad.returncode == 0, ok.stderr + bad.stderr
    m = scrape(env)
    assert m[("rai_jobs_waiting", q)] == 2
    assert m[("rai_jobs_running", q)] == 0
    assert m[("rai_redis_memory_used_bytes", ())] > 0
    # the tests share one Redis: a node an earlier test stopped keeps its heartbeat until it expires
    wait_for(lambda: scrape(env)[("rai_nodes_up", ())] == 0, 30, what="no node's heartbeat current")

    env.start_raid()

    def both_ended():
        m = scrape(env)
        return m.get(("rai_job_ends_total", (*q, ("state", "succeeded"))), 0) == 1 and \
            m.get(("rai_job_ends_total", (*q, ("state", "failed"))), 0) == 1
    wait_for(both_ended, 60, what="two ends counted")
    m = scrape(env)
    assert m[("rai_jobs_waiting", q)] == 0
    assert m[("rai_nodes_up", ())] == 1
    assert m[("rai_job_duration_seconds_count", q)] == 2
    assert m[("rai_job_wait_seconds_count", q)] == 2
    assert m[("rai_job_wait_seconds_sum", q)] > 0  # they waited for the node to come
    # a second scrape counts nothing twice
    assert scrape(env)[("rai_job_ends_total", (*q, ("state", "succeeded")))] == 1


def test_metrics_token_closes_the_endpoint(rai_env):
    env = rai_env
    env.settings["server"]["metrics_token"] = "s3cret-operators"
    env.write_config()
    env.ensure_server()
    r = httpx.get(env.server_url + "/metrics", timeout=10)
    assert r.status_code == 401 and "token" in r.json()["error"]
    assert httpx.get(env.server_url + "/metrics", headers={"Authorization": "Bearer wrong"}, timeout=10
                     ).status_code == 401
    assert ("rai_nodes_up", ()) in scrape(env, token="s3cret-operators")
