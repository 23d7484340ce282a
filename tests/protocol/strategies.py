"""Hypothesis strategies and helpers shared by the protocol tests."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

from satchel.protocol.messages import (
    Cancel,
    Error,
    Hello,
    Incompatible,
    Log,
    Progress,
    Request,
    Result,
    Welcome,
)

# JSON scalars as both codecs decode them: ints within int64, finite floats, text without lone
# surrogates (not encodable as UTF-8).
text = st.text(st.characters(codec="utf-8"), max_size=20)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ids = st.integers(min_value=1, max_value=2**63 - 1)


def json_values(floats: bool = True) -> st.SearchStrategy[Any]:
    """Arbitrary JSON documents (as Python values); `floats=False` for byte-exact comparisons."""
    scalars: st.SearchStrategy[Any] = st.none() | st.booleans() | ints | text
    if floats:
        scalars = scalars | st.floats(allow_nan=False, allow_infinity=False)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4)
        ),
        max_leaves=12,
    )


def json_objects(floats: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(text, json_values(floats), max_size=4)


features = st.lists(text, max_size=3).map(tuple)


def messages(floats: bool = True) -> st.SearchStrategy[msgspec.Struct]:
    """Every message type with arbitrary field values."""
    values = json_values(floats)
    objects = json_objects(floats)
    return st.one_of(
        st.builds(
            Hello, major=ints, minor=ints, client_version=text, build_id=text, features=features
        ),
        st.builds(
            Welcome,
            major=ints,
            minor=ints,
            daemon_version=text,
            build_id=text,
            pid=ints,
            features=features,
        ),
        st.builds(Incompatible, reason=text, wanted=text, actual=text),
        st.builds(Request, id=ids, method=text, params=objects),
        st.builds(Cancel, id=ids),
        st.builds(Progress, id=ids, done=ints, total=st.none() | ints, unit=text, message=text),
        st.builds(Log, id=ids, level=text, message=text),
        st.builds(Result, id=ids, value=values),
        st.builds(Error, id=st.none() | ids, code=text, message=text, details=objects),
    )


def as_dict(msg: msgspec.Struct) -> dict[str, Any]:
    """The DictCodec form of a Struct message: its tag, then every field in order."""
    out: dict[str, Any] = {"type": msg.__struct_config__.tag}
    for name in msg.__struct_fields__:
        out[name] = getattr(msg, name)
    return out


HELLO = Hello(major=1, minor=0, client_version="0.1.0", build_id="0.1.0+00000000")
WELCOME = Welcome(major=1, minor=0, daemon_version="0.1.0", build_id="0.1.0+00000000", pid=4242)
