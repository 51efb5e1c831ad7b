"""rai/domain/fairshare.py: the arithmetic the queue, the server's ETA and the console share."""

from __future__ import annotations

import pytest

from rai.domain import fairshare


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


def test_the_short_wait_says_the_same_for_a_narrow_column():
    for seconds, long, short in ((20, "under a minute", "<1 min"), (150, "about 2 min", "~2 min"),
                                 (7200, "about 2 h", "~2 h")):
        assert (fairshare.about(seconds), fairshare.about(seconds, short=True)) == (long, short)


def test_a_span_of_run_time_decays_as_its_usage_would():
    h = fairshare.DEFAULT_HALF_LIFE
    now = 10 * h
    last_hour = fairshare.decayed_span(now - h, now, now)
    hour_before = fairshare.decayed_span(now - 2 * h, now - h, now)
    assert hour_before == pytest.approx(last_hour / 2)
    # each second weighs what decayed_usage gives it: a thin slice is its length times that weight
    assert fairshare.decayed_span(now - h, now - h + 1, now) == pytest.approx(fairshare.decayed_usage(1, now - h, now),
                                                                               rel=1e-3)
    assert fairshare.decayed_span(now - h, now + h, now, half_life=float("inf")) == h  # not past now
    assert fairshare.decayed_span(now, now - 5, now) == 0.0


def test_a_place_in_line_as_a_person_says_it():
    from rai.live.places import QueueOrder, ordinal, place_in

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 102, 111)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "102nd", "111th"]
    order = QueueOrder(at=0.0, places={"a": 0, "b": 5}, total=6, capacity=2, typical=120.0)
    b = place_in(order, "b")
    assert b is not None and (b.ordinal, b.eta_seconds, b.eta) == ("6th", 120.0 * 2.5, "about 5 min")
    assert place_in(order, "gone") is None
    no_node = place_in(QueueOrder(at=0.0, places={"a": 0}, total=1, capacity=0, typical=60.0), "a")
    assert no_node is not None and no_node.eta is None


def test_the_order_is_what_pick_chooses_step_by_step():
    import random

    def by_pick(groups, usage, charge, age_weight):  # the rule as it reads: pick a head, charge it, again
        queued = {g: list(w) for g, w in groups.items() if w}
        used = {g: usage.get(g, 0.0) for g in queued}
        out = []
        while queued:
            g = fairshare.pick([fairshare.Head(g, used[g], w[0]) for g, w in queued.items()], age_weight)
            out.append((g, len(groups[g]) - len(queued[g])))
            queued[g].pop(0)
            used[g] += charge
            if not queued[g]:
                del queued[g]
        return out

    rnd = random.Random(7)
    for _ in range(500):
        groups = {f"g{g}": sorted((rnd.choice([rnd.uniform(0, 5000), 100.0]) for _ in range(rnd.randint(0, 6))),
                                  reverse=True) for g in range(rnd.randint(0, 8))}
        usage = {g: rnd.choice([0.0, 60.0, rnd.uniform(0, 500)]) for g in groups if rnd.random() < 0.7}
        charge, age_weight = rnd.choice([0.0, 60.0, 250.0]), rnd.choice([0.0, 0.01, 1.0])
        assert fairshare.order(groups, usage, charge, age_weight) == by_pick(groups, usage, charge, age_weight)
