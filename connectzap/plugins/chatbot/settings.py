"""``[plugins.chatbot]``: where the bot is, how it is signed, how long to wait, what to say when it
cannot answer (docs/automation.md, "Chatbot bridge")."""

from __future__ import annotations

from pydantic import Field, HttpUrl, SecretStr, model_validator

from connectzap import PluginSettings
from connectzap.signatures import sign_standard

NAME = "chatbot"


def waiting_key(wamid: str) -> str:
    """The plugin state key of a message the bot said it would answer later."""
    return f"waiting:{wamid}"


DEFAULT_FALLBACK = "Sorry, our assistant cannot answer right now. A person will reply as soon as possible."


class ChatbotSettings(PluginSettings):
    """Every key optional; without ``url`` the plugin forwards nothing."""

    url: HttpUrl | None = None
    """The bot's endpoint: each inbound message is POSTed to it."""
    secret: SecretStr | None = None
    """Signs each request the Standard Webhooks way, like the generic outbound webhooks."""
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    """How long to wait for the bot's answer before falling back."""
    max_messages: int = Field(default=3, ge=1, le=5)
    """The most messages one answer may have; more is a malformed answer."""
    later_minutes: float = Field(default=10.0, gt=0, le=23 * 60)
    """How long a bot that said it would answer later has to answer through ``POST
    /v1/chatbot/answers``; after that the fallback goes (unless another answer went)."""
    fallback_text: str = Field(default=DEFAULT_FALLBACK, max_length=4096)
    """Sent when the bot fails (timeout, error, malformed answer) and no FAQ rule, away message or
    welcome answers instead; "" sends nothing."""
    hand_to_human_on_failure: bool = False
    """Also hand the conversation to a person when the bot fails."""

    def wants(self, kind: str) -> bool:
        return self.url is not None  # without a bot nothing is forwarded
    skip_types: list[str] = Field(default_factory=lambda: ["reaction", "system", "unsupported", "unknown"])
    """Message types never forwarded (nothing to answer)."""

    @model_validator(mode="after")
    def _signed(self) -> ChatbotSettings:
        if self.url is not None and (self.secret is None or not self.secret.get_secret_value()):
            raise ValueError("with a url, also set secret: requests to the bot are signed")
        if self.secret is not None:
            try:  # a whsec_ secret is base64 (Standard Webhooks): refuse a broken one now, not per message
                sign_standard("msg_check", 0, b"", self.secret.get_secret_value())
            except ValueError:
                raise ValueError("secret starts with whsec_ but the rest is not base64 (Standard Webhooks "
                                 "secrets are whsec_ and base64)") from None
        return self

    def console_summary(self) -> list[tuple[str, str]]:
        if self.url is None:
            return [("chatbot", "off (no url)")]
        # the address without its query or user part: either may carry a token
        port = f":{self.url.port}" if self.url.port not in (None, 80, 443) else ""
        where = f"{self.url.scheme}://{self.url.host}{port}{self.url.path or ''}"
        failure = "; on failure a person takes over" if self.hand_to_human_on_failure else ""
        return [("chatbot", f"on: forwards to {where}, signed (secret set), {self.timeout_seconds:g} s to answer"
                            f"{failure}"),
                ("fallback text", self.fallback_text or "(none)")]
