"""The ``[plugins.optin]`` model the plugin registers: its settings, plus the consent links it makes
for others (the console) through the declared :meth:`~connectzap.PluginSettings.consent_link`.
Apart from :mod:`.settings` because making a link needs :mod:`.links`, which reads those settings."""

from __future__ import annotations

from connectzap import Category, ConsentLink, Connectzap

from . import links
from .settings import OptinSettings


class OptinSection(OptinSettings):
    def makes_consent_links(self) -> bool:
        return bool(self.business_name)  # a link's text names the business: without it, no link

    async def consent_link(self, app: Connectzap, *, keyword: str, category: Category) -> ConsentLink:
        """What ``connectzap optin link`` and ``GET /v1/optin/qr`` make: the link (found again when
        it exists), remembered so its keyword records consent, and its QR code."""
        _, url = await links.publish(app, keyword=keyword, category=category)
        return ConsentLink(url, links.qr_svg(url))
