"""Leaderboards from ranking entries: each team's counting result, 1-based ranks with ties, anonymous
team labels, and the CSV staff grade from. Shared by raid (students' queries), raitui and rai-admin.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import math
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from rai.config import Config, data_dir
from rai.domain.models import RankingEntry
from rai.domain.projects import ProjectConfig, RankedKind, pick_kind

_ADJECTIVES = (
    "amber", "arctic", "azure", "bold", "brave", "bright", "brisk", "calm", "clever", "cosmic", "crimson", "daring",
    "dusky", "eager", "electric", "emerald", "fancy", "fearless", "fierce", "gentle", "gilded", "golden", "grand",
    "happy", "hidden", "humble", "icy", "jolly", "keen", "lively", "lucky", "lunar", "mellow", "mighty", "misty",
    "nimble", "noble", "olive", "polar", "proud", "quick", "quiet", "rapid", "restless", "rosy", "rusty", "scarlet",
    "silent", "silver", "sleek", "smooth", "solar", "spry", "steady", "stormy", "sunny", "swift", "tidy", "topaz",
    "velvet", "vivid", "wild", "witty", "zesty",
)
_NOUNS = (
    "albatross", "badger", "beaver", "bison", "cheetah", "cobra", "condor", "cougar", "coyote", "crane", "dingo",
    "dolphin", "eagle", "falcon", "ferret", "finch", "fox", "gazelle", "gecko", "heron", "hornet", "ibex", "jackal",
    "jaguar", "kestrel", "koala", "lemur", "leopard", "lynx", "macaw", "marmot", "marten", "mole", "moose", "narwhal",
    "newt", "ocelot", "orca", "osprey", "otter", "owl", "panda", "panther", "pelican", "puffin", "quail", "raven",
    "salmon", "seal", "shark", "sparrow", "stoat", "swan", "tapir", "tiger", "toucan", "viper", "walrus", "weasel",
    "wolf", "wombat", "yak", "zebra", "beetle",
)


def label_secret(config: Config) -> str:
    """The key of team labels: the app secret; without one, a random key kept in the data folder
    (enough for one machine; nodes that share a Redis must share `app.secret` for labels to agree)."""
    secret = config.app_secret()
    if secret:
        return secret
    path = data_dir() / "team-labels.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # atomic, and fails when another process made it first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def team_label(secret: str, team: str) -> str:
    """A stable anonymous name for `team` (e.g. `swift-otter-3f2a`): an HMAC of the name keyed by the app
    secret, so nobody without the secret can tell which team it is, even knowing every team's name."""
    digest = hmac.new(secret.encode(), b"rai team label v1\0" + team.encode(), hashlib.sha256).digest()
    return f"{_ADJECTIVES[digest[0] % len(_ADJECTIVES)]}-{_NOUNS[digest[1] % len(_NOUNS)]}-{digest[2:4].hex()}"


@dataclass
class Standing:
    rank: int  # 1-based; teams with equal values share a rank (1, 2, 2, 4)
    team: str
    entry: RankingEntry  # the team's result that counts
    valid_results: int  # how many valid results the team has for this kind


def _better(a: RankingEntry, b: RankingEntry, lower_is_better: bool, counts: str) -> bool:
    if counts == "last":
        return a.at > b.at
    if a.value != b.value:
        return a.value < b.value if lower_is_better else a.value > b.value
    return a.at < b.at  # the same value: the earlier result stands


def counting_entries(entries: Iterable[RankingEntry], lower_is_better: bool = True,
                     counts: str = "best") -> dict[str, tuple[RankingEntry, int]]:
    """team → (its counting valid entry, its number of valid entries)."""
    chosen: dict[str, tuple[RankingEntry, int]] = {}
    for e in entries:
        if not e.valid or not math.isfinite(e.value):
            continue
        held = chosen.get(e.team)
        if held is None:
            chosen[e.team] = (e, 1)
        else:
            chosen[e.team] = (e if _better(e, held[0], lower_is_better, counts) else held[0], held[1] + 1)
    return chosen


def standings(entries: Iterable[RankingEntry], lower_is_better: bool = True, counts: str = "best") -> list[Standing]:
    """The leaderboard: one row per team with a valid result, best first, equal values sharing a rank."""
    chosen = counting_entries(entries, lower_is_better, counts)
    sign = 1 if lower_is_better else -1
    ordered = sorted(chosen.items(), key=lambda kv: (sign * kv[1][0].value, kv[1][0].at, kv[0]))
    rows: list[Standing] = []
    for i, (team, (entry, n)) in enumerate(ordered):
        rank = rows[-1].rank if rows and rows[-1].entry.value == entry.value else i + 1
        rows.append(Standing(rank, team, entry, n))
    return rows


@dataclass
class Board:
    """A leaderboard as staff see it: real team names, every entry kept for the record."""

    kind: RankedKind
    rows: list[Standing]
    entries: list[RankingEntry]  # all of the kind's entries, valid or not


def load_board(db, projects: dict[str, ProjectConfig], project: str | None = None, kind: str | None = None) -> Board:
    """The leaderboard of `project`/`kind` (defaults: the only project, its last kind) from the database."""
    rk = pick_kind(projects, project, kind)
    entries = db.list_rankings(rk.project, rk.kind)
    return Board(rk, standings(entries, rk.lower_is_better, rk.counts), entries)


def team_members(accounts) -> dict[str, list[str]]:
    """team → its members' usernames; a user in no team is a team of one under their username."""
    members: dict[str, list[str]] = {}
    for a in accounts.list():
        members.setdefault(a.team or a.username, []).append(a.username)
    return members


CSV_COLUMNS = ("project", "kind", "rank", "team", "label", "members", "metric", "value", "valid", "counts",
               "job_id", "username", "recorded_at", "details")


def write_csv(out: IO[str], project: str, kind: str, rows: list[Standing], entries: list[RankingEntry] | None = None,
              label_secret: str | None = None, members: dict[str, list[str]] | None = None) -> int:
    """Write the leaderboard as CSV for grading; with `entries`, every entry (counting ones marked) instead of
    one row per team. Returns the number of data rows."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    ranks = {s.entry.job_id: s.rank for s in rows}
    listed = entries if entries is not None else [s.entry for s in rows]
    if entries is not None:
        listed = sorted(listed, key=lambda e: (ranks.get(e.job_id, math.inf), e.team, e.at))
    for e in listed:
        writer.writerow([
            project, kind, ranks.get(e.job_id, ""), e.team, team_label(label_secret, e.team) if label_secret else "",
            " ".join((members or {}).get(e.team, [])), e.metric, repr(e.value), "yes" if e.valid else "no",
            "yes" if e.job_id in ranks else "no", e.job_id, e.username, e.at.isoformat(),
            json.dumps(e.details, sort_keys=True),
        ])
    return len(listed)
