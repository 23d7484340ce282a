"""Codecs: how a message becomes a frame body and back.

Two interchangeable codecs produce the same JSON, so either side may use either one:

- `StructCodec` (the daemon's): msgspec Structs from `satchel.protocol.messages`, decoded with
  strict type validation. msgspec is imported when the first `StructCodec` is created, not when
  this module is imported.
- `DictCodec` (the thin client's): plain dicts such as
  ``{"type": "request", "id": 1, "method": "ping", "params": {}}``, stdlib only. It uses the C
  accelerator `_json` directly, because the `json` package imports `re` (and `re` imports
  `enum`), ~5 ms the client pays on every command. Encoding and decoding valid messages import
  nothing beyond `_json`; `json.decoder` (with `re`) is imported only to report some kinds of
  malformed body (see `_scan_object`).

Both validate what `Connection` relies on: a JSON object, a known ``"type"``, every required field
present, each field of the right JSON type (ints are ints, not floats or booleans). Decoding
anything else raises `MalformedFrame` and nothing else. Unknown fields are dropped on decoding
(schema evolution); missing optional fields are filled with their defaults, so a decoded dict
always has every field of its type.

Encoding: fields are written in declaration order, compactly, UTF-8 without escaping non-ASCII,
so both codecs emit identical bytes for the same message; the one difference is the spelling of
float exponents (msgspec writes ``1e16``, the stdlib ``1e+16``), which both decoders accept.
"""

from __future__ import annotations

import _json

from satchel.protocol.errors import LocalProtocolError, MalformedFrame, ProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Codec", "DictCodec", "StructCodec"]

_REQUIRED = object()

# The shape of every message, mirroring satchel.protocol.messages (a test keeps them in step):
# type -> ((field, kind, default), ...). Kinds: "int", "int?" (int or null), "str", "strs" (array
# of strings), "dict" (object), "any".
_FIELDS: dict[str, tuple[tuple[str, str, object], ...]] = {
    "hello": (
        ("major", "int", _REQUIRED),
        ("minor", "int", _REQUIRED),
        ("client_version", "str", _REQUIRED),
        ("build_id", "str", _REQUIRED),
        ("features", "strs", ()),
    ),
    "welcome": (
        ("major", "int", _REQUIRED),
        ("minor", "int", _REQUIRED),
        ("daemon_version", "str", _REQUIRED),
        ("build_id", "str", _REQUIRED),
        ("pid", "int", _REQUIRED),
        ("features", "strs", ()),
    ),
    "incompatible": (
        ("reason", "str", _REQUIRED),
        ("wanted", "str", _REQUIRED),
        ("actual", "str", _REQUIRED),
    ),
    "request": (
        ("id", "int", _REQUIRED),
        ("method", "str", _REQUIRED),
        ("params", "dict", None),
    ),
    "cancel": (("id", "int", _REQUIRED),),
    "progress": (
        ("id", "int", _REQUIRED),
        ("done", "int", 0),
        ("total", "int?", None),
        ("unit", "str", ""),
        ("message", "str", ""),
    ),
    "log": (
        ("id", "int", _REQUIRED),
        ("level", "str", _REQUIRED),
        ("message", "str", _REQUIRED),
    ),
    "result": (
        ("id", "int", _REQUIRED),
        ("value", "any", None),
    ),
    "error": (
        ("id", "int?", _REQUIRED),
        ("code", "str", _REQUIRED),
        ("message", "str", _REQUIRED),
        ("details", "dict", None),
    ),
}

_WHITESPACE = " \t\n\r"


class Codec:
    """What `Connection` needs from a codec; messages are opaque to it otherwise."""

    def encode(self, msg: Any) -> bytes:
        """Return the frame body for `msg`; `LocalProtocolError` if it is not a valid message."""
        raise NotImplementedError

    def decode(self, body: bytes) -> Any:
        """Return the message in `body`; `MalformedFrame` (only) if it is not a valid message."""
        raise NotImplementedError

    def kind(self, msg: Any) -> str:
        """Return the message's tag ("hello", "request", ...)."""
        raise NotImplementedError

    def request_id(self, msg: Any) -> int | None:
        """Return the message's request id, or None (handshake and connection-level messages)."""
        raise NotImplementedError


# --- DictCodec --------------------------------------------------------------------------------


def _parse_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf (msgspec refuses numbers out of float range, so do we)
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class _ScanContext:
    """The attributes `_json.make_scanner` reads (what `json.JSONDecoder` would provide)."""

    strict = True  # no raw control characters inside strings
    object_hook = None
    object_pairs_hook = None
    parse_float = staticmethod(_parse_float)
    parse_int = int
    parse_constant = staticmethod(_reject_constant)


_scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]


def _scan_object(text: str, start: int) -> tuple[Any, int]:
    """Scan one JSON value at `start`, returning it and the index after it.

    CPython 3.11's `_json` builds its error (`json.JSONDecodeError`) from `json.decoder`, but
    only when that module is already imported; otherwise it fails with `SystemError`. So the
    first malformed body imports `json.decoder` (and with it `re`) and is scanned again to get
    the real error. Well-formed bodies never pay for that import.
    """
    try:
        return _scan(text, start)
    except SystemError:
        import json.decoder  # noqa: F401

        return _scan(text, start)


def _refuse_to_encode(obj: object) -> object:
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _check(kind: str, name: str, value: object, error: type[ProtocolError]) -> object:
    """Return `value` (arrays of strings as a tuple) if it has JSON type `kind`, else raise."""
    if kind == "int":
        ok = type(value) is int
    elif kind == "str":
        ok = type(value) is str
    elif kind == "int?":
        ok = value is None or type(value) is int
    elif kind == "dict":
        ok = type(value) is dict
    elif kind == "strs":
        if isinstance(value, list | tuple) and all(type(v) is str for v in value):
            return tuple(value)
        ok = False
    else:  # "any"
        ok = True
    if not ok:
        raise error(f"field {name!r} must be {kind}, not {type(value).__name__}")
    return value


def _normalise(obj: dict[str, Any], error: type[ProtocolError], strict: bool) -> dict[str, Any]:
    """Return `obj` with its fields checked, ordered and defaulted; `strict` refuses extras."""
    kind = obj.get("type")
    fields = _FIELDS.get(kind) if type(kind) is str else None
    if fields is None:
        raise error(f"unknown message type {kind!r}")
    out: dict[str, Any] = {"type": kind}
    for name, field_kind, default in fields:
        if name in obj:
            value = obj[name]
        elif default is _REQUIRED:
            raise error(f"{kind} message lacks field {name!r}")
        elif field_kind == "dict":
            value = {}
        else:
            value = default
        out[name] = _check(field_kind, name, value, error)
    if strict:
        extra = [key for key in obj if key not in out]
        if extra:
            raise error(f"{kind} message has unknown fields {extra}")
    return out


class DictCodec(Codec):
    """Messages as plain dicts, stdlib only, for processes that must start fast."""

    def encode(self, msg: Any) -> bytes:
        if type(msg) is not dict:
            raise LocalProtocolError(f"a message is a dict, not {type(msg).__name__}")
        out = _normalise(msg, LocalProtocolError, strict=True)
        encoder = _json.make_encoder(
            {}, _refuse_to_encode, _json.encode_basestring, None, ":", ",", False, False, False
        )
        try:
            return "".join(encoder(out, 0)).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise LocalProtocolError(f"cannot encode {out['type']} message: {exc}") from None

    def decode(self, body: bytes) -> dict[str, Any]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedFrame(f"frame is not UTF-8: {exc}") from None
        end = len(text)
        start = 0
        while start < end and text[start] in _WHITESPACE:
            start += 1
        if start == end or text[start] != "{":
            raise MalformedFrame("frame is not a JSON object")
        try:
            obj, stop = _scan_object(text, start)
        except StopIteration as exc:  # the scanner found no value where one must start
            raise MalformedFrame(
                f"frame is not valid JSON: value expected at {exc.value}"
            ) from None
        except (ValueError, RecursionError, SystemError) as exc:
            raise MalformedFrame(f"frame is not valid JSON: {exc}") from None
        while stop < end and text[stop] in _WHITESPACE:
            stop += 1
        if stop != end:
            raise MalformedFrame("frame has data after its JSON object")
        return _normalise(obj, MalformedFrame, strict=False)

    def kind(self, msg: Any) -> str:
        kind = msg.get("type") if type(msg) is dict else None
        if kind not in _FIELDS:
            raise LocalProtocolError(f"not a message: {msg!r:.80}")
        return kind  # type: ignore[no-any-return]

    def request_id(self, msg: Any) -> int | None:
        return msg.get("id")  # type: ignore[no-any-return]


# --- StructCodec ------------------------------------------------------------------------------


class StructCodec(Codec):
    """Messages as the frozen msgspec Structs of `satchel.protocol.messages`, strictly validated."""

    def __init__(self) -> None:
        import msgspec

        from satchel.protocol import messages

        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(messages.Message).decode
        self._tags: dict[type, str] = {
            t: t.__struct_config__.tag  # type: ignore[misc]
            for t in messages.MESSAGE_TYPES
        }
        self._decode_errors = (msgspec.DecodeError, RecursionError, ValueError)
        self._encode_errors = (msgspec.EncodeError, TypeError, ValueError, RecursionError)

    def encode(self, msg: Any) -> bytes:
        kind = self.kind(msg)
        try:
            return self._encode(msg)
        except self._encode_errors as exc:
            raise LocalProtocolError(f"cannot encode {kind} message: {exc}") from None

    def decode(self, body: bytes) -> Any:
        try:
            return self._decode(body)
        except self._decode_errors as exc:
            raise MalformedFrame(f"invalid message: {exc}") from None

    def kind(self, msg: Any) -> str:
        tag = self._tags.get(type(msg))
        if tag is None:
            raise LocalProtocolError(f"not a message: {type(msg).__name__}")
        return tag

    def request_id(self, msg: Any) -> int | None:
        return getattr(msg, "id", None)
