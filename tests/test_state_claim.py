"""PluginState.claim: the first value taken under a key stays; every contender -- in turn or at the
same time, from several threads (and, on PostgreSQL, several connections) -- reads the winner's."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectzap.core.context import PluginState

_keys = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.dictionaries(st.sampled_from(["by", "target"]), st.text(max_size=5)), min_size=1,
                       max_size=6))
def test_in_turn_the_first_value_wins(app, values) -> None:
    key = f"k{next(_keys)}"
    state = PluginState(app, "connector:test")
    assert [state.claim(key, value) for value in values] == [values[0]] * len(values)
    assert PluginState(app, "connector:test", buffered=False).get(key) == values[0]
    assert PluginState(app, "connector:other").claim(key, "mine") == "mine"  # keys are per plugin


def test_at_the_same_time_exactly_one_wins(app) -> None:
    state = PluginState(app, "connector:test")
    with ThreadPoolExecutor(max_workers=8) as pool:
        held = list(pool.map(lambda n: state.claim("race", {"by": n}), range(16)))
    assert len({json_of(h) for h in held}) == 1 and held[0] in [{"by": n} for n in range(16)]


def test_an_expired_claim_can_be_taken_again(app) -> None:
    state = PluginState(app, "connector:test")
    assert state.claim("old", "first", forget_at=1.0) == "first"  # already past: as if housekeeping erased it
    assert state.claim("old", "second") == "second"


def json_of(value: object) -> str:
    import json
    return json.dumps(value, sort_keys=True)
