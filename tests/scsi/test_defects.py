"""READ DEFECT DATA(10/12): an empty list in the format asked for."""

from __future__ import annotations

import pytest

from .conftest import Harness

INVALID_FIELD = (0x05, 0x24, 0x00)


@pytest.mark.parametrize("flags", [0x00, 0x08, 0x10, 0x18 | 0x03, 0x18 | 0x05])
def test_read_defect_data_10(h: Harness, flags: int) -> None:
    d = bytes(h.run([0x37, 0, flags, 0, 0, 0, 0, 0, 32, 0]).data)
    assert d == bytes([0, flags, 0, 0])
    assert bytes(h.run([0x37, 0, flags, 0, 0, 0, 0, 0, 2, 0]).data) == bytes([0, flags])


@pytest.mark.parametrize("flags", [0x00, 0x18, 0x08 | 0x04])
def test_read_defect_data_12(h: Harness, flags: int) -> None:
    d = bytes(h.run([0xB7, flags, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]).data)
    assert d == bytes([0, flags]) + bytes(6)


@pytest.mark.parametrize("fmt", [1, 2, 7])
def test_read_defect_data_reserved_format(h: Harness, fmt: int) -> None:
    assert h.sense([0x37, 0, fmt, 0, 0, 0, 0, 0, 32, 0]) == INVALID_FIELD
    assert h.sense([0xB7, fmt, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]) == INVALID_FIELD
