"""A campaign's life: draft -> scheduled -> running <-> paused -> finished | cancelled.

Each change is an :data:`Action` with the states it may start from; anything else is refused
with a :class:`~connectzap.core.errors.ConflictError` naming the state, so a double "start"
or a "resume" of a finished campaign changes nothing. ``finished`` and ``cancelled`` are final.
"""

from __future__ import annotations

from enum import StrEnum

from ..errors import ConflictError


class State(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class Action(StrEnum):
    SCHEDULE = "schedule"  # a start time is set: the engine starts it then
    START = "start"        # now (by hand, or the engine when the scheduled time comes)
    PAUSE = "pause"
    RESUME = "resume"
    FINISH = "finish"      # the engine: every recipient has its outcome
    CANCEL = "cancel"


S = State
TRANSITIONS: dict[Action, tuple[frozenset[State], State]] = {
    Action.SCHEDULE: (frozenset({S.DRAFT, S.SCHEDULED}), S.SCHEDULED),
    Action.START: (frozenset({S.DRAFT, S.SCHEDULED}), S.RUNNING),
    Action.PAUSE: (frozenset({S.RUNNING}), S.PAUSED),
    Action.RESUME: (frozenset({S.PAUSED}), S.RUNNING),
    Action.FINISH: (frozenset({S.RUNNING}), S.FINISHED),
    Action.CANCEL: (frozenset({S.DRAFT, S.SCHEDULED, S.RUNNING, S.PAUSED}), S.CANCELLED),
}
FINAL = frozenset({S.FINISHED, S.CANCELLED})
ADMITTING = frozenset({S.RUNNING})
"""The only state in which recipients are admitted to the outbox."""


def allowed(state: State | str, action: Action | str) -> bool:
    sources, _ = TRANSITIONS[Action(action)]
    return State(state) in sources


def after(state: State | str, action: Action | str) -> State:
    """The state ``action`` leads to from ``state``; a :class:`ConflictError` when it is not allowed."""
    sources, target = TRANSITIONS[Action(action)]
    if State(state) not in sources:
        may = ", ".join(sorted(s.value for s in sources))
        raise ConflictError(f"cannot {Action(action).value} a campaign that is {State(state).value} "
                            f"(only one that is {may})")
    return target
