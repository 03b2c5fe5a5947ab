"""When each Graph API version stops working, so ``connectzap doctor`` can warn before the
configured ``api_version`` does.

The dates are Meta's "Available until" column of the Graph API versions table
(developers.facebook.com/docs/graph-api/changelog/versions, the current localized copies that
list v26.0, read through the search tool on 2026-12-02). v27.0 comes from the English changelog
(developers.facebook.com/documentation/development/graph-api/changelog: a version introduced
November 4, 2026, "TBD") and Meta's blog post "Introducing Graph API v27.0" of that day, both
read the same day; the localized copies did not list it yet. Meta sets a version's date only once
a later version is out, so the newest ones have none ("TBD"): they count as known and current.
When Meta publishes a new version, add it here.
"""

from __future__ import annotations

from datetime import date

from ...core.wording import counted

END_OF_LIFE: dict[str, date | None] = {
    "v27.0": None,  # released 2026-11-04
    "v26.0": None,  # released 2026-07-29; Meta still says TBD
    "v25.0": date(2028, 7, 29),
    "v24.0": date(2028, 2, 18),
    "v23.0": date(2027, 10, 8),
    "v22.0": date(2027, 5, 20),
    "v21.0": date(2027, 1, 21),
    "v20.0": date(2026, 9, 24),
    "v19.0": date(2026, 5, 21),
    "v18.0": date(2026, 1, 26),
    "v17.0": date(2025, 9, 12),
}
"""Graph API version -> the last day Meta serves it (None: not announced yet)."""
WARN_DAYS = 90
"""How long before a version's end ``doctor`` starts warning."""


def warning(api_version: str, today: date) -> str | None:
    """One line when ``api_version`` ends within :data:`WARN_DAYS` of ``today``, has ended, or is
    not in the table; None when it is known to keep working past that."""
    version = api_version.strip().strip("/")
    if version not in END_OF_LIFE:
        return (f"connectors.whatsapp.api_version {version!r} is unknown to this connectzap (it knows "
                f"{min(END_OF_LIFE, key=_number)} to {max(END_OF_LIFE, key=_number)}): its end of life "
                "cannot be checked; see Meta's Graph API changelog")
    ends = END_OF_LIFE[version]
    if ends is None:
        return None
    left = (ends - today).days
    if left < 0:
        return (f"connectors.whatsapp.api_version {version} reached its end of life on {ends.isoformat()}: "
                f"Meta no longer serves it; move to {newest()}")
    if left <= WARN_DAYS:
        return (f"connectors.whatsapp.api_version {version} reaches its end of life on {ends.isoformat()} "
                f"({counted(left, 'day')}): move to {newest()}")
    return None


def newest() -> str:
    return max(END_OF_LIFE, key=_number)


def _number(version: str) -> float:
    return float(version.lstrip("v"))
