"""`connectzap woocommerce reconcile` as typed, against a shop on plain http (OAuth 1.0a) and the
Cloud API, both local stand-ins: each query parameter is sent once, the missed order is notified
through the live channel, and the command exits with nothing on stderr (no unclosed connections)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from receiver_support import Receiver

from connectzap import Category, ConsentChange, Connectzap, load_settings
from connectzap.testing import seed_template
from connectzap.testing.fake_graph import FakeGraph

CONNECTZAP = Path(sys.executable).with_name("connectzap")
ORDER = json.loads((Path(__file__).parent / "payloads" / "woocommerce" / "order_created_classic.json").read_text())
PHONE = "+34612345678"
TOKEN = "graph-token-for-reconcile-tests"


@pytest.mark.slow
def test_reconcile_queries_once_notifies_and_leaves_stderr_clean(tmp_path: Path) -> None:
    with FakeGraph(token=TOKEN) as graph, Receiver({"/wp-json/wc/v3/orders": [ORDER]}) as shop:
        config = tmp_path / "connectzap.toml"
        config.write_text(f"""
data_dir = "{tmp_path / 'data'}"
[connectors.whatsapp]
access_token = "{TOKEN}"
phone_number_id = "106540352242922"
app_secrets = ["meta-app-secret-for-tests"]
verify_token = "verify-token-for-tests"
api_base_url = "{graph.url}"
transport = "aiohttp"
[connectors.woocommerce.shops.main]
url = "{shop.url}"
webhook_secrets = ["woo-webhook-secret"]
consumer_key = "ck_reconcile"
consumer_secret = "cs_reconcile"
[[plugins.order_notifications.rules]]
status = "processing"
template = "order_confirmation"
language = "en"
params = ["{{{{ number }}}}"]
""")
        app = Connectzap(load_settings(config)).start()
        seed_template(app, "order_confirmation", "Your order {{1}} is confirmed.")
        app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="test",
                                      proof="checkout box"))
        app.close()
        env = {**os.environ, "CONNECTZAP_LOAD_PLUGINS": ""}
        env.pop("CONNECTZAP_TEST_DATABASE_URL", None)
        done = subprocess.run([str(CONNECTZAP), "--config", str(config), "woocommerce", "reconcile",
                               "--since", "2026-03-01"], capture_output=True, text=True, env=env, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("main: 1 order modified since 2026-03-01 00:00:00Z, 1 new change;")
    assert done.stderr == ""  # an unclosed aiohttp session or connector would warn here
    assert [body["template"]["name"] for body in graph.sends()] == ["order_confirmation"]
    [listing] = [r for r in shop.requests if r.method == "GET"]
    query = parse_qsl(urlsplit(listing.path).query)
    counts = Counter(name for name, _ in query)
    assert counts and set(counts.values()) == {1}, f"a parameter was sent more than once: {counts}"
    assert {"modified_after", "per_page", "page", "oauth_signature"} <= set(counts)
    assert dict(query)["modified_after"] == "2026-03-01T00:00:00"
