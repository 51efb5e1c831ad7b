"""rai/fairshare.py: the arithmetic the queue, the server's ETA and the console share."""

from __future__ import annotations

from rai import fairshare


def test_usage_halves_every_half_life_and_charges_add_to_the_decayed_usage():
    assert fairshare.decayed_usage(100.0, at=0, now=3600, half_life=3600) == 50.0
    assert fairshare.decayed_usage(100.0, at=0, now=7200, half_life=3600) == 25.0
    assert fairshare.charged(100.0, at=0, now=3600, amount=10, half_life=3600) == 60.0
    assert fairshare.job_weight(0) == 1.0 and fairshare.job_weight(4) == 4.0


def test_the_least_used_group_goes_first_and_a_long_wait_beats_usage():
    heads = [fairshare.Head("greedy", usage=180.0, waited=30.0), fairshare.Head("new", usage=0.0, waited=1.0)]
    assert fairshare.pick(heads) == "new"
    starving = [fairshare.Head("greedy", usage=180.0, waited=20_000.0), fairshare.Head("new", 0.0, 1.0)]
    assert fairshare.pick(starving) == "greedy"
    assert fairshare.pick([]) is None


def test_the_order_interleaves_a_greedy_user_with_the_others():
    waits = {"greedy": [50.0, 49.0, 48.0, 47.0], "a": [5.0], "b": [4.0]}
    order = fairshare.order(waits, usage={"greedy": 120.0}, charge=60.0)
    assert order[:2] == [("a", 0), ("b", 0)]
    assert [i for g, i in order if g == "greedy"] == [0, 1, 2, 3]


def test_the_eta_grows_with_the_jobs_ahead_and_shrinks_with_the_slots():
    assert fairshare.eta(0, capacity=4, typical=60) == 30.0
    assert fairshare.eta(8, capacity=4, typical=60) == 150.0
    assert fairshare.about(150.0) == "about 2 min" and fairshare.about(20) == "under a minute"
