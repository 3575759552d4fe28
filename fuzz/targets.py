"""Fuzz targets: each takes one ``bytes`` input and checks a one-line invariant.

The same functions serve Hypothesis (``tests/fuzz``, ``python -m fuzz.run``), the
corpus mutator of :mod:`fuzz.run` and atheris (``python -m fuzz.run --atheris NAME``).
A target raises AssertionError (or any unexpected exception) when the invariant breaks:

=============  ==========================================================================
``pdu``        any 48-byte BHS decodes to a PDU or raises ProtocolError
``framer``     any byte stream, cut anywhere, gives the same frames or the same error;
               no buffer beyond the negotiated segment length is ever allocated
``connection`` a TargetConnection fed any stream in any segmentation never raises, and
               answers byte-for-byte the same whatever the segmentation
``text``       decode_text raises only ProtocolError; encode(decode(x)) decodes to the same
``login``      TargetLogin given any sequence of Login Requests answers or raises LoginError
``initiator_login`` an InitiatorConnection fed any Login Responses never raises: it logs in,
               fails the login (RequestFailed, ConnectionClosed) or waits for more
``chap``       ChapTarget given any key sets answers or raises LoginError; ChapInitiator
               given the same answers or raises ValueError
``cdb``        ScsiTarget.execute on any CDB (with store faults) returns a well-formed result
``control``    the control-socket request path answers any bytes with a JSON reply
``targets_conf`` parse_text raises only ConfigError; what it accepts renders and re-parses
=============  ==========================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import random
import struct
from collections.abc import Callable
from functools import cache
from typing import Any

from pytgt.iscsi.connection import TargetConnection
from pytgt.iscsi.errors import ConnectionDropped, LoginError, ProtocolError
from pytgt.iscsi.events import CommandReady, SessionStarted, TaskManagement
from pytgt.iscsi.framer import DataDigestError, Framer
from pytgt.iscsi.pdu import LoginRequest, decode_pdu
from pytgt.iscsi.session import SessionTable
from pytgt.iscsi.text import decode_text, encode_text

IQN = "iqn.2026-11.org.pytgt:test"  # pytgt.testing's default: the captured corpus logs in
CHAP_IQN = "iqn.2026-11.org.pytgt:chap"
CHAP_USER, CHAP_SECRET = "fuzzuser", "fuzzsecret1234"
MAX_DSL = 8192  # the framer's segment limit before login
Target = Callable[[bytes], None]


# -- shared fixtures, built once per process ---------------------------------------------
@cache
def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def _run(coro: Any, timeout: float = 10.0) -> Any:
    return _loop().run_until_complete(asyncio.wait_for(coro, timeout))


@cache
def _management(purpose: str = "iscsi") -> Any:
    """A Management with the test target (memory LU) and a CHAP-protected target.

    The control target gets its own (``purpose="control"``): what it deletes or
    takes offline must not change the other targets' inputs.
    """
    from pytgt.config.model import Registry
    from pytgt.daemon.mgmt import Management

    m = Management(Registry(), portals=[("127.0.0.1", 3260)], control_port=0)
    for req in (
        {"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
        {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1, "bstype": "faulty",
         "backing_store": "1M", "bsopts": "size=1M"},
        {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"},
        {"mode": "target", "op": "new", "tid": 2, "targetname": CHAP_IQN},
        {"mode": "target", "op": "bind", "tid": 2, "initiator_address": "ALL"},
        {"mode": "account", "op": "new", "user": CHAP_USER, "password": CHAP_SECRET},
        {"mode": "account", "op": "bind", "tid": 2, "user": CHAP_USER},
    ):
        rc, out = _run(m.handle(req))
        assert rc == 0, (req, out)
    return m


@cache
def _policy() -> Any:
    from pytgt.daemon.policy import RegistryPolicy

    return RegistryPolicy(_management().registry, [("127.0.0.1", 3260)])


def _fault_store() -> Any:
    return _management().registry.targets[1].scsi.luns[1].store


def _chunks(data: bytes, seed: int) -> list[bytes]:
    """``data`` cut at random places (1-byte pieces, big pieces, or both)."""
    rng = random.Random(seed)
    out, pos = [], 0
    style = seed % 4
    while pos < len(data):
        if style == 0:
            n = 1
        elif style == 1:
            n = rng.randint(1, 64)
        elif style == 2:
            n = rng.choice([1, 2, 3, 47, 48, 49, 4096, 65536])
        else:
            n = len(data) - pos
        out.append(data[pos:pos + n])
        pos += n
    return out


# -- pdu ------------------------------------------------------------------------------
def fuzz_pdu(data: bytes) -> None:
    """Any BHS decodes or raises ProtocolError; decoding never reads past the segment."""
    bhs = (data + bytes(48))[:48]
    try:
        pdu = decode_pdu(bhs, data[48:], b"")
    except ProtocolError:
        return
    assert pdu is not None


# -- framer -----------------------------------------------------------------------------
def _frames(framer: Framer, chunks: list[bytes]) -> tuple[list[tuple[bytes, bytes, bytes]], str]:
    frames: list[tuple[bytes, bytes, bytes]] = []
    err = ""
    try:
        for chunk in chunks:
            framer.receive_data(chunk)
            while (f := framer.next_frame()) is not None:
                frames.append((f.bhs, f.ahs, bytes(f.data)))
            seg = framer._seg
            limit = framer.max_data_segment_length + 3 + 4
            assert seg is None or len(seg) <= limit, f"segment buffer {len(seg)} > {limit}"
    except (ProtocolError, ConnectionDropped) as exc:  # DataDigestError is a ProtocolError
        err = type(exc).__name__
    return frames, err


def fuzz_framer(data: bytes) -> None:
    """Same frames (or the same error) whatever the segmentation; bounded buffers."""
    if not data:
        return
    flags, seed, stream = data[0], data[1] if len(data) > 1 else 0, data[2:]

    def make() -> Framer:
        f = Framer(MAX_DSL)
        f.header_digest, f.data_digest = bool(flags & 1), bool(flags & 2)
        return f

    whole = _frames(make(), [stream])
    split = _frames(make(), _chunks(stream, seed))
    assert whole == split, f"segmentation changed the frames: {whole[1]!r} vs {split[1]!r}"


# -- connection -------------------------------------------------------------------------
_DRIVES = itertools.count()


def _drive(stream_chunks: list[bytes]) -> tuple[list[str], bytes]:
    """Feed a fresh TargetConnection; run its SCSI commands; return (events, bytes out)."""
    from pytgt.iscsi.constants import TmfFunction
    from pytgt.net import mapping
    from pytgt.scsi import tmf

    conn = TargetConnection(_policy(), SessionTable(), "127.0.0.1", login_timeout=0)
    run = next(_DRIVES)  # each run a new initiator port: the shared target's UAs alike
    events: list[str] = []
    out = bytearray()
    for chunk in stream_chunks:
        conn.receive_data(chunk)
        while (ev := conn.next_event()) is not None:
            events.append(type(ev).__name__)
            if isinstance(ev, SessionStarted) and ev.new_session and ev.session.target:
                s = ev.session
                if s.session_type == "Normal":
                    nexus = mapping.it_nexus(s, 1)
                    s.nexus = dataclasses.replace(
                        nexus, initiator_port=f"{nexus.initiator_port}#{run}")
                    s.target.scsi.add_nexus(s.nexus)
            elif isinstance(ev, CommandReady):
                s = conn.session
                assert s is not None and s.target is not None
                st = mapping.scsi_task(ev.task, s.nexus)
                r = _run(s.target.scsi.execute(st))
                conn.complete_command(ev.task, r.status, r.data, r.sense, st.transfer_out)
            elif isinstance(ev, TaskManagement):
                s = conn.session
                assert s is not None and s.target is not None
                answers: list[tmf.ServiceResponse] = []
                tag = ev.referenced_task_tag if ev.function == TmfFunction.ABORT_TASK else None
                _run(tmf.execute(s.target.scsi, mapping.FUNCTIONS[ev.function], s.nexus,
                                 ev.lun, answers.append, tag=tag))
                conn.complete_tmf(ev.itt, mapping.RESPONSES[answers[0]])
        for buf in conn.data_to_send():
            out += buf
        if conn.closed:
            break
    s = conn.session
    if s is not None and s.nexus is not None and s.target is not None:
        s.target.scsi.remove_nexus(s.nexus)
    return events, bytes(out)


def fuzz_connection(data: bytes) -> None:
    """Never raises; the answer does not depend on how the stream was cut."""
    if not data:
        return
    seed, stream = data[0], data[1:]
    _fault_store().clear()
    whole = _drive([stream])
    split = _drive(_chunks(stream, seed))
    assert whole[0] == split[0], f"events differ: {whole[0]} vs {split[0]}"
    assert _strip_volatile(whole[1]) == _strip_volatile(split[1]), "output bytes differ"


def _strip_volatile(out: bytes) -> bytes:
    """Output with CHAP challenges blanked (random by design)."""
    import re

    return re.sub(rb"CHAP_(C|I)=[^\0]*", b"CHAP_\\1=*", out)


# -- text -------------------------------------------------------------------------------
def fuzz_text(data: bytes) -> None:
    try:
        pairs = decode_text(data)
    except ProtocolError:
        return
    assert decode_text(encode_text(pairs)) == pairs


# -- login ------------------------------------------------------------------------------
_LOGIN_HDR = struct.Struct(">BBH")  # flags (T C CSG NSG), version max/min nibble, length


def login_requests(data: bytes) -> list[LoginRequest]:
    """Records ``[flags][versions][len:2][text]`` -> Login Requests of one connection."""
    reqs, pos, isid = [], 0, 0x400001370000
    while pos + _LOGIN_HDR.size <= len(data) and len(reqs) < 16:
        fl, ver, n = _LOGIN_HDR.unpack_from(data, pos)
        pos += _LOGIN_HDR.size
        text, pos = data[pos:pos + n], pos + n
        reqs.append(LoginRequest(
            itt=1, isid=isid, tsih=1 if fl & 0x20 else 0, cid=0, cmd_sn=1, exp_stat_sn=0,
            transit=bool(fl & 0x80), cont=bool(fl & 0x40), csg=(fl >> 2) & 3, nsg=fl & 3,
            version_max=ver >> 4, version_min=ver & 0xF, data=text))
    return reqs


def fuzz_login(data: bytes) -> None:
    """Each request gets a reply or LoginError; after an error, no more replies."""
    from pytgt.iscsi.login import LoginReply, TargetLogin

    login = TargetLogin(_policy(), "127.0.0.1")
    for req in login_requests(data):
        try:
            reply = login.receive(req)
        except LoginError as err:
            assert isinstance(login.failure(req, err), LoginReply)
            return
        assert isinstance(reply, LoginReply)
        if reply.final_ok:
            return


_INI_OPTIONS = [  # (CHAP, mutual CHAP, discovery), chosen by the first input byte
    (None, None, False), (None, None, True), ((CHAP_USER, CHAP_SECRET), None, False),
    ((CHAP_USER, CHAP_SECRET), ("target", "targetsecret99"), False)]


def login_responses(data: bytes) -> list[Any]:
    """Records ``[flags][status class][len:2][text]`` -> Login Responses to ITT 0."""
    from pytgt.iscsi.pdu import LoginResponse

    out, pos = [], 0
    while pos + _LOGIN_HDR.size <= len(data) and len(out) < 16:
        fl, status, n = _LOGIN_HDR.unpack_from(data, pos)
        pos += _LOGIN_HDR.size
        text, pos = data[pos:pos + n], pos + n
        out.append(LoginResponse(
            0, 0x400001370000, 1 if fl & 0x20 else 0, len(out), 1, 32, status & 3, 0,
            bool(fl & 0x80), bool(fl & 0x40), (fl >> 2) & 3, fl & 3, 0, 0, text))
    return out


def fuzz_initiator_login(data: bytes) -> None:
    """Events are [], [LoginComplete], or RequestFailed(InitiatorError) .. ConnectionClosed."""
    from pytgt.initiator.core import InitiatorConnection
    from pytgt.initiator.errors import InitiatorError
    from pytgt.initiator.events import ConnectionClosed, LoginComplete, RequestFailed
    from pytgt.initiator.options import InitiatorOptions

    if not data:
        return
    chap, mutual, discovery = _INI_OPTIONS[data[0] & 3]
    conn = InitiatorConnection(InitiatorOptions(
        initiator_name="iqn.2026-11.org.pytgt:fuzz", target_name=None if discovery else IQN,
        isid=0x400001370000, chap=chap, mutual_chap=mutual))
    conn.start_login()
    framer, events = Framer(1 << 24), []
    for rsp in login_responses(data[1:]):
        conn.data_to_send()
        conn.receive_data(b"".join(bytes(b) for b in framer.frame(rsp.encode(), rsp.data)))
        while (ev := conn.next_event()) is not None:
            events.append(ev)
        if conn.closed or conn.full_feature:
            break
    if conn.full_feature:
        assert [type(e) for e in events] == [LoginComplete], events
    elif conn.closed:
        assert isinstance(events[0], RequestFailed), events
        assert isinstance(events[0].error, InitiatorError), events
        assert isinstance(events[-1], ConnectionClosed), events
    else:
        assert events == [], events


# -- chap -------------------------------------------------------------------------------
def chap_steps(data: bytes) -> list[dict[str, str]]:
    """NUL-separated text blocks separated by ``\\xff`` -> key dicts."""
    steps = []
    for block in data.split(b"\xff")[:6]:
        keys: dict[str, str] = {}
        for item in block.split(b"\0"):
            k, _, v = item.partition(b"=")
            keys[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
        steps.append(keys)
    return steps


def fuzz_chap(data: bytes) -> None:
    from pytgt.iscsi.chap import ChapInitiator, ChapTarget, decode_binary

    secrets = {CHAP_USER: CHAP_SECRET}
    chap = ChapTarget(secrets.get, lambda: ("target", "targetsecret99"),
                      random_bytes=lambda n: bytes(range(n)))
    initiator = ChapInitiator(CHAP_USER, CHAP_SECRET, algorithms=(5, 7),
                              mutual=("target", "targetsecret99"),
                              random_bytes=lambda n: bytes(range(n)))
    steps = chap_steps(data)
    for keys in steps:  # the same keys as the target's answers: ValueError or an answer
        with contextlib.suppress(ValueError):
            _check_pairs(initiator.verify(keys) if initiator.responded
                         else initiator.respond(keys))
    for keys in steps:
        try:
            answer = chap.step(keys)
        except LoginError:
            return
        _check_pairs(answer)
    with contextlib.suppress(ValueError):
        decode_binary(data.decode("latin-1"))


def _check_pairs(answer: list[tuple[str, str]] | None) -> None:
    assert answer is None or isinstance(answer, list)
    for k, v in answer or ():
        assert isinstance(k, str) and isinstance(v, str)


# -- cdb --------------------------------------------------------------------------------
_FAULTS = [None, None, None, ("eio", "read"), ("eio", "write"), ("enospc", "write"),
           ("eio", "flush"), ("erofs", "write+unmap"), ("short", "read"), ("eio", "unmap")]


@cache
def _scsi() -> tuple[Any, Any, Any]:
    from pytgt.scsi import ItNexus, ScsiTarget, create_lu
    from pytgt.stores.faulty import FaultyStore
    from pytgt.stores.memory import MemoryStore

    store = FaultyStore(MemoryStore(64 * 512))
    t = ScsiTarget("iqn.2026-11.org.pytgt:cdb", 1)
    lu = create_lu("disk", 1, store, tid=1, bstype="faulty")
    lu.thin_provisioning = True
    t.add_lu(lu)
    n = ItNexus("n", "iqn.i", initiator_port="iqn.i,i,0x1")
    t.add_nexus(n)
    return t, n, store


def fuzz_cdb(data: bytes) -> None:
    """[lun][fault][cdb length][cdb][data-out] -> a status; sense only with CHECK CONDITION."""
    from pytgt.scsi import ScsiTask, Status
    from pytgt.scsi.sense import decode_sense

    if len(data) < 3:
        return
    t, n, store = _scsi()
    lun = (0, 1 << 48, 5 << 48, 1)[data[0] & 3]
    fault = _FAULTS[data[1] % len(_FAULTS)]
    if fault is None:
        store.clear()
    else:
        store.set_fault(fault[0], ops=fault[1])
    cdb = data[3:3 + min(data[2], 32)]
    out = data[3 + len(cdb):]
    if not cdb:
        return
    r = _run(t.execute(ScsiTask(n, lun, cdb, data_out=out)))
    assert r.status in {s.value for s in Status}, r.status
    if r.status == Status.CHECK_CONDITION:
        key, asc, _ = decode_sense(r.sense)
        assert 0 < key <= 0xE, key
    else:
        assert not r.sense
    expected = t.expected_data_out(lun, cdb)
    assert expected is None or expected >= 0
    store.clear()


# -- control ----------------------------------------------------------------------------
def fuzz_control(data: bytes) -> None:
    """Any request bytes get ``{"rc": int, "out": str}``; the daemon's handler survives."""
    from pytgt.daemon import control

    with contextlib.suppress(control.ControlRequestError):
        control.decode_request(data)
    reply = json.loads(_run(control._answer(_management("control"), data)))
    assert isinstance(reply["rc"], int) and isinstance(reply["out"], str)


# -- targets.conf -----------------------------------------------------------------------
def _targets_conf() -> Any:
    try:
        from pytgt.config import targets_conf
    except ImportError:
        return None
    return targets_conf


def fuzz_targets_conf(data: bytes) -> None:
    """parse_text raises only ConfigError; an accepted file renders and parses back."""
    tc = _targets_conf()
    if tc is None:
        return
    text = data.decode("utf-8", "replace")
    # no include: it would read the fuzzing host's files
    text = "\n".join(line for line in text.splitlines() if "include" not in line.lower())
    try:
        spec, _warnings = tc.parse_text(text)
    except tc.ConfigError:
        return
    render = getattr(tc, "render", None)
    if render is not None:
        again, _ = tc.parse_text(render(spec))
        assert _unplaced(again) == _unplaced(spec), "render() does not parse back the same"


def _unplaced(spec: Any) -> Any:
    """A parsed configuration as dicts, without the ``where`` (file:line) fields."""
    import dataclasses

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k != "where"}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return strip(dataclasses.asdict(spec))


TARGETS: dict[str, Target] = {
    "pdu": fuzz_pdu,
    "framer": fuzz_framer,
    "connection": fuzz_connection,
    "text": fuzz_text,
    "login": fuzz_login,
    "initiator_login": fuzz_initiator_login,
    "chap": fuzz_chap,
    "cdb": fuzz_cdb,
    "control": fuzz_control,
    "targets_conf": fuzz_targets_conf,
}

# Exceptions a target may let through are none: every other exception is a finding.
EXPECTED: tuple[type[BaseException], ...] = ()
_ = DataDigestError  # re-exported for harnesses that want it
