"""Property tests: any CDB and parameter data gets a well-formed answer, never an exception."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytgt.scsi import ItNexus, ScsiTarget, ScsiTask, Status, create_lu
from pytgt.scsi.sense import decode_sense
from pytgt.stores.memory import MemoryStore

OPCODES = [0x00, 0x03, 0x08, 0x0A, 0x12, 0x15, 0x16, 0x17, 0x1A, 0x1B, 0x1D, 0x1E, 0x25, 0x28,
           0x2A, 0x2E, 0x2F, 0x34, 0x35, 0x41, 0x42, 0x55, 0x56, 0x57, 0x5A, 0x5E, 0x5F, 0x88,
           0x89, 0x8A, 0x8B, 0x8E, 0x8F, 0x90, 0x91, 0x93, 0x9E, 0xA0, 0xA3, 0xA8, 0xAA, 0xAE,
           0xAF, 0xEE, 0x37, 0x48, 0x83, 0x84, 0x9C, 0xA4, 0xB7]

cdbs = st.builds(lambda op, rest, n: bytes([op]) + rest[:n],
                 st.sampled_from(OPCODES), st.binary(min_size=15, max_size=15),
                 st.integers(0, 15))


def make_target() -> tuple[ScsiTarget, ItNexus]:
    t = ScsiTarget("iqn.x", 1)
    lu = create_lu("disk", 1, MemoryStore(64 * 512), tid=1, params={"thin_provisioning": "0"})
    lu.thin_provisioning = True  # exercise UNMAP / WRITE SAME UNMAP paths too
    t.add_lu(lu)
    n = ItNexus("n", "iqn.i", initiator_port="iqn.i,i,0x1")
    t.add_nexus(n)
    return t, n


_LOOP = asyncio.new_event_loop()


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cdb=cdbs, data=st.binary(max_size=2048), lun=st.sampled_from([0, 1 << 48, 5 << 48]))
def test_any_cdb_gets_an_answer(cdb: bytes, data: bytes, lun: int) -> None:
    t, n = make_target()
    r = _LOOP.run_until_complete(t.execute(ScsiTask(n, lun, cdb, data_out=data)))
    assert r.status in {s.value for s in Status}
    if r.status == Status.CHECK_CONDITION:
        key, asc, _ = decode_sense(r.sense)
        assert 0 < key <= 0xE and asc
        assert not r.data
    else:
        assert not r.sense
    out = t.expected_data_out(lun, cdb)
    assert out is None or out >= 0
