"""Stateful property test: a logged-in TargetConnection driven by arbitrary, partly wrong
full-feature PDUs (h2's state-machine tests, for iSCSI).

Invariants after every step: the connection never raises; everything it sends decodes;
each SCSI Response answers a command we sent, once; Data-In never exceeds a read's
expected length; an R2T asks only for bytes inside a write's expected length.
"""

from __future__ import annotations

import logging
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from fuzz.targets import IQN, _policy, _run
from pytgt.initiator.core import InitiatorConnection
from pytgt.initiator.events import LoginComplete
from pytgt.initiator.options import InitiatorOptions
from pytgt.initiator.scsi import cdb_read16, cdb_write16
from pytgt.iscsi.connection import TargetConnection
from pytgt.iscsi.events import CommandReady, SessionStarted, TaskManagement
from pytgt.iscsi.framer import Framer
from pytgt.iscsi.pdu import (
    R2T,
    DataIn,
    DataOut,
    NopOut,
    ScsiCommand,
    ScsiResponse,
    TaskMgmtRequest,
    TextRequest,
    decode_pdu,
)
from pytgt.iscsi.session import SessionTable
from pytgt.scsi.task import ItNexus, ScsiTask

LUN1 = 1 << 48
EXAMPLES = int(os.environ.get("PYTGT_FUZZ_EXAMPLES", "30"))


class ConnectionMachine(RuleBasedStateMachine):
    """Commands, Data-Out (right and wrong), NOP, text and TMFs against one connection."""

    @initialize(immediate=st.booleans(), initial_r2t=st.booleans(),
                mrdsl=st.sampled_from([512, 4096, 8192, 262144]))
    def login(self, immediate: bool, initial_r2t: bool, mrdsl: int) -> None:
        logging.disable(logging.CRITICAL)
        self.conn = TargetConnection(_policy(), SessionTable(), "127.0.0.1", login_timeout=0)
        ini = InitiatorConnection(InitiatorOptions(
            initiator_name="iqn.2026-11.org.pytgt:state", target_name=IQN,
            immediate_data=immediate, initial_r2t=initial_r2t,
            max_recv_data_segment_length=mrdsl, first_burst_length=8192,
            max_burst_length=16384))
        ini.start_login()
        for _ in range(10):
            for buf in ini.data_to_send():
                self.conn.receive_data(buf)
            self._drain()
            out = b"".join(bytes(b) for b in self.conn.data_to_send())
            if out:
                ini.receive_data(out)
            if any(isinstance(e, LoginComplete) for e in iter(ini.next_event, None)):
                break
        assert self.conn.full_feature
        self.framer = Framer(1 << 24)
        self.cmd_sn = ini.cmd_sn if hasattr(ini, "cmd_sn") else 1
        self.exp_stat_sn = 0
        self.itt = 0x100
        self.open: dict[int, tuple[bool, int]] = {}  # itt -> (write, edtl)
        self.answered: set[int] = set()
        self.data_in: dict[int, int] = {}
        self.r2ts: list[tuple[int, int, int, int]] = []  # itt, ttt, offset, length

    def _drain(self) -> None:
        while (ev := self.conn.next_event()) is not None:
            if isinstance(ev, SessionStarted) and ev.new_session:
                s = ev.session
                s.nexus = ItNexus(f"state,{s.tsih}", s.initiator_name,
                                  initiator_port=f"{s.initiator_name},i,{s.isid:#014x}")
                s.target.scsi.add_nexus(s.nexus)
            elif isinstance(ev, CommandReady):
                s = self.conn.session
                assert s is not None
                cmd = ev.task.command
                st_ = ScsiTask(s.nexus, cmd.lun, cmd.cdb, cmd.itt,
                               data_out=ev.task.data_out_buffer(),
                               expected_in=cmd.expected_data_transfer_length if cmd.read else 0,
                               expected_out=ev.task.edtl)
                r = _run(s.target.scsi.execute(st_))
                self.conn.complete_command(ev.task, r.status, r.data, r.sense)
            elif isinstance(ev, TaskManagement):
                self.conn.complete_tmf(ev.itt, 0)

    def _send(self, *pdus: object) -> None:
        for pdu in pdus:
            raw = pdu.encode()  # type: ignore[attr-defined]
            data = bytes(getattr(pdu, "data", b""))
            self.conn.receive_data(raw + data + bytes(-len(data) % 4))
        self._drain()
        out = b"".join(bytes(b) for b in self.conn.data_to_send())
        self.framer.receive_data(out)
        while (f := self.framer.next_frame()) is not None:
            self._check(decode_pdu(f.bhs, f.data, f.ahs))

    def _check(self, pdu: object) -> None:
        if isinstance(pdu, ScsiResponse):
            assert pdu.itt in self.open, f"response for unknown ITT {pdu.itt:#x}"
            assert pdu.itt not in self.answered, f"two responses for ITT {pdu.itt:#x}"
            self.answered.add(pdu.itt)
        elif isinstance(pdu, DataIn):
            assert pdu.itt in self.open and not self.open[pdu.itt][0]
            self.data_in[pdu.itt] = self.data_in.get(pdu.itt, 0) + len(pdu.data)
            assert self.data_in[pdu.itt] <= self.open[pdu.itt][1], "Data-In beyond EDTL"
            if pdu.status_present:
                assert pdu.itt not in self.answered, f"two statuses for ITT {pdu.itt:#x}"
                self.answered.add(pdu.itt)
        elif isinstance(pdu, R2T):
            write, edtl = self.open[pdu.itt]
            end = pdu.buffer_offset + pdu.desired_data_transfer_length
            assert write and end <= edtl, "R2T beyond EDTL"
            self.r2ts.append((pdu.itt, pdu.ttt, pdu.buffer_offset,
                              pdu.desired_data_transfer_length))

    def _next(self) -> tuple[int, int]:
        self.itt += 1
        self.cmd_sn += 1
        return self.itt, self.cmd_sn - 1

    @rule(lba=st.integers(0, 60), blocks=st.integers(0, 40), short=st.booleans())
    def read(self, lba: int, blocks: int, short: bool) -> None:
        itt, sn = self._next()
        edtl = blocks * 512 - (100 if short and blocks else 0)
        self.open[itt] = (False, edtl)
        self._send(ScsiCommand(itt, cdb_read16(lba, blocks), LUN1, edtl, sn,
                               read=True, final=True))

    @rule(lba=st.integers(0, 60), blocks=st.integers(1, 40), imm=st.integers(0, 9000),
          extra=st.integers(-600, 600))
    def write(self, lba: int, blocks: int, imm: int, extra: int) -> None:
        itt, sn = self._next()
        edtl = max(0, blocks * 512 + extra)
        self.open[itt] = (True, edtl)
        data = os.urandom(min(imm, edtl))
        self._send(ScsiCommand(itt, cdb_write16(lba, blocks), LUN1, edtl, sn, write=True,
                               final=True, data=data))

    @rule(pick=st.integers(0, 1000), length=st.integers(0, 9000), offset=st.integers(-1, 3),
          final=st.booleans(), bad_ttt=st.booleans())
    def data_out(self, pick: int, length: int, offset: int, final: bool,
                 bad_ttt: bool) -> None:
        if not self.r2ts:
            return
        itt, ttt, off, want = self.r2ts[pick % len(self.r2ts)]
        start = off if offset < 0 else off + offset * 512
        self._send(DataOut(itt, 0xDEAD if bad_ttt else ttt, 0, start,
                           os.urandom(min(length, want)), final=final, lun=LUN1))

    @rule(data=st.binary(max_size=300), immediate=st.booleans())
    def nop(self, data: bytes, immediate: bool) -> None:
        itt, sn = self._next()
        if immediate:
            self.cmd_sn -= 1
        self._send(NopOut(itt, cmd_sn=sn, immediate=immediate, data=data))

    @rule(text=st.sampled_from([b"SendTargets=All\0", b"MaxBurstLength=1024\0", b"x\0",
                                b"SendTargets=" + IQN.encode() + b"\0"]))
    def text(self, text: bytes) -> None:
        itt, sn = self._next()
        self._send(TextRequest(itt, cmd_sn=sn, final=True, data=text))

    @rule(function=st.sampled_from([1, 2, 3, 4, 5, 6]), pick=st.integers(0, 1000))
    def tmf(self, function: int, pick: int) -> None:
        itt, sn = self._next()
        self.cmd_sn -= 1  # immediate
        ref = sorted(self.open)[pick % len(self.open)] if self.open else 0xFFFFFFFF
        self._send(TaskMgmtRequest(itt, function, LUN1, ref, cmd_sn=sn, immediate=True))
        # aborted tasks never answer; forget them for the invariants (3 = CLEAR ACA aborts
        # nothing: it is not supported)
        if function in (1, 2, 4, 5, 6):
            for i in list(self.open):
                if function != 1 or i == ref:
                    self.answered.add(i)

    def teardown(self) -> None:
        logging.disable(logging.NOTSET)
        conn = getattr(self, "conn", None)
        s = conn.session if conn is not None else None
        if s is not None and s.nexus is not None:
            s.target.scsi.remove_nexus(s.nexus)


ConnectionMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=25, deadline=None, database=None,
    suppress_health_check=list(HealthCheck))
TestConnectionMachine = ConnectionMachine.TestCase
