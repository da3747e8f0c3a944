"""Typed field access on a decoded frame, failing with a :class:`ProtocolError`.

Reasons name the frame type and the field, never the value: values are user
text and reasons end up in logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from .errors import ProtocolError
from .frames import METADATA_FIELDS, ReplyMetadata
from .jsonvalue import EMPTY_OBJECT, clean_text, freeze_json, freeze_object


class Fields:
    """The fields of one decoded frame of type ``frame_type``."""

    __slots__ = ("_data", "_type")

    def __init__(self, data: Mapping[str, Any], frame_type: str) -> None:
        self._data = data
        self._type = frame_type

    def fail(self, key: str, expected: str) -> NoReturn:
        if key not in self._data:
            raise ProtocolError(f"{self._type} frame: {key!r} is missing")
        raise ProtocolError(f"{self._type} frame: {key!r} must be {expected}")

    def ident(self, key: str) -> str:
        """A required, non-empty string (ids, keys, codes)."""
        value = self._data.get(key)
        if not isinstance(value, str) or not value:
            self.fail(key, "a non-empty string")
        return clean_text(value)

    def optional_ident(self, key: str) -> str | None:
        """A non-empty string, or ``None`` when missing or null."""
        if self._data.get(key) is None:
            return None
        return self.ident(key)

    def text(self, key: str) -> str:
        """A required string, possibly empty (user-visible text)."""
        value = self._data.get(key)
        if not isinstance(value, str):
            self.fail(key, "a string")
        return clean_text(value)

    def optional_text(self, key: str) -> str | None:
        if self._data.get(key) is None:
            return None
        return self.text(key)

    def first_text(self, *keys: str) -> str:
        """The first of ``keys`` present and not null (``reply`` or ``content``)."""
        for key in keys:
            if self._data.get(key) is not None:
                return self.text(key)
        raise ProtocolError(f"{self._type} frame: none of {', '.join(keys)} is present")

    def obj(self, key: str) -> Mapping[str, Any]:
        """A required JSON object, deep-frozen."""
        if key not in self._data:
            self.fail(key, "an object")
        return freeze_object(self._data[key], what=f"{self._type} frame: {key!r}")

    def optional_obj(self, key: str) -> Mapping[str, Any]:
        """A JSON object; the empty object when missing or null."""
        if self._data.get(key) is None:
            return EMPTY_OBJECT
        return self.obj(key)

    def lenient_bool(self, key: str) -> bool | None:
        """``True``/``False``, else ``None``: optional flags never reject a frame."""
        value = self._data.get(key)
        return value if isinstance(value, bool) else None

    def array(self, key: str) -> list[Any]:
        value = self._data.get(key)
        if not isinstance(value, list):
            self.fail(key, "an array")
        return value

    def metadata(self, key: str = "metadata") -> ReplyMetadata:
        """Reply metadata, read leniently (see :class:`ReplyMetadata`)."""
        raw = self._data.get(key)
        if not isinstance(raw, Mapping):
            # Missing, null or malformed: informational only, never fatal.
            return ReplyMetadata()
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, value in raw.items():
            if name in METADATA_FIELDS and _fits(name, value):
                if value is not None:
                    known[name] = clean_text(value) if isinstance(value, str) else value
            else:
                extra[name] = value
        return ReplyMetadata(
            **known, extra=freeze_json(extra, what=f"{self._type} frame: metadata")
        )


def _fits(name: str, value: Any) -> bool:
    if value is None:
        return True
    if name in ("tokens_used", "latency_ms"):
        # bool is an int in Python but never a count on the wire.
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)
