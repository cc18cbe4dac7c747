"""What Kaggle's competition listing says about a competition that has no declaration yet (for `init`)."""

from __future__ import annotations

from ...competitions.registry import Competition
from .client import _api, _kaggle_call
from .credentials import _error


def evaluation_metric(slug: str, comp: Competition | None = None) -> str:
    """Kaggle's name for the competition's evaluation metric (e.g. "Quadratic Weighted Kappa")."""
    from kagglesdk.competitions.types.competition_api_service import ApiListCompetitionsRequest

    api = _api()
    with _kaggle_call(f"looking up {slug} in Kaggle's competition listing", comp):
        with api.build_kaggle_client() as client:
            request = ApiListCompetitionsRequest()
            request.search = slug
            listed = client.competitions.competition_api_client.list_competitions(request).competitions or []
    found = [c for c in listed if str(c.ref).rstrip("/").rsplit("/", 1)[-1] == slug]
    if not found:
        raise _error(f"Kaggle lists no competition {slug!r}: check the slug (the last part of the competition's URL)")
    if not found[0].evaluation_metric:
        raise _error(f"Kaggle's listing of {slug} names no evaluation metric: pass --metric")
    return found[0].evaluation_metric
