"""Record what event hooks receive, for tests that check what reached the plugins.

    with recording("on_inbound_message", "on_message_status") as seen:
        ...  # deliver webhooks, run the workers
    assert [m.text for m in seen["on_inbound_message"]] == ["hola"]

Only the named hooks are implemented, so the recorder adds no delivery for any other event kind.
Each entry is the hook's first argument (the message, status, order, change...).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..core import hookspecs
from ..core.hookspecs import hookimpl
from .plugins import registered_plugin


class HookRecorder:
    """What each recorded hook received, in order: ``recorder[hook_name]`` is a list."""

    def __init__(self, hooks: tuple[str, ...]) -> None:
        self.calls: dict[str, list[Any]] = {hook: [] for hook in hooks}

    def __getitem__(self, hook: str) -> list[Any]:
        return self.calls[hook]


def _implementation(hook: str) -> Callable[..., None]:
    spec = getattr(hookspecs, hook, None)
    if spec is None or not hook.startswith("on_"):
        raise ValueError(f"{hook!r} is not an event hook of connectzap.hookspecs")
    first = next(iter(inspect.signature(spec).parameters))

    def impl(self: HookRecorder, received: Any) -> None:
        self.calls[hook].append(received)

    # pluggy passes arguments by the names an implementation declares, so the recorder's parameter
    # takes the spec's name (``message``, ``status``...): any event hook, present or future, works.
    code = impl.__code__.replace(co_varnames=("self", first, *impl.__code__.co_varnames[2:]), co_name=hook)
    renamed = types.FunctionType(code, impl.__globals__, hook, impl.__defaults__, impl.__closure__)
    return hookimpl(renamed)


@contextmanager
def recording(*hooks: str) -> Iterator[HookRecorder]:
    """Register a plugin that records what ``hooks`` receive, for the length of the block."""
    if not hooks:
        raise ValueError("name at least one hook to record")
    cls = type("HookRecorder", (HookRecorder,), {hook: _implementation(hook) for hook in hooks})
    recorder = cls(hooks)
    with registered_plugin(recorder):
        yield recorder
