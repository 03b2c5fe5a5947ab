"""What a connector author imports: the contracts the core defines (:mod:`connectzap.core.connector`).

Kept so that ``from connectzap.connectors.base import Connector`` goes on working; new code may
import the same names from ``connectzap`` itself.
"""

from ..core.connector import Connector, ConnectorSettings, WebhookRequest, WebhookResponse, secret_value
from ..core.connector import OperatorAction, OutboundCall, TemplateAccount, TemplateManagement

__all__ = ["Connector", "ConnectorSettings", "OperatorAction", "OutboundCall", "WebhookRequest", "WebhookResponse",
           "TemplateAccount", "TemplateManagement", "secret_value"]
