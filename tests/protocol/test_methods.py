"""Core method schemas: frozen Structs that travel inside Request.params and Result.value."""

from __future__ import annotations

import msgspec

from satchel.protocol.codec import DictCodec, StructCodec
from satchel.protocol.messages import Request, Result
from satchel.protocol.methods.core import (
    ExitRecord,
    Job,
    PingParams,
    PingResult,
    StatusResult,
    StopParams,
    StopResult,
)

STATUS = StatusResult(
    pid=10,
    version="0.1.0",
    build_id="0.1.0+00000000",
    protocol="1.0",
    started_at=1.5,
    uptime=2.0,
    socket="/run/satchel.sock",
    cache_dir="c",
    config_dir="d",
    state_dir="s",
    log_file=None,
    activation="autostart",
    idle_timeout=600.0,
    jobs=[Job(id=1, method="prefetch", started_at=1.0, description="3 files")],
    previous_exit=ExitRecord(pid=9, reason="killed", at=1.0, clean=False),
)


def test_status_result_travels_as_a_result_value() -> None:
    body = StructCodec().encode(Result(id=1, value=STATUS))
    decoded = StructCodec().decode(body)
    assert msgspec.convert(decoded.value, StatusResult) == STATUS


def test_a_dict_client_reads_status_by_field_name() -> None:
    body = StructCodec().encode(Result(id=1, value=STATUS))
    value = DictCodec().decode(body)["value"]
    assert value["jobs"][0]["method"] == "prefetch"
    assert value["previous_exit"]["clean"] is False
    assert value["config_error"] is None


def test_unknown_result_fields_are_ignored() -> None:
    raw = {**msgspec.to_builtins(STATUS), "added_later": {"x": 1}}
    assert msgspec.convert(raw, StatusResult) == STATUS


def test_params_come_from_a_request() -> None:
    assert msgspec.convert(Request(id=1, method="ping").params, PingParams) == PingParams()
    params = msgspec.convert({"drain_timeout": 5}, StopParams)
    assert params.drain_timeout == 5.0
    assert msgspec.convert({}, StopParams).drain_timeout is None


def test_ping_and_stop_results_carry_the_pid() -> None:
    assert msgspec.convert({"pid": 3}, PingResult).pid == 3
    assert msgspec.convert({"pid": 3}, StopResult).pid == 3
