"""Full feature phase of the initiator core against hand-built target PDUs."""

from __future__ import annotations

import pytest

from pytgt.initiator.errors import CommandRejected, ConnectionLost
from pytgt.initiator.events import (
    AsyncEventReceived,
    CommandComplete,
    ConnectionClosed,
    LogoutComplete,
    NopReply,
    RequestFailed,
    TaskManagementComplete,
    TextComplete,
)
from pytgt.initiator.scsi import cdb_read16, cdb_write16
from pytgt.iscsi.constants import RESERVED_TAG, AsyncEvent, TmfFunction
from pytgt.iscsi.pdu import (
    R2T,
    AsyncMessage,
    DataIn,
    DataOut,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TextRequest,
    TextResponse,
)
from pytgt.iscsi.text import encode_text
from pytgt.scsi.lun import lun_field

from .util import logged_in

FIXED_SENSE = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0x01, 0, 0, 0, 0])


def test_read_reassembles_data_in_with_status_in_last() -> None:
    conn, peer = logged_in()
    itt = conn.send_command(1, cdb_read16(0, 4), read_length=2048)
    (cmd,) = peer.sent()
    assert isinstance(cmd, ScsiCommand) and cmd.read and not cmd.write and cmd.final
    assert (cmd.lun, cmd.cmd_sn, cmd.exp_stat_sn, cmd.expected_data_transfer_length) == (
        lun_field(1), 1, 2, 2048)
    assert conn.cmd_sn == 2
    payload = bytes(range(256)) * 8
    events = peer.feed(
        DataIn(itt, 0, 0, payload[:1000], exp_cmd_sn=2, max_cmd_sn=40),
        DataIn(itt, 1, 1000, payload[1000:1500], exp_cmd_sn=2, max_cmd_sn=40),
        DataIn(itt, 2, 1500, payload[1500:], final=True, status_present=True, stat_sn=2,
               exp_cmd_sn=2, max_cmd_sn=40),
        byte_at_a_time=True)
    (ev,) = events
    assert isinstance(ev, CommandComplete) and ev.itt == itt
    assert ev.result.ok and ev.result.data == payload and ev.result.residual == 0
    assert conn.exp_stat_sn == 3 and conn.max_cmd_sn == 40 and conn.outstanding == 0


def test_read_underflow_truncates_data() -> None:
    conn, peer = logged_in()
    itt = conn.send_command(1, cdb_read16(0, 1), read_length=512)
    peer.sent()
    (ev,) = peer.feed(DataIn(itt, 0, 0, b"x" * 36, final=True, status_present=True,
                             underflow=True, residual_count=476, stat_sn=2, exp_cmd_sn=2,
                             max_cmd_sn=33))
    assert ev.result.data == b"x" * 36 and ev.result.underflow and ev.result.residual == 476


def test_check_condition_with_sense_in_scsi_response() -> None:
    conn, peer = logged_in()
    itt = conn.send_command(1, cdb_read16(1 << 40, 1), read_length=512)
    peer.sent()
    body = len(FIXED_SENSE).to_bytes(2, "big") + FIXED_SENSE
    (ev,) = peer.feed(ScsiResponse(itt, 0x02, 0, 2, 2, 33, 0, 512, False, True, data=body))
    r = ev.result
    assert r.status == 2 and r.sense == FIXED_SENSE and r.data == b""
    assert (r.sense_key, r.asc, r.ascq) == (5, 0x24, 1) and not r.ok


def test_write_with_r2t_splits_at_target_mrdsl() -> None:
    conn, peer = logged_in({"ImmediateData": "No", "InitialR2T": "Yes",
                            "MaxRecvDataSegmentLength": "4096"})
    data = bytes(i % 251 for i in range(10000))
    itt = conn.send_command(2, cdb_write16(0, 20), data_out=data)
    (cmd,) = peer.sent()
    assert cmd.write and cmd.final and cmd.data == b""
    assert cmd.expected_data_transfer_length == 10000
    assert peer.feed(R2T(itt, 7, 0, 0, 8192, exp_cmd_sn=2, max_cmd_sn=33)) == []
    outs = peer.sent()
    assert [(o.ttt, o.data_sn, o.buffer_offset, len(o.data), o.final) for o in outs] == [
        (7, 0, 0, 4096, False), (7, 1, 4096, 4096, True)]
    assert all(isinstance(o, DataOut) and o.itt == itt and o.lun == lun_field(2)
               for o in outs)
    peer.feed(R2T(itt, 8, 1, 8192, 1808, exp_cmd_sn=2, max_cmd_sn=33))
    (last,) = peer.sent()
    assert (last.ttt, last.data_sn, last.buffer_offset, last.final) == (8, 0, 8192, True)
    got = b"".join(bytes(o.data) for o in [*outs, last])
    assert got == data
    (ev,) = peer.feed(ScsiResponse(itt, 0, 0, 2, 2, 33))
    assert ev.result.ok


def test_immediate_and_unsolicited_data_up_to_first_burst() -> None:
    conn, peer = logged_in({"ImmediateData": "Yes", "InitialR2T": "No",
                            "FirstBurstLength": "16384", "MaxRecvDataSegmentLength": "4096"},
                           immediate_data=True, initial_r2t=False)
    data = bytes(20000)
    itt = conn.send_command(1, cdb_write16(0, 40), data_out=data)
    cmd, *outs = peer.sent()
    assert len(cmd.data) == 4096 and not cmd.final
    assert [(o.ttt, o.data_sn, o.buffer_offset, len(o.data), o.final) for o in outs] == [
        (RESERVED_TAG, 0, 4096, 4096, False), (RESERVED_TAG, 1, 8192, 4096, False),
        (RESERVED_TAG, 2, 12288, 4096, True)]
    peer.feed(R2T(itt, 3, 0, 16384, 3616, exp_cmd_sn=2, max_cmd_sn=33))
    (rest,) = peer.sent()
    assert (rest.buffer_offset, len(rest.data), rest.data_sn, rest.final) == (16384, 3616, 0,
                                                                               True)


def test_immediate_data_only_when_initial_r2t() -> None:
    conn, peer = logged_in({"ImmediateData": "Yes", "FirstBurstLength": "65536"})
    conn.send_command(1, cdb_write16(0, 1), data_out=bytes(512))
    (cmd,) = peer.sent()
    assert len(cmd.data) == 512 and cmd.final


def test_cmd_sn_window_queues_until_open() -> None:
    conn, peer = logged_in(window=1)
    a = conn.send_command(1, cdb_read16(0, 1), read_length=512)
    b = conn.send_command(1, cdb_read16(1, 1), read_length=512)
    (cmd,) = peer.sent()
    assert cmd.itt == a and cmd.cmd_sn == 1
    # A status for the first command opens the window by one: b goes out with CmdSN 2
    peer.feed(ScsiResponse(a, 0, 0, 2, 2, 2))
    (cmd2,) = peer.sent()
    assert cmd2.itt == b and cmd2.cmd_sn == 2 and cmd2.exp_stat_sn == 3


def test_stale_window_update_ignored() -> None:
    conn, peer = logged_in(window=8)
    conn.send_nop(immediate=True)
    peer.sent()
    # MaxCmdSN < ExpCmdSN - 1 must be ignored (4.2.2.1)
    peer.feed(NopIn(RESERVED_TAG, RESERVED_TAG, 2, 10, 5))
    assert (conn.exp_cmd_sn, conn.max_cmd_sn) == (1, 8)


def test_answers_target_ping() -> None:
    conn, peer = logged_in()
    assert peer.feed(NopIn(RESERVED_TAG, 0x1234, 2, 1, 32, lun=lun_field(3),
                           data=b"ping")) == []
    (out,) = peer.sent()
    assert isinstance(out, NopOut)
    assert (out.itt, out.ttt, out.cmd_sn, out.exp_stat_sn, out.immediate) == (
        RESERVED_TAG, 0x1234, 1, 2, True)
    assert out.data == b"ping" and out.lun == lun_field(3)
    assert conn.cmd_sn == 1  # not advanced


def test_our_nop_ping() -> None:
    conn, peer = logged_in()
    itt = conn.send_nop(b"abc")
    (out,) = peer.sent()
    assert out.itt == itt and out.ttt == RESERVED_TAG and out.immediate and out.data == b"abc"
    (ev,) = peer.feed(NopIn(itt, RESERVED_TAG, 2, 1, 32, data=b"abc"))
    assert isinstance(ev, NopReply) and ev.data == b"abc"


def test_reject_fails_referenced_command() -> None:
    conn, peer = logged_in()
    itt = conn.send_command(1, cdb_read16(0, 1), read_length=512)
    (cmd,) = peer.sent()
    (ev,) = peer.feed(Reject(0x09, 2, 2, 33, data=cmd.encode()))
    assert isinstance(ev, RequestFailed) and ev.itt == itt
    assert isinstance(ev.error, CommandRejected) and ev.error.reason == 0x09


def test_task_management_refers_to_command_cmd_sn() -> None:
    conn, peer = logged_in()
    conn.send_nop(immediate=False)
    itt = conn.send_command(1, cdb_read16(0, 1), read_length=512)
    peer.sent()
    t = conn.send_task_management(TmfFunction.ABORT_TASK, 1, itt)
    (tmf,) = peer.sent()
    assert isinstance(tmf, TaskMgmtRequest) and tmf.immediate
    assert (tmf.function, tmf.referenced_task_tag, tmf.ref_cmd_sn, tmf.cmd_sn) == (1, itt, 2, 3)
    (ev,) = peer.feed(TaskMgmtResponse(t, 0, 2, 3, 34))
    assert isinstance(ev, TaskManagementComplete) and ev.response == 0


def test_async_logout_request_logs_out() -> None:
    conn, peer = logged_in()
    (ev,) = peer.feed(AsyncMessage(AsyncEvent.LOGOUT_REQUEST, 0, 2, 1, 32, parameter3=5))
    assert isinstance(ev, AsyncEventReceived) and ev.logout_itt is not None
    (out,) = peer.sent()
    assert isinstance(out, LogoutRequest) and out.reason == 0 and out.itt == ev.logout_itt
    (done,) = peer.feed(LogoutResponse(out.itt, 0, 3, 1, 32, 2, 0))
    assert isinstance(done, LogoutComplete) and conn.exp_stat_sn == 4


def test_text_continuation() -> None:
    conn, peer = logged_in(target_name=None)
    itt = conn.send_text([("SendTargets", "All")])
    (req,) = peer.sent()
    assert isinstance(req, TextRequest) and req.final and req.cmd_sn == 1
    body = encode_text([("TargetName", "iqn.a"), ("TargetAddress", "127.0.0.1:3260,1")])
    assert peer.feed(TextResponse(itt, 99, 2, 2, 33, final=False, cont=True,
                                  data=body[:10])) == []
    (cont,) = peer.sent()
    assert (cont.ttt, cont.data, cont.cmd_sn) == (99, b"", 2)
    (ev,) = peer.feed(TextResponse(itt, RESERVED_TAG, 3, 3, 34, data=body[10:]))
    assert isinstance(ev, TextComplete)
    assert ev.pairs == [("TargetName", "iqn.a"), ("TargetAddress", "127.0.0.1:3260,1")]


@pytest.mark.parametrize("header,data", [(True, False), (False, True), (True, True)])
def test_digests_after_login(header: bool, data: bool) -> None:
    keys = {"HeaderDigest": "CRC32C" if header else "None",
            "DataDigest": "CRC32C" if data else "None"}
    conn, peer = logged_in(keys, header_digest=header, data_digest=data)
    itt = conn.send_command(1, cdb_write16(0, 1), data_out=b"\x01" * 510 + b"\x02\x03")
    (cmd,) = peer.sent()  # peer framer checks CRC32C on both
    assert bytes(cmd.data) == b"\x01" * 510 + b"\x02\x03"
    (ev,) = peer.feed(ScsiResponse(itt, 0, 0, 2, 2, 33))
    assert ev.result.ok


def test_data_in_beyond_expected_length_closes() -> None:
    conn, peer = logged_in()
    itt = conn.send_command(1, cdb_read16(0, 1), read_length=512)
    peer.sent()
    events = peer.feed(DataIn(itt, 0, 256, bytes(512), exp_cmd_sn=2, max_cmd_sn=33))
    assert isinstance(events[0], RequestFailed) and isinstance(events[0].error, ConnectionLost)
    assert isinstance(events[-1], ConnectionClosed) and "protocol violation" in events[-1].reason


def test_eof_fails_open_requests() -> None:
    conn, peer = logged_in()
    itt = conn.send_command(1, cdb_read16(0, 1), read_length=512)
    conn.receive_data(b"")
    ev1, ev2 = conn.next_event(), conn.next_event()
    assert isinstance(ev1, RequestFailed) and ev1.itt == itt
    assert isinstance(ev2, ConnectionClosed)
    with pytest.raises(ConnectionLost):
        conn.send_nop()


def test_r2t_beyond_write_is_violation() -> None:
    conn, peer = logged_in({"ImmediateData": "No"})
    itt = conn.send_command(1, cdb_write16(0, 1), data_out=bytes(512))
    peer.sent()
    events = peer.feed(R2T(itt, 5, 0, 0, 1024))
    assert isinstance(events[-1], ConnectionClosed)
    assert "R2T" in events[-1].reason


def test_cancelled_request_answer_dropped() -> None:
    conn, peer = logged_in(window=1)
    conn.send_command(1, cdb_read16(0, 1), read_length=512)
    queued = conn.send_command(1, cdb_read16(0, 1), read_length=512)
    peer.sent()
    conn.cancel(queued)
    peer.feed(ScsiResponse(1, 0, 0, 2, 2, 5))
    assert peer.sent() == []


def test_large_input_in_one_receive_data_call() -> None:
    conn, peer = logged_in()
    size = 1 << 20
    itt = conn.send_command(1, cdb_read16(0, size // 512), read_length=size)
    peer.sent()
    payload = bytes(range(256)) * (size // 256)
    step = 262144
    pdus = [DataIn(itt, i, off, payload[off : off + step], final=off + step >= size,
                   status_present=off + step >= size, stat_sn=2, exp_cmd_sn=2, max_cmd_sn=33)
            for i, off in enumerate(range(0, size, step))]
    (ev,) = peer.feed(*pdus)  # one receive_data() call with 1 MiB + headers
    assert ev.result.data == payload


def test_cancel_with_abort_sends_abort_task() -> None:
    conn, peer = logged_in()
    itt = conn.send_command(4, cdb_read16(0, 1), read_length=512)
    (cmd,) = peer.sent()
    tmf_itt = conn.cancel(itt, abort=True)
    (tmf,) = peer.sent()
    assert isinstance(tmf, TaskMgmtRequest) and tmf.itt == tmf_itt
    assert (tmf.function, tmf.referenced_task_tag, tmf.ref_cmd_sn, tmf.lun) == (
        TmfFunction.ABORT_TASK, itt, cmd.cmd_sn, lun_field(4))
    # the late Data-In of the cancelled command is dropped, the TMF answer arrives
    events = peer.feed(DataIn(itt, 0, 0, bytes(512), final=True, status_present=True,
                              stat_sn=2, exp_cmd_sn=2, max_cmd_sn=33),
                       TaskMgmtResponse(tmf_itt, 0, 3, 2, 33))
    assert [type(e) for e in events] == [TaskManagementComplete]


def test_cancel_queued_command_sends_nothing() -> None:
    conn, peer = logged_in(window=1)
    conn.send_nop(immediate=False)
    queued = conn.send_command(1, cdb_read16(0, 1), read_length=512)
    peer.sent()
    assert conn.cancel(queued, abort=True) is None
    assert peer.sent() == []


def test_scsi_async_event_reported() -> None:
    conn, peer = logged_in()
    sense = bytes([0x70, 0, 0x06, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x3F, 0x0E, 0, 0, 0, 0])
    (ev,) = peer.feed(AsyncMessage(AsyncEvent.SCSI_ASYNC_EVENT, lun_field(1), 2, 1, 32,
                                   data=len(sense).to_bytes(2, "big") + sense))
    assert isinstance(ev, AsyncEventReceived) and ev.logout_itt is None
    assert ev.message.data[2:] == sense and peer.sent() == []


def test_reject_of_data_out_fails_the_write() -> None:
    conn, peer = logged_in({"ImmediateData": "No"})
    itt = conn.send_command(1, cdb_write16(0, 1), data_out=bytes(512))
    peer.sent()
    peer.feed(R2T(itt, 5, 0, 0, 512, exp_cmd_sn=2, max_cmd_sn=33))
    (out,) = peer.sent()
    (ev,) = peer.feed(Reject(0x02, 2, 2, 33, data=out.encode()))  # data digest error
    assert isinstance(ev, RequestFailed) and ev.itt == itt and ev.error.reason == 0x02


def test_login_response_and_first_digested_pdu_in_one_read() -> None:
    """Digests start with the first PDU after the final Login Response (13.1)."""
    from pytgt.initiator.core import InitiatorConnection
    from pytgt.initiator.events import LoginComplete
    from pytgt.initiator.options import InitiatorOptions

    from .util import IQN, Peer, login_rsp, text

    conn = InitiatorConnection(InitiatorOptions(target_name=IQN, header_digest=True))
    peer = Peer(conn)
    conn.start_login()
    (req,) = peer.sent()
    peer.feed(login_rsp(req, [("AuthMethod", "None")]))
    (op,) = peer.sent()
    answers = [(k, v) for k, v in text(op).items() if k != "MaxRecvDataSegmentLength"]
    final = peer.wire(login_rsp(op, answers, nsg=3, stat_sn=1, tsih=3))
    peer.digests(True, False)
    pings = peer.wire(NopIn(RESERVED_TAG, 0x55, 2, 1, 32, data=b"one"))
    pings += peer.wire(NopIn(RESERVED_TAG, 0x56, 2, 1, 32))
    conn.receive_data(final + pings)
    events = []
    while (ev := conn.next_event()) is not None:
        events.append(ev)
    assert [type(e) for e in events] == [LoginComplete]
    answers = peer.sent()[-2:]
    assert [(a.ttt, a.data) for a in answers] == [(0x55, b"one"), (0x56, b"")]
