"""Write the golden wire captures of a short conversation.

``handshake.bin`` is what a client sends (Hello, two pipelined Requests, a Cancel) and
``reply.bin`` what the daemon answers. They pin the wire format: `test_golden.py` fails if the
encoding of these messages ever changes. After an *intended* change (which needs a protocol
version bump, see docs/protocol.md), regenerate them from the repository root with::

    uv run python -m tests.protocol.golden.make_golden
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec

from satchel.protocol.codec import StructCodec
from satchel.protocol.framing import frame
from satchel.protocol.messages import (
    Cancel,
    Error,
    Hello,
    Log,
    Progress,
    Request,
    Result,
    Welcome,
)

HERE = Path(__file__).parent

CLIENT_MESSAGES = [
    Hello(major=1, minor=0, client_version="0.1.0", build_id="0.1.0+5ca1ab1e", features=("x",)),
    Request(id=1, method="ping"),
    Request(id=2, method="prefetch", params={"requirements": ["internal-tool>=1.0"]}),
    Cancel(id=2),
]

SERVER_MESSAGES = [
    Welcome(major=1, minor=0, daemon_version="0.1.0", build_id="0.1.0+5ca1ab1e", pid=4242),
    Result(id=1, value={"pid": 4242}),
    Progress(id=2, done=1, total=3, unit="files", message="internal-tool-1.0-py3-none-any.whl"),
    Log(id=2, level="warning", message="cancelling"),
    Error(id=2, code="cancelled", message="cancelled by the client", details={"files": 1}),
]


def stream(messages: Sequence[msgspec.Struct]) -> bytes:
    codec = StructCodec()
    return b"".join(frame(codec.encode(m)) for m in messages)


def main() -> None:
    (HERE / "handshake.bin").write_bytes(stream(CLIENT_MESSAGES))
    (HERE / "reply.bin").write_bytes(stream(SERVER_MESSAGES))


if __name__ == "__main__":
    main()
