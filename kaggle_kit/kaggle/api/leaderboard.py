"""`leaderboard`: the public leaderboard's top, where the user stands, and the submissions left today."""

from __future__ import annotations

from dataclasses import dataclass

from ...competitions.registry import Competition
from .client import _api, _competition, _kaggle_call, _quiet_stdout
from .credentials import credential_source
from .submit import _score, submissions_left

LEADERBOARD_PAGE_SIZE = 200  # the client's listing is one page; Kaggle's first page holds the top teams


@dataclass
class Standing:
    rank: int
    team: str
    score: float | None
    date: str


@dataclass
class Leaderboard:
    competition: Competition
    top: list[Standing]
    teams: int  # teams on the page Kaggle returned
    mine: Standing | None
    team: str | None  # the name looked for
    left_today: int | None


def leaderboard(competition: Competition | str, top: int = 10, team: str | None = None) -> Leaderboard:
    """The first `top` teams of the public leaderboard and the user's team (default: the credentials' user)."""
    comp = _competition(competition)
    api = _api()
    with _kaggle_call(f"reading the leaderboard of {comp.slug}", comp), _quiet_stdout():
        listed = api.competition_leaderboard_view(comp.slug, page_size=LEADERBOARD_PAGE_SIZE) or []
    rows = [
        Standing(rank, str(s.team_name), _score(s.score), str(s.submission_date or "")[:10])
        for rank, s in enumerate((s for s in listed if s is not None), start=1)
    ]
    team = team or credential_source().username
    mine = next((r for r in rows if team and r.team.lower() == team.lower()), None)
    return Leaderboard(comp, rows[:top], len(rows), mine, team, submissions_left(api, comp))
