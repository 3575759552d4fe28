"""pytgtd's iSNS settings: the --iscsi keys and tgt's run-time switches (no server)."""

from __future__ import annotations

import asyncio

import pytest

from pytgt.daemon.isns import IsnsControl, IsnsSettings, split_isns_options
from pytgt.daemon.server import Daemon


def test_isns_keys_are_taken_out_of_the_iscsi_options() -> None:
    settings, rest = split_isns_options(
        ["portal=127.0.0.1:0,isns=On,isns_addr=isns.example,isns_port=3206",
         "isns_ac=On,nop_count=3,isns_esi_interval=20"])
    assert rest == ["portal=127.0.0.1:0", "nop_count=3"]
    assert settings == IsnsSettings(enabled=True, address="isns.example", port=3206,
                                    access_control=True, esi_interval=20)
    assert split_isns_options(["portal=[::1]:0"]) == (IsnsSettings(), ["portal=[::1]:0"])


@pytest.mark.parametrize("value, error", [
    ("isns=On", "isns=On needs isns_addr=HOST"), ("isns=yes,isns_addr=h", "must be On or Off"),
    ("isns_port=70000", "must be 1 to 65535"), ("isns_esi_interval=0", "1 or more"),
])
def test_bad_isns_keys(value: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        split_isns_options([value])


def test_tgt_switches_refuse_what_tgt_refuses() -> None:
    async def body() -> None:
        async with Daemon([("127.0.0.1", 0)]) as daemon:
            control = IsnsControl(daemon, IsnsSettings())
            await control.start()
            for name, value in (("iSNS", "On"), ("iSNSServerPort", "x"), ("iSNSFoo", "1"),
                                ("iSNSAccessControl", "maybe")):
                with pytest.raises(ValueError):
                    await control.update(name, value)
            await control.update("iSNS", "Off")  # off stays off
            await control.update("iSNSAccessControl", "On")
            assert control.client is None and daemon.management is not None
            assert daemon.management.isns.access_control
            await control.stop()

    asyncio.run(asyncio.wait_for(body(), 30))
