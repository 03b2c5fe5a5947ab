"""connectzap: connect shops and CRMs to the official WhatsApp Business Cloud API.

Plugins import what they need from here -- never from pluggy::

    from connectzap import hookimpl, Outgoing, TemplateContent
"""

from . import signatures
from .core.connector import Connector, ConnectorSettings, WebhookRequest, WebhookResponse
from .core.app import Connectzap
from .core.automatic import AutomaticAnswer
from .core.bsuids import is_bsuid
from .core.business_hours import BusinessHours
from .core.contact_times import ContactTime
from .core.conversations import Conversation, ConversationState
from .core.channel import BaseChannel, Channel, OutboundSend
from .core.context import EventContext
from .core.errors import (AmbiguousDeliveryError, ConfigurationError, ConflictError, ConnectzapError,
                          DeliveryError, FatalDeliveryError, FatalError, InvalidPhoneError, InvalidRecipientError,
                          NotFoundError, PacedError, PayloadError, PhoneRequiredError, RefusedError,
                          RetriableDeliveryError, RetriableError, SendingPausedError, SignatureError,
                          SkippableDeliveryError, SkippableError, StartupError)
from .core.gate import Decision
from .core.keywords import leading_keyword, normalise_keyword
from .core.media import inbound_media
from .core.hookspecs import hookimpl
from .core.messages import (BodyParam, ButtonParam, ButtonsContent, ContactsContent, CtaUrlContent, CurrencyParam,
                            DateTimeParam, HeaderParam, ListContent, ListRow, ListSection, LocationContent,
                            MediaContent, MediaRef, MessageContent, MessageContentItem, Outgoing, ProductContent,
                            ProductListContent,
                            ProductSection, ReactionContent, ReplyButton, RequestContactInfoContent, TemplateContent,
                            TextContent, TextParam)
from .core.models import (AdReferral, CallActivity, CampaignFinished, CancelRequest, Category, ConsentChange,
                          ConsentRecord, Contact, ContactAction, ContactChange, DeliveryOutcome, Event, EventKind,
                          Handoff, InboundMessage, Lead, MessageStatus, Order, OrderItem, PastMessage, StatusValue,
                          TemplateInfo, TemplateUpdate)
from .core.phones import to_e164
from .core.plugin_settings import ConsentLink, JinjaText, PluginSettings, TemplateUse, jinja_names_known
from .core.settings import Settings, load_settings
from .core.connector import OperatorAction, OutboundCall
from .core.version import __version__

__all__ = [
    "AdReferral", "AmbiguousDeliveryError", "AutomaticAnswer", "BaseChannel", "BodyParam", "ButtonParam",
    "ButtonsContent",
    "BusinessHours", "CallActivity", "CampaignFinished", "CancelRequest",
    "Category", "Channel", "ConfigurationError", "ConflictError", "Connector", "ConnectorSettings", "ConnectzapError",
    "Connectzap", "ConsentChange", "ConsentRecord", "Contact", "ContactAction", "ContactChange", "ContactTime",
    "Conversation",
    "ConversationState",
    "ConsentLink", "ContactsContent", "CtaUrlContent", "CurrencyParam",
    "DateTimeParam", "Decision", "DeliveryError", "DeliveryOutcome", "Event", "EventContext", "EventKind",
    "FatalDeliveryError", "FatalError", "Handoff", "HeaderParam", "InboundMessage", "InvalidPhoneError",
    "InvalidRecipientError",
    "JinjaText", "Lead", "ListContent", "ListRow", "ListSection", "LocationContent", "MediaContent", "MediaRef",
    "MessageContent", "MessageContentItem",
    "MessageStatus", "NotFoundError", "OperatorAction", "Order", "OrderItem", "OutboundCall",
    "OutboundSend",
    "Outgoing", "PacedError", "PastMessage", "PayloadError", "PhoneRequiredError", "PluginSettings", "ProductContent",
    "ProductListContent", "ProductSection", "ReactionContent", "RefusedError", "ReplyButton",
    "RequestContactInfoContent",
    "RetriableDeliveryError", "RetriableError", "SendingPausedError", "Settings", "SignatureError",
    "SkippableDeliveryError", "SkippableError", "StartupError", "StatusValue", "TemplateContent", "TemplateInfo",
    "TemplateUpdate", "TemplateUse", "TextContent", "TextParam", "WebhookRequest", "WebhookResponse", "__version__",
    "hookimpl", "inbound_media", "is_bsuid",
    "jinja_names_known", "leading_keyword", "load_settings", "normalise_keyword", "signatures",
    "to_e164",
]
