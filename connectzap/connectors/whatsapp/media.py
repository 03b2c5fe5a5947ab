"""Local media files: upload them once (``POST /{phone-number-id}/media``), then send by id.

A bulk send of one brochure to many customers uploads it once: ids are remembered per
(number, file, size, mtime) for less than Meta's 30-day media-id lifetime.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ...core.errors import AmbiguousDeliveryError, FatalDeliveryError, RetriableDeliveryError
from ...core.messages import MediaRef
from .client import GraphClient

MEDIA_ID_LIFETIME = 25 * 86400  # Meta keeps uploaded media 30 days; stay well inside


class MediaUploader:
    def __init__(self, client: GraphClient) -> None:
        self.client = client
        self._ids: dict[tuple[str, str, int, float], tuple[str, float]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def resolve(self, content: Any, phone_number_id: str) -> Any:
        """``content`` with every ``MediaRef(file=...)`` replaced by an uploaded ``MediaRef(id=...)``."""
        return await self._walk(content, phone_number_id)

    async def _walk(self, value: Any, number: str) -> Any:
        if isinstance(value, MediaRef):
            return await self._uploaded(value, number) if value.file is not None else value
        if not isinstance(value, BaseModel):
            return value
        changes = {}
        for name in type(value).model_fields:
            child = getattr(value, name)
            if isinstance(child, BaseModel):  # a MediaRef, or a model that may hold one
                new = await self._walk(child, number)
                if new is not child:
                    changes[name] = new
        return value.model_copy(update=changes) if changes else value

    async def _uploaded(self, ref: MediaRef, number: str) -> MediaRef:
        path = Path(ref.file or "")
        try:
            stat = path.stat()
        except OSError:
            raise FatalDeliveryError(f"media file not found: {path.name}", code="media_file_missing") from None
        key = (number, str(path.resolve()), stat.st_size, stat.st_mtime)
        lock = self._locks.setdefault((number, key[1]), asyncio.Lock())
        async with lock:  # concurrent sends of one file upload it once
            cached = self._ids.get(key)
            if cached is None or cached[1] < time.time():
                try:
                    media_id = await self.client.upload_media(number, path)
                except AmbiguousDeliveryError as exc:  # an upload is not a send: just try again
                    raise RetriableDeliveryError(exc.message, code="retry") from None
                cached = (media_id, time.time() + MEDIA_ID_LIFETIME)
                self._ids[key] = cached
        return MediaRef(id=cached[0], filename=ref.filename)
