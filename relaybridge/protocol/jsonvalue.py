"""JSON decoding, encoding and deep freezing shared by frames and the codec.

Frames are frozen, so the JSON objects they carry (payloads, metadata, unknown
frames) are stored deep-frozen: objects become read-only mappings and arrays
become tuples. Freezing also validates: only JSON values, string keys, finite
numbers and a bounded depth get in, so a frame that exists can always be
serialized.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NoReturn

from .errors import ProtocolError

#: Deeper documents are refused. Real payloads are a few levels deep; the bound
#: keeps hostile input from exhausting the interpreter's recursion limit.
MAX_JSON_DEPTH = 100

_SURROGATE = re.compile("[\ud800-\udfff]")

#: The frozen empty object, shared because it can never change.
EMPTY_OBJECT: Mapping[str, Any] = MappingProxyType({})


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD.

    JSON's ``\\ud800`` escapes decode to lone surrogates, which cannot be encoded
    as UTF-8: storing or forwarding them would fail far from here.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def freeze_json(value: Any, *, what: str = "value", _depth: int = 0) -> Any:
    """A deep-frozen copy of the JSON value ``value``; ProtocolError if it is not one."""
    if _depth > MAX_JSON_DEPTH:
        raise ProtocolError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProtocolError(f"{what} holds a number that is not finite")
        return value
    if isinstance(value, Mapping):
        frozen: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProtocolError(f"{what} has an object key that is not a string")
            frozen[clean_text(key)] = freeze_json(item, what=what, _depth=_depth + 1)
        return MappingProxyType(frozen)
    if isinstance(value, list | tuple):
        return tuple(freeze_json(item, what=what, _depth=_depth + 1) for item in value)
    raise ProtocolError(f"{what} holds a {type(value).__name__}, which is not a JSON value")


def freeze_object(value: Any, *, what: str) -> Mapping[str, Any]:
    """Like :func:`freeze_json`, for values that must be JSON objects."""
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{what} must be a JSON object")
    frozen: Mapping[str, Any] = freeze_json(value, what=what)
    return frozen


def freeze_attribute(instance: object, name: str) -> None:
    """Deep-freeze the JSON object in ``instance.name``, in ``__post_init__``."""
    value = freeze_object(getattr(instance, name), what=f"{type(instance).__name__}.{name}")
    # Frozen dataclasses can only be completed through object.__setattr__.
    object.__setattr__(instance, name, value)


def thaw_json(value: Any) -> Any:
    """A plain, mutable copy (dicts and lists) of a frozen JSON value."""
    if isinstance(value, Mapping):
        return {key: thaw_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [thaw_json(item) for item in value]
    return value


def _encode_default(value: Any) -> Any:
    # json.dumps knows tuples but not read-only mappings.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(value: Any) -> str:
    """Compact, ASCII-only JSON text: safe on any transport and for any log."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_encode_default)


def dumps_like_relay(value: Any) -> str:
    """``json.dumps(value)`` with default formatting, which is how Relay sizes payloads."""
    return json.dumps(value, default=_encode_default)


def _reject_constant(name: str) -> NoReturn:
    raise ProtocolError(f"frame holds {name}, which JSON does not allow")


def _parse_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ProtocolError("frame holds a number too large to represent")
    return number


def decode_json(text: str | bytes | bytearray | memoryview) -> Any:
    """The JSON value in ``text``; ProtocolError for anything that is not one."""
    if isinstance(text, bytes | bytearray | memoryview):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("frame is not valid UTF-8") from None
    if not isinstance(text, str):
        raise ProtocolError(f"frame must be text, not {type(text).__name__}")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("frame is nested too deeply") from None
    except json.JSONDecodeError as exc:
        # exc.msg names the problem without quoting the document.
        raise ProtocolError(f"frame is not valid JSON ({exc.msg} at {exc.pos})") from None
    except ValueError:
        # int() refuses integers with thousands of digits.
        raise ProtocolError("frame holds a number too large to read") from None
