"""Sample deliveries for the conformance suite: a body, how to post it, and what must happen."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..core.connector import Connector, WebhookRequest
from ..core.models import EventKind
from .signing import webhook_request


@dataclass(frozen=True)
class Sample:
    """One delivery a connector must handle, and the outcome it must produce.

    :ivar name: shown in test ids (``test_mapping[order_created]``).
    :ivar body: raw ``bytes``/``str``, or data that is posted as compact JSON.
    :ivar expect: ``"success"`` -- verified, parsed and journaled; ``"error"`` -- a clear 4xx
        (a :class:`~connectzap.PayloadError`) and nothing journaled. Errors are signed correctly,
        so it is the payload that fails, not the signature.
    :ivar expect_kinds: the event kinds a success produces, in order (``()`` = acknowledged, ignored).
    :ivar error_field: for errors, the ``field`` the PayloadError must name (``None`` = any).
    :ivar expect_sends: messages the connector's package (its ``plugins``) must send for this
        delivery with the suite's consent state (``None`` = not checked).
    :ivar path: the request path; default the connector's first route, filled from ``path_params``.
    """

    name: str
    body: Any
    expect: Literal["success", "error"] = "success"
    expect_kinds: tuple[str, ...] = ()
    error_field: str | None = None
    expect_sends: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"
    path: str | None = None
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.expect not in ("success", "error"):
            raise ValueError(f"sample {self.name}: expect must be 'success' or 'error', not {self.expect!r}")
        kinds = (self.expect_kinds,) if isinstance(self.expect_kinds, str) else tuple(self.expect_kinds)
        object.__setattr__(self, "expect_kinds", tuple(EventKind(k).value for k in kinds))
        if self.expect == "error" and self.expect_kinds:
            raise ValueError(f"sample {self.name}: an error sample produces no events")

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Sample:
        """A sample whose body is the file's bytes, named after the file unless ``name`` is given."""
        p = Path(path)
        return cls(name=options.pop("name", p.stem), body=p.read_bytes(), **options)

    @property
    def succeeds(self) -> bool:
        return self.expect == "success"

    def request(self, connector: type[Connector]) -> WebhookRequest:
        """The unsigned request, as the HTTP edge would hand it to ``connector``."""
        path = self.path
        if path is None:
            if not connector.routes:
                raise ValueError(f"{connector.__name__} declares no routes; give the sample a path")
            path = connector.routes[0].format(**self.path_params) if self.path_params else connector.routes[0]
        return webhook_request(path, self.body, headers=self.headers, method=self.method, query=self.query,
                               path_params=self.path_params)


def samples_from_dir(folder: str | Path, expectations: Mapping[str, Iterable[str] | str]) -> list[Sample]:
    """Samples from ``*.json`` files: ``expectations`` maps a file stem to its event kinds, or to
    ``"error"``. A file without an entry is an error: every fixture should say what it proves."""
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        if p.stem not in expectations:
            raise ValueError(f"{p.name}: no expectation given for this payload")
        wanted = expectations[p.stem]
        if wanted == "error":
            out.append(Sample.from_file(p, expect="error"))
        else:
            out.append(Sample.from_file(p, expect_kinds=tuple([wanted] if isinstance(wanted, str) else wanted)))
    return out
