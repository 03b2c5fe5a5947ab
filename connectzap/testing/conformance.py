"""The connector conformance suite: the tests every connector must pass, generated in one line::

    TestMyConnector = connector_test_class(MyConnector, config={...}, payloads=[Sample(...), ...],
                                           signer=Signer.standard_webhooks())

Tests are grouped in suites (``metadata``, ``signature``, ``mapping``, ``idempotency``,
``consent``, ``reply_sync``). Switch suites off with ``skip=``, choose them with ``suites=``,
add your own with ``extra_suites=`` (classes whose ``test_*`` methods take the ``harness``
fixture and, optionally, a ``sample`` chosen with :func:`uses_samples`). Override one test by
subclassing the generated class and redefining the method.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ..core.connector import Connector, ConnectorSettings
from ..core import consent as ledger
from ..core.hooks import collect_connectors
from ..core.errors import ConfigurationError, PayloadError
from ..core.hookspecs import hookimpl
from ..core.messages import TemplateContent
from ..core.models import Category, Event, TemplateInfo
from ..core.settings import _is_secret_key, redacted
from ..core.store import journal
from .harness import ConnectorSpec, Harness, open_harness, put_templates
from .payloads import sample_event
from .samples import Sample
from .signing import Signer

F = TypeVar("F", bound=Callable[..., Any])

SUITES = ("metadata", "signature", "mapping", "idempotency", "consent", "reply_sync")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
PROBE_TEMPLATE = "conformance_probe"
REJECTED = (401, 403)


def uses_samples(which: str) -> Callable[[F], F]:
    """Run the decorated test once per sample: ``"all"``, ``"success"``, ``"error"``,
    ``"first_success"`` or ``"effects"`` (successes that produce events)."""
    def mark(function: F) -> F:
        function._conformance_samples = which  # type: ignore[attr-defined]  # a mark read back by the suite
        return function
    return mark


def _fresh_secret(old: str) -> str:
    # Same shape as the old one (a whsec_ key stays a whsec_ key), different value.
    if old.startswith("whsec_"):
        return "whsec_" + "cm90YXRlZC1zZWNyZXQtZm9yLWNvbmZvcm1hbmNl"
    return "rotated-" + old[::-1]


class ConformanceBase:
    """Fixtures and sample parametrisation shared by every suite."""

    spec: ConnectorSpec

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "sample" not in metafunc.fixturenames:
            return
        which = getattr(metafunc.function, "_conformance_samples", "all")
        chosen = self.spec.select(which)
        if chosen:
            metafunc.parametrize("sample", chosen, ids=[s.name for s in chosen])
        else:
            metafunc.parametrize("sample", [pytest.param(None, marks=pytest.mark.skip(
                reason=f"no {which!r} samples given for {self.spec.connector.__name__}"))])

    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[Harness]:
        with open_harness(self.spec, tmp_path) as h:
            yield h

    def need_signer(self) -> Signer:
        if self.spec.signer is None:
            pytest.skip("no signer given: pass signer=Signer.<scheme>() to test signatures")
        return self.spec.signer

    def assert_rejected(self, h: Harness, response: Any, what: str, journaled_before: int = 0) -> None:
        assert response.status in REJECTED, f"{what}: expected 401/403, got {response.status} {response.body!r}"
        assert h.journaled() == journaled_before, f"{what}: a rejected delivery must journal nothing"


class MetadataSuite(ConformanceBase):
    """Name, routes and settings: what start-up and the HTTP edge rely on."""

    def test_metadata_name_and_routes(self) -> None:
        cls = self.spec.connector
        assert NAME_PATTERN.match(cls.name), f"{cls.__name__}.name must be lower_snake_case, got {cls.name!r}"
        assert cls.routes, f"{cls.__name__}.routes is empty: the HTTP edge has nothing to mount"
        for route in cls.routes:
            assert route.startswith("/"), f"route {route!r} must start with '/'"
        assert cls.methods and all(m == m.upper() for m in cls.methods), "methods must be upper-case HTTP verbs"
        assert issubclass(cls.settings_model, ConnectorSettings), "settings_model must extend ConnectorSettings"

    def test_metadata_registered_and_configured(self, harness: Harness) -> None:
        assert collect_connectors()[self.spec.name] is self.spec.connector
        assert isinstance(harness.connector, self.spec.connector)
        assert isinstance(harness.connector.settings, self.spec.connector.settings_model)

    def test_metadata_secrets_are_secretstr(self) -> None:
        model = self.spec.connector.settings_model
        declared = set(model.secret_fields())
        looks_secret = {name for name in model.model_fields if _is_secret_key(name)}
        undeclared = sorted(looks_secret - declared)
        assert not undeclared, f"settings that hold secrets must be SecretStr: {', '.join(undeclared)}"
        if self.spec.signer is not None:
            assert self.spec.secret_field in declared, f"{self.spec.secret_field} must be a SecretStr setting"

    def test_metadata_secrets_redacted(self, harness: Harness) -> None:
        settings = harness.connector.settings
        shown = [repr(settings), str(settings), settings.model_dump_json(), repr(harness.connector),
                 json.dumps(redacted(settings), default=str), json.dumps(settings.model_dump(mode="json"), default=str)]
        for secret in self.spec.secret_values():
            for text in shown:
                assert secret not in text, "a secret appears in the settings' repr, dump or redacted form"

    def test_metadata_secrets_not_logged(self, harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        answers = []
        for sample in self.spec.samples:
            answers.append(harness.deliver(harness.request(sample)))
            answers.append(harness.deliver(harness.request(sample, sign=False)))
            if self.spec.signer is not None:
                answers.append(harness.deliver(harness.request(sample, secret=_fresh_secret(self.spec.secret))))
        harness.run()
        texts = [r.getMessage() for r in caplog.records] + [str(a.body) for a in answers]
        for secret in self.spec.secret_values():
            leaked = [t for t in texts if secret in t]
            assert not leaked, f"a secret appears in logs or responses: {leaked[0][:200]!r}"

    def test_metadata_missing_secret_fails_closed(self, tmp_path: Path) -> None:
        """Without its signing secret the connector refuses to start, or rejects every request."""
        signer = self.need_signer()
        field = self.spec.secret_field or ""
        sample = (self.spec.select("first_success") or list(self.spec.samples))[:1]
        if not sample:
            pytest.skip("no samples")
        unset: dict[str, Any] = {field: [] if isinstance(self.spec.config[field], list) else None}
        try:
            with open_harness(self.spec, tmp_path, **unset) as h:
                for request in (h.request(sample[0]), h.request(sample[0], sign=False),
                                signer.sign(sample[0].request(self.spec.connector), "")):
                    self.assert_rejected(h, h.deliver(request), f"{field} unset")
        except ConfigurationError as exc:
            assert field in exc.message, f"the start-up error should name {field}: {exc.message}"
            for secret in self.spec.secret_values():
                assert secret not in exc.message


class SignatureSuite(ConformanceBase):
    """Fail closed: only a request signed now, with a configured secret, over these bytes, passes."""

    @uses_samples("first_success")
    def test_signature_valid(self, harness: Harness, sample: Sample) -> None:
        self.need_signer()
        response = harness.deliver(harness.request(sample))
        assert response.status == 200, f"a correctly signed delivery was refused: {response.status} {response.body!r}"

    @uses_samples("first_success")
    def test_signature_tampered_body(self, harness: Harness, sample: Sample) -> None:
        signer = self.need_signer()
        if not signer.covers_body:
            pytest.skip(f"{signer.scheme} does not cover the body")
        signed = harness.request(sample)
        for tampered_body in (signed.body + b" ", signed.body.replace(b"1", b"2", 1) if b"1" in signed.body
                              else signed.body + b"\n"):
            tampered = type(signed)(**{**signed.__dict__, "body": tampered_body})
            self.assert_rejected(harness, harness.deliver(tampered), "a changed body")

    @uses_samples("first_success")
    def test_signature_wrong_secret(self, harness: Harness, sample: Sample) -> None:
        self.need_signer()
        request = harness.request(sample, secret=_fresh_secret(self.spec.secret))
        self.assert_rejected(harness, harness.deliver(request), "a request signed with another secret")

    @uses_samples("first_success")
    def test_signature_stale(self, harness: Harness, sample: Sample) -> None:
        signer = self.need_signer()
        if not signer.timestamped:
            pytest.skip(f"{signer.scheme} carries no timestamp")
        import time
        for offset in (-self.spec.stale_seconds, self.spec.stale_seconds):
            request = harness.request(sample, now=time.time() + offset)
            self.assert_rejected(harness, harness.deliver(request), f"a signature {offset:+.0f}s off")

    @uses_samples("first_success")
    def test_signature_missing_header(self, harness: Harness, sample: Sample) -> None:
        signer = self.need_signer()
        self.assert_rejected(harness, harness.deliver(harness.request(sample, sign=False)), "an unsigned request")
        signed = harness.request(sample)
        optional = {name.lower() for name in self.spec.connector.optional_headers}
        for header in signer.header_names(signed, self.spec.secret):
            if header in sample.headers:
                continue  # part of the sample itself (e.g. a topic header), not of the signature
            if header.lower() in optional:
                continue  # declared informational: the connector does without it
            stripped = type(signed)(**{**signed.__dict__,
                                       "headers": {k: v for k, v in signed.headers.items() if k != header}})
            before = harness.journaled()
            response = harness.deliver(stripped)
            assert response.status in REJECTED, (
                f"a request without {header} was accepted ({response.status}): if "
                f"{self.spec.connector.__name__} can do without it, list it in its optional_headers; if not, "
                "refuse requests that lack it")
            self.assert_rejected(harness, response, f"a request without {header}", before)

    @uses_samples("first_success")
    def test_signature_rotated_secret(self, harness: Harness, sample: Sample) -> None:
        """After rotation the old secret is refused; a list setting accepts both while rotating."""
        self.need_signer()
        field = self.spec.secret_field or ""
        old, new = self.spec.secret, _fresh_secret(self.spec.secret)
        as_list = isinstance(self.spec.config[field], list)
        if as_list:
            overlap = harness.deliver(harness.request(sample), harness.connector_with(**{field: [new, old]}))
            assert overlap.status == 200, f"while rotating, the previous secret must be accepted: {overlap.body!r}"
        journaled = harness.journaled()
        rotated = harness.connector_with(**{field: [new] if as_list else new})
        refused = harness.deliver(harness.request(sample, secret=old), rotated)
        assert refused.status in REJECTED, f"after rotation the old secret must be refused, got {refused.status}"
        assert harness.journaled() == journaled, "a refused delivery must journal nothing"
        accepted = harness.deliver(harness.request(sample, secret=new), rotated)
        assert accepted.status == 200, f"the new secret must be accepted: {accepted.status} {accepted.body!r}"


class MappingSuite(ConformanceBase):
    """Every sample parses to the events it declares; malformed ones fail clearly and store nothing."""

    @uses_samples("all")
    def test_mapping_sample(self, harness: Harness, sample: Sample) -> None:
        request = harness.request(sample)
        if sample.succeeds:
            events = harness.connector.parse(request)
            assert [e.kind.value for e in events] == list(sample.expect_kinds), \
                f"{sample.name}: parsed {[e.kind.value for e in events]}, expected {list(sample.expect_kinds)}"
            for event in events:
                assert isinstance(event, Event) and event.source and event.dedupe_key
                event.payload()  # the data must validate as the kind's typed model
            response = harness.deliver(request)
            assert response.status == 200, f"{sample.name}: {response.status} {response.body!r}"
            assert harness.journaled() == len({(e.source, e.dedupe_key) for e in events})
            return
        with pytest.raises(PayloadError) as caught:
            harness.connector.parse(request)
        if sample.error_field is not None:
            assert caught.value.field == sample.error_field, \
                f"{sample.name}: the error names field {caught.value.field!r}, expected {sample.error_field!r}"
        response = harness.deliver(request)
        assert 400 <= response.status < 500, f"{sample.name}: a malformed payload must get a 4xx"
        assert isinstance(response.body, dict) and response.body.get("detail"), "the error must say what is wrong"
        assert harness.journaled() == 0, f"{sample.name}: a malformed payload must journal nothing"

    @pytest.mark.parametrize("garbage", [b"", b"not json", b"{", b"[]", b"{}", b"null", b'{"id": []}'],
                             ids=["empty", "text", "truncated", "list", "object", "null", "odd-types"])
    def test_mapping_garbage(self, harness: Harness, garbage: bytes) -> None:
        """Correctly signed junk: a PayloadError (4xx) or an empty acknowledgement, never a crash."""
        candidates = self.spec.select("first_success") or list(self.spec.samples)
        if not candidates:
            pytest.skip("no samples")
        template = candidates[0]
        request = harness.request(Sample(name="garbage", body=garbage, headers=template.headers,
                                         path=template.path, path_params=template.path_params,
                                         query=template.query, method=template.method))
        try:
            events = harness.connector.parse(request)
        except PayloadError:
            events = None
        except Exception as exc:  # noqa: BLE001 - the point: anything else would be a 500
            pytest.fail(f"parse raised {type(exc).__name__}: {exc} for {garbage!r}; raise PayloadError instead")
        response = harness.deliver(request)
        assert response.status < 500
        if events is None:
            assert 400 <= response.status < 500 and harness.journaled() == 0
        else:
            assert response.status == 200
            for event in events:
                event.payload()


class IdempotencySuite(ConformanceBase):
    """A webhook delivered again (a retry, identical or re-signed) has no second effect."""

    @uses_samples("effects")
    def test_idempotency_replay(self, harness: Harness, sample: Sample) -> None:
        first = harness.request(sample)
        keys = [e.dedupe_key for e in harness.connector.parse(first)]
        assert harness.deliver(first).status == 200
        harness.run()
        before = harness.snapshot()
        retry = harness.request(sample)  # the sender signs each attempt again
        assert [e.dedupe_key for e in harness.connector.parse(retry)] == keys, "dedupe keys must be stable"
        for again in (first, retry):
            response = harness.deliver(again)
            assert response.status == 200 and isinstance(response.body, dict) \
                and response.body.get("received") == 0, \
                f"a replay must be acknowledged as a duplicate: {response.body!r}"
        harness.run()
        assert harness.snapshot() == before, "a replayed delivery changed the journal, the outbox or the sends"


class ConsentProbe:
    """Proposes a marketing template to every contact an event names, to prove the gate applies."""

    def __init__(self) -> None:
        self.proposed = 0

    def _propose(self, phone: str | None, ctx: Any) -> None:
        if phone:
            self.proposed += 1
            ctx.send(phone, TemplateContent(name=PROBE_TEMPLATE, language="en"))

    @hookimpl
    def on_order_created(self, order: Any, ctx: Any) -> None:
        self._propose(order.customer.phone if order.customer else None, ctx)

    @hookimpl
    def on_order_updated(self, order: Any, ctx: Any) -> None:
        self._propose(order.customer.phone if order.customer else None, ctx)

    @hookimpl
    def on_lead(self, lead: Any, ctx: Any) -> None:
        self._propose(lead.contact.phone, ctx)


PROBE_INFO = TemplateInfo(name=PROBE_TEMPLATE, language="en", category="MARKETING",
                          components=[{"type": "BODY", "text": "News from the conformance suite."}])


class ConsentSuite(ConformanceBase):
    """No message leaves without consent for its category: events from this connector go
    through the gate like any other, and its package's own plugins send only what they may."""

    @uses_samples("success")
    def test_consent_no_send_without_consent(self, sample: Sample, tmp_path: Path) -> None:
        probe = ConsentProbe()
        with open_harness(self.spec, tmp_path, extra_plugins=[probe]) as h:
            put_templates(h.app, [PROBE_INFO])
            assert h.deliver(h.request(sample)).status == 200
            h.run()
            rows = h.outbox_rows()
            probe_rows = [r for r in rows if r["template_name"] == PROBE_TEMPLATE]
            assert len(probe_rows) == probe.proposed, "every proposal must reach the gate and be recorded"
            with h.app.db.read() as conn:
                for row in rows:
                    if row["category"] not in {c.value for c in Category}:
                        continue  # a free-form reply inside the customer's window ("service")
                    record = ledger.latest(conn, row["contact_key"], Category(row["category"]))
                    granted = bool(record and record.granted)
                    if row["template_name"] == PROBE_TEMPLATE and not granted:
                        refusals = (("refused", "no_consent"), ("refused", "opted_out"))
                        assert (row["status"], row["reason"]) in refusals, \
                            f"{sample.name}: a marketing message without consent was not refused: {row['status']} " \
                            f"{row['reason']}"
                    if row["wamid"] and row["category"] == Category.MARKETING.value:
                        assert granted, f"{sample.name}: a marketing message was sent without marketing consent"
            if sample.expect_sends is not None:
                own = [b for b in h.channel.sent() if b.get("template", {}).get("name") != PROBE_TEMPLATE]
                assert len(own) == sample.expect_sends, \
                    f"{sample.name}: expected {sample.expect_sends} sends, got {[b['type'] for b in own]}"


class ReplySyncSuite(ConformanceBase):
    """What WhatsApp reports (inbound messages, statuses, consent) reaches the connector once."""

    @pytest.mark.parametrize("kind", ["inbound_message", "message_status", "consent_changed"])
    def test_reply_sync_once(self, harness: Harness, kind: str) -> None:
        method = type(harness.connector).sync_methods().get(kind)
        if method is None:
            pytest.skip(f"{self.spec.connector.__name__} does not override the sync method for {kind}")
        calls: list[Any] = []
        real = getattr(harness.connector, method)

        async def counting(payload: Any, ctx: Any) -> Any:
            calls.append(payload)
            return await real(payload, ctx) if self.spec.reply_sync == "call" else None

        setattr(harness.connector, method, counting)
        event = sample_event(kind)
        event_id = harness.app.ingest([event])[0].event_id
        assert event_id is not None, f"a new {kind} event must be journaled"
        harness.run()
        harness.app.ingest([event])  # WhatsApp delivers again: still once
        harness.run()
        assert len(calls) == 1, f"{method} was called {len(calls)} times for one {kind} event"
        with harness.app.db.read() as conn:
            rows = journal.deliveries_of(conn, event_id)
        target = f"connector:{self.spec.name}"
        mine = [d for d in rows if d["target"] == target]
        assert mine and mine[0]["status"] == "done", \
            f"{method} did not complete: {mine[0]['last_error'] if mine else 'no delivery'}"


SUITE_CLASSES: dict[str, type[ConformanceBase]] = {
    "metadata": MetadataSuite, "signature": SignatureSuite, "mapping": MappingSuite,
    "idempotency": IdempotencySuite, "consent": ConsentSuite, "reply_sync": ReplySyncSuite,
}


def connector_test_class(connector: type[Connector], *, config: dict[str, Any], payloads: Iterable[Sample],
                         signer: Signer | None = None, secret_field: str | None = None,
                         plugins: Sequence[Any] = (), templates: Sequence[TemplateInfo] = (),
                         app_settings: dict[str, Any] | None = None, suites: Iterable[str] | None = None,
                         skip: Iterable[str] = (), extra_suites: Sequence[type] = (),
                         stale_seconds: float = 3600.0, reply_sync: str = "call") -> type:
    """Build a pytest test class that runs the conformance suites against ``connector``.

    :param config: a valid ``[connectors.NAME]`` section, with the signing secret.
    :param payloads: :class:`Sample` deliveries, successes and expected errors.
    :param signer: how the connector's webhooks are signed (:class:`Signer`), or ``None`` for none.
    :param secret_field: the setting holding the signing secret(s) (default: the only secret set).
    :param plugins: plugin modules/objects of the connector's package, registered during each test.
    :param templates: templates to put in the cache (those the package's plugins send).
    :param suites: the suites to run (default all of :data:`SUITES`); ``skip`` removes some.
    :param extra_suites: your own suite classes, mixed in.
    :param reply_sync: ``"call"`` runs the real sync methods, ``"count"`` only counts the calls.
    """
    chosen = list(SUITES if suites is None else suites)
    unknown = sorted(set(chosen) - set(SUITES)) + sorted(set(skip) - set(SUITES))
    if unknown:
        raise ValueError(f"unknown suites: {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    selected = tuple(SUITE_CLASSES[name] for name in chosen if name not in set(skip)) + tuple(extra_suites)
    bases = tuple(reversed(selected))  # pytest collects the last base's tests first
    spec = ConnectorSpec(connector=connector, config=dict(config), samples=tuple(payloads), signer=signer,
                         secret_field=secret_field, plugins=tuple(plugins), templates=tuple(templates),
                         app_settings=dict(app_settings or {}), stale_seconds=stale_seconds, reply_sync=reply_sync)
    return type(f"Test{connector.__name__}Conformance", bases or (ConformanceBase,), {"spec": spec})


__all__ = ["SUITES", "ConformanceBase", "ConnectorSpec", "Harness", "Sample", "Signer", "connector_test_class",
           "uses_samples"]
