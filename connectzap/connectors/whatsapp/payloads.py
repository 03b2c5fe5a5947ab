"""Turn connectzap message content into exact Cloud API request bodies, and check bodies.

Shapes follow Meta's ``POST /{phone-number-id}/messages`` reference (see
``shared/research/whatsapp.md`` section 1.2). ``validate_body`` is what the sandbox uses to
refuse a body the real API would refuse for its shape.
"""

from __future__ import annotations

from typing import Any

from ...core.bsuids import BSUID, is_bsuid
from ...core.channel import OutboundSend
from ...core.errors import PayloadError, PhoneRequiredError
from ...core.messages import (ButtonsContent, ContactsContent, CtaUrlContent, HeaderParam, InteractiveHeader,
                              ListContent, LocationContent, MediaContent, MediaRef, ProductContent,
                              ProductListContent, ReactionContent, RequestContactInfoContent, TemplateContent,
                              TextContent)
from ...core.phones import wa_digits


def media_object(ref: MediaRef, caption: str | None = None) -> dict[str, Any]:
    if ref.file is not None:
        raise PayloadError("local media files must be uploaded before sending", field="media.file")
    obj: dict[str, Any] = {"id": ref.id} if ref.id else {"link": ref.link}
    if caption:
        obj["caption"] = caption
    if ref.filename:
        obj["filename"] = ref.filename
    return obj


def _header_param(header: HeaderParam) -> dict[str, Any]:
    if header.type == "text":
        param: dict[str, Any] = {"type": "text", "text": header.text}
        if header.parameter_name:
            param["parameter_name"] = header.parameter_name
        return param
    if header.type == "location":
        loc: dict[str, float | str | None] = {"latitude": header.latitude, "longitude": header.longitude}
        loc.update({k: v for k, v in (("name", header.name), ("address", header.address)) if v})
        return {"type": "location", "location": loc}
    assert header.media is not None
    return {"type": header.type, header.type: media_object(header.media)}


def _body_param(param: Any, name: str | None = None) -> dict[str, Any]:
    data = param.model_dump(exclude_none=True)
    kind = data.pop("type")
    out: dict[str, Any] = {"type": kind}
    if kind == "text":
        out["text"] = data["text"]
    else:
        out[kind] = data
    if name is not None:
        out["parameter_name"] = name
    return out


def template_object(content: TemplateContent) -> dict[str, Any]:
    components: list[dict[str, Any]] = []
    if content.header is not None:
        components.append({"type": "header", "parameters": [_header_param(content.header)]})
    if content.body:
        if isinstance(content.body, dict):
            params = [_body_param(p, name) for name, p in content.body.items()]
        else:
            params = [_body_param(p) for p in content.body]
        components.append({"type": "body", "parameters": params})
    for button in sorted(content.buttons, key=lambda b: b.index):
        if button.sub_type == "quick_reply":
            param: dict[str, Any] = {"type": "payload", "payload": button.payload}
        elif button.sub_type == "url":
            param = {"type": "text", "text": button.text}
        elif button.sub_type == "copy_code":
            param = {"type": "coupon_code", "coupon_code": button.coupon_code}
        else:
            action: dict[str, Any] = {"flow_token": button.flow_token}
            if button.flow_action_data:
                action["flow_action_data"] = button.flow_action_data
            param = {"type": "action", "action": action}
        components.append({"type": "button", "sub_type": button.sub_type, "index": str(button.index),
                           "parameters": [param]})
    obj: dict[str, Any] = {"name": content.name, "language": {"code": content.language, "policy": "deterministic"}}
    if components:
        obj["components"] = components
    return obj


def _interactive_header(header: InteractiveHeader | None) -> dict[str, Any] | None:
    if header is None:
        return None
    if header.type == "text":
        return {"type": "text", "text": header.text}
    assert header.media is not None
    return {"type": header.type, header.type: media_object(header.media)}


def _interactive(kind: str, body: str | None, action: dict[str, Any], header: dict[str, Any] | None = None,
                 footer: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"type": kind}
    if header:
        obj["header"] = header
    if body:
        obj["body"] = {"text": body}
    if footer:
        obj["footer"] = {"text": footer}
    obj["action"] = action
    return obj


def content_object(content: Any) -> tuple[str, dict[str, Any] | list[dict[str, Any]]]:
    """The message ``type`` and its object for any connectzap content."""
    if isinstance(content, TemplateContent):
        return "template", template_object(content)
    if isinstance(content, TextContent):
        return "text", {"body": content.body, "preview_url": content.preview_url}
    if isinstance(content, MediaContent):
        return content.type, media_object(content.media, content.caption)
    if isinstance(content, ButtonsContent):
        action: dict[str, Any] = {
            "buttons": [{"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in content.buttons]}
        return "interactive", _interactive("button", content.body, action, _interactive_header(content.header),
                                           content.footer)
    if isinstance(content, ListContent):
        sections: list[dict[str, Any]] = [{k: v for k, v in (("title", s.title),
                                       ("rows", [r.model_dump(exclude_none=True) for r in s.rows])) if v}
                    for s in content.sections]
        header = {"type": "text", "text": content.header} if content.header else None
        return "interactive", _interactive("list", content.body, {"button": content.button, "sections": sections},
                                           header, content.footer)
    if isinstance(content, CtaUrlContent):
        action = {"name": "cta_url", "parameters": {"display_text": content.display_text, "url": content.url}}
        return "interactive", _interactive("cta_url", content.body, action, _interactive_header(content.header),
                                           content.footer)
    if isinstance(content, ProductContent):
        action = {"catalog_id": content.catalog_id, "product_retailer_id": content.product_retailer_id}
        return "interactive", _interactive("product", content.body, action, None, content.footer)
    if isinstance(content, ProductListContent):
        sections = [{"title": s.title, "product_items": [{"product_retailer_id": p} for p in s.product_retailer_ids]}
                    for s in content.sections]
        return "interactive", _interactive("product_list", content.body,
                                           {"catalog_id": content.catalog_id, "sections": sections},
                                           {"type": "text", "text": content.header}, content.footer)
    if isinstance(content, LocationContent):
        return "location", content.model_dump(exclude_none=True, exclude={"type"})
    if isinstance(content, ContactsContent):
        return "contacts", content.contacts
    if isinstance(content, ReactionContent):
        return "reaction", {"message_id": content.message_id, "emoji": content.emoji}
    if isinstance(content, RequestContactInfoContent):
        return "interactive", _interactive("request_contact_info", content.body, {"name": "request_contact_info"})
    raise PayloadError(f"cannot send content of type {type(content).__name__}")


def message_body(message: OutboundSend) -> dict[str, Any]:
    """The full JSON body for ``POST /{phone-number-id}/messages``."""
    kind, obj = content_object(message.content)
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    if is_bsuid(message.recipient):  # a customer known without a number: Meta's ``recipient`` field
        if message.category == "authentication":
            raise PhoneRequiredError("authentication templates go to phone numbers only; this customer is known "
                                     "by a business-scoped user id", details="recipient is a BSUID")
        body["recipient"] = message.recipient
    else:
        body["to"] = wa_digits(message.recipient)
    body.update({"type": kind, kind: obj, "biz_opaque_callback_data": message.outbox_id})
    if message.reply_to:
        body["context"] = {"message_id": message.reply_to}
    return body


def checked_body(message: OutboundSend) -> dict[str, Any]:
    """The request body, refused the way the Cloud API refuses a malformed one (error 100, never
    retried). Stand-ins for the API (the sandbox, test fakes) send only what would be accepted."""
    from ...core.errors import FatalDeliveryError
    try:
        body = message_body(message)
        validate_body(body)
    except PayloadError as exc:
        raise FatalDeliveryError(f"invalid request body: {exc.message}", vendor_code=100,
                                 details=exc.message) from None
    return body


_TYPES = {"text", "image", "video", "audio", "document", "sticker", "location", "contacts", "reaction",
          "interactive", "template"}
_MEDIA = {"image", "video", "audio", "document", "sticker"}


def validate_body(body: dict[str, Any]) -> None:
    """Raise :class:`PayloadError` when ``body`` is not a well-formed send request."""
    def need(cond: bool, field: str, why: str) -> None:
        if not cond:
            raise PayloadError(f"{field}: {why}", field=field)

    need(body.get("messaging_product") == "whatsapp", "messaging_product", "must be 'whatsapp'")
    to, recipient = body.get("to"), body.get("recipient")
    need((to is None) != (recipient is None), "to", "give exactly one of to (a phone number) or recipient (a BSUID)")
    if recipient is not None:
        need(isinstance(recipient, str) and BSUID.fullmatch(recipient) is not None, "recipient",
             "must be a business-scoped user id (two letters, a dot, up to 128 letters or digits)")
    else:
        need(isinstance(to, str) and to.isdigit() and 7 <= len(to) <= 15, "to", "must be 7-15 digits")
    kind = body.get("type")
    # raised here rather than through need(), so that the checker sees kind and obj narrowed below
    if kind not in _TYPES:
        raise PayloadError(f"type: unknown message type {kind!r}", field="type")
    obj = body.get(kind)
    if obj is None:
        raise PayloadError(f"{kind}: missing the object for the message type", field=kind)
    cb = body.get("biz_opaque_callback_data")
    need(cb is None or (isinstance(cb, str) and len(cb) <= 512), "biz_opaque_callback_data", "at most 512 chars")
    if kind == "text":
        need(isinstance(obj.get("body"), str) and 0 < len(obj["body"]) <= 4096, "text.body", "1-4096 characters")
    elif kind in _MEDIA:
        need(("id" in obj) != ("link" in obj), kind, "exactly one of id or link")
        need(not ("caption" in obj and kind in ("audio", "sticker")), f"{kind}.caption", "not allowed")
    elif kind == "template":
        need(bool(obj.get("name")), "template.name", "required")
        need(bool((obj.get("language") or {}).get("code")), "template.language.code", "required")
        for comp in obj.get("components", []):
            need(comp.get("type") in ("header", "body", "button"), "template.components.type", "unknown component")
            for param in comp.get("parameters", []):
                if param.get("type") == "text":
                    text = param.get("text", "")
                    need("\n" not in text and "\t" not in text and "     " not in text,
                         "template.parameters.text", "no newlines, tabs or more than 4 consecutive spaces")
    elif kind == "interactive":
        need(obj.get("type") in ("button", "list", "cta_url", "product", "product_list", "catalog_message", "flow",
                                 "request_contact_info"),
             "interactive.type", "unknown interactive type")
        need("action" in obj, "interactive.action", "required")
        if obj["type"] == "button":
            buttons = obj["action"].get("buttons", [])
            need(1 <= len(buttons) <= 3, "interactive.action.buttons", "1 to 3 buttons")
    elif kind == "location":
        need(isinstance(obj.get("latitude"), (int, float)) and isinstance(obj.get("longitude"), (int, float)),
             "location", "latitude and longitude are required")
    elif kind == "reaction":
        need(bool(obj.get("message_id")), "reaction.message_id", "required")
    elif kind == "contacts":
        need(isinstance(obj, list) and len(obj) > 0, "contacts", "at least one contact card")


def read_receipt_body(wamid: str, typing: bool = False) -> dict[str, Any]:
    """Mark an inbound message read; ``typing`` also shows a typing indicator (up to 25 s)."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
    if typing:
        body["typing_indicator"] = {"type": "text"}
    return body
