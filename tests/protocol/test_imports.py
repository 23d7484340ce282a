"""`import satchel.protocol` stays cheap: the thin client pays for it on every command.

Precisely: importing `satchel.protocol`, `satchel.protocol.codec` (for `DictCodec`) and
`satchel.protocol.buildid` loads none of msgspec, json, re, enum, typing or socket. Encoding and
decoding *valid* messages with `DictCodec` loads nothing more; a *malformed* body may import
`json.decoder` (and `re`) to build the error message. msgspec arrives with the first `StructCodec`.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = {"msgspec", "json", "re", "enum", "typing", "socket"}


def run(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, check=True
    )


def imported_modules(importtime_stderr: str) -> set[str]:
    """Module names from `python -X importtime` output ("import time: self | cumul | name")."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def test_importing_the_client_surface_loads_nothing_heavy() -> None:
    code = (
        "import satchel.protocol; from satchel.protocol.codec import DictCodec; "
        "from satchel.protocol.buildid import build_id"
    )
    loaded = imported_modules(run(code, "-X", "importtime").stderr)
    assert "satchel.protocol.codec" in loaded  # the parse worked
    assert not loaded & HEAVY, sorted(loaded & HEAVY)
    assert not {m for m in loaded if m.startswith("msgspec")}


def test_a_dict_codec_conversation_loads_nothing_heavy() -> None:
    code = """
import sys
from satchel.protocol import CLIENT, Connection, NEED_DATA, frame
from satchel.protocol.codec import DictCodec
from satchel.protocol.buildid import build_id
conn = Connection(CLIENT, DictCodec())
conn.send({"type": "hello", "major": 1, "minor": 0, "client_version": "0", "build_id": build_id()})
conn.send({"type": "request", "id": 1, "method": "ping"})
conn.receive_data(
    frame(b'{"type":"welcome","major":1,"minor":0,"daemon_version":"0","build_id":"b","pid":1}')
    + frame(b'{"type":"result","id":1,"value":{"pid":1}}')
)
while conn.next_event() is not NEED_DATA:
    pass
print(" ".join(sorted(sys.modules)))
"""
    loaded = set(run(code).stdout.split())
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


def test_a_malformed_body_imports_json_decoder_for_its_message() -> None:
    code = """
import sys
from satchel.protocol.codec import DictCodec
from satchel.protocol.errors import MalformedFrame
try:
    DictCodec().decode(b'{"type" 1}')
except MalformedFrame as exc:
    print("json.decoder" in sys.modules, exc)
"""
    assert run(code).stdout.startswith("True frame is not valid JSON: Expecting ':' delimiter")


def test_the_struct_codec_brings_msgspec() -> None:
    code = """
import sys
from satchel.protocol import Connection
Connection("server")
print("msgspec" in sys.modules)
"""
    assert run(code).stdout.strip() == "True"
