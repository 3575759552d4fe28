"""Hypothesis strategies: the input bytes of each fuzz target, corpus-seeded and structured."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

from fuzz.targets import CHAP_IQN, CHAP_SECRET, CHAP_USER, IQN, TARGETS

CORPUS = Path(__file__).parent / "corpus"
# where each target's seeds live, and the prefix bytes its input format wants in front
SEED_DIRS = {"connection": "stream", "framer": "stream"}


@cache
def seeds(target: str) -> tuple[bytes, ...]:
    """Corpus files of ``target`` (``fuzz/corpus/<dir>/*``), as the target's raw input."""
    d = CORPUS / SEED_DIRS.get(target, target)
    files = sorted(d.iterdir()) if d.is_dir() else []
    raw = tuple(p.read_bytes() for p in files if p.is_file())
    if target == "connection":
        return tuple(b"\x01" + r for r in raw)
    if target == "framer":
        return tuple(b"\x00\x05" + r for r in raw)
    return raw


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """``base`` with a few byte overwrites, a cut, an insertion or a splice."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        kind = draw(st.sampled_from(["set", "cut", "insert", "dup", "big"]))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "set":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "dup":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 128))]
        else:  # a big number where lengths and offsets live
            data[pos:pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\xff\xff\xff",
                                                      b"\x01\x00\x00\x00", b"\x7f\xff\xff\xff"]))
    return bytes(data)


def from_corpus(target: str) -> st.SearchStrategy[bytes]:
    s = seeds(target)
    return mutated(st.sampled_from(s)) if s else st.binary(max_size=256)


# -- structured inputs --------------------------------------------------------------------
KEY_NAMES = ["InitiatorName", "TargetName", "SessionType", "AuthMethod", "HeaderDigest",
             "DataDigest", "MaxConnections", "InitialR2T", "ImmediateData",
             "MaxRecvDataSegmentLength", "MaxBurstLength", "FirstBurstLength",
             "DefaultTime2Wait", "DefaultTime2Retain", "MaxOutstandingR2T", "DataPDUInOrder",
             "DataSequenceInOrder", "ErrorRecoveryLevel", "OFMarker", "IFMarker",
             "OFMarkInt", "IFMarkInt", "TargetAlias", "InitiatorAlias", "SendTargets",
             "TargetPortalGroupTag", "TargetAddress", "CHAP_A", "CHAP_N", "CHAP_R", "CHAP_I",
             "CHAP_C", "X-com.example.key", "X#vendor", "TaskReporting",
             "iSCSIProtocolLevel", "MaxXmitDataSegmentLength"]
VALUES = ["", "None", "CRC32C", "CRC32C,None", "None,CRC32C", "CHAP", "CHAP,None", "None,CHAP",
          "KRB5,SRP,CHAP", "Yes", "No", "0", "1", "512", "8192", "65536", "262144",
          "16777215", "16777216", "4294967296", "-1", "0x10", "0b", "0xZZ", "Normal",
          "Discovery", "All", IQN, CHAP_IQN, "iqn.2026-11.org.pytgt:fuzz", CHAP_USER,
          "NotUnderstood", "Irrelevant", "Reject", "5", "5,7", "7,6,5", "\u00b2", "1~65535",
          "x" * 300, "0x" + "ab" * 40, "0b" + "QUJD" * 10]

values = st.one_of(st.sampled_from(VALUES), st.text(max_size=40),
                   st.integers(-5, 1 << 33).map(str))
pairs = st.lists(st.tuples(st.sampled_from(KEY_NAMES), values), max_size=14)


def _text(p: list[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}={v}".encode("utf-8", "surrogatepass") + b"\0" for k, v in p)


@st.composite
def login_input(draw: st.DrawFn) -> bytes:
    """Records of fuzz_login: mostly well-formed stage flags, arbitrary keys."""
    out = bytearray()
    for i in range(draw(st.integers(1, 6))):
        keys = draw(pairs)
        if i == 0 and draw(st.booleans()):
            keys = [("InitiatorName", "iqn.2026-11.org.pytgt:fuzz"),
                    ("TargetName", draw(st.sampled_from([IQN, CHAP_IQN])))] + keys
        csg = draw(st.sampled_from([0, 1, 1, 3, 2]))
        nsg = draw(st.sampled_from([1, 3, 3, 0, 2]))
        fl = draw(st.sampled_from([0x80, 0x80, 0x00, 0x40, 0xC0])) | csg << 2 | nsg
        fl |= draw(st.sampled_from([0, 0, 0, 0x20]))
        text = _text(keys)
        if draw(st.booleans()):
            text = draw(mutated(st.just(text)))
        out += bytes([fl, draw(st.sampled_from([0x00, 0x00, 0x10, 0x22]))])
        out += len(text).to_bytes(2, "big") + text
    return bytes(out)


_OPERATIONAL_ANSWERS = [
    ("HeaderDigest", "None"), ("DataDigest", "None"), ("MaxRecvDataSegmentLength", "8192"),
    ("InitialR2T", "Yes"), ("ImmediateData", "Yes"), ("MaxBurstLength", "262144"),
    ("FirstBurstLength", "65536"), ("MaxOutstandingR2T", "1"), ("MaxConnections", "1"),
    ("DefaultTime2Wait", "2"), ("DefaultTime2Retain", "0"), ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"), ("ErrorRecoveryLevel", "0"), ("TargetAlias", "fuzz"),
    ("TargetPortalGroupTag", "1")]
_CHALLENGES = ["0x" + bytes(range(16)).hex(), "0x", "0b", "0b!!", "0xabc", "zz",
               "0x" + "00" * 1025, "0b" + "AAAA" * 5]


def _record(flags: int, keys: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]]]:
    return flags, keys


@st.composite
def initiator_login_input(draw: st.DrawFn) -> bytes:
    """[options][records of fuzz_initiator_login]: a target's side of a login (with or
    without CHAP), each response's flags, status or text sometimes broken."""
    options = draw(st.integers(0, 255))
    challenge = [("CHAP_A", draw(st.sampled_from(["5", "5", "7", "6", "\u00b2", ""]))),
                 ("CHAP_I", draw(st.sampled_from(["7", "7", "256", "-1", "0x1", "x"]))),
                 ("CHAP_C", draw(st.sampled_from(_CHALLENGES)))]
    script = [_record(0x81, [("AuthMethod", "None"), ("TargetPortalGroupTag", "1")])]
    if options & 2:  # the initiator offers CHAP
        script = [_record(0x01, [("AuthMethod", "CHAP")]), _record(0x01, challenge),
                  _record(0x81, [("CHAP_N", "target"),
                                 ("CHAP_R", draw(st.sampled_from(_CHALLENGES)))])]
    answers = draw(st.permutations(_OPERATIONAL_ANSWERS))[:draw(st.integers(0, 16))]
    script += [_record(0x05, answers + draw(pairs.map(lambda p: p[:3]))),
               _record(0x87, draw(pairs.map(lambda p: p[:3])))]
    out = bytearray([options])
    for flags, keys in script[:draw(st.integers(1, len(script)))]:
        text = _text(keys)
        if draw(st.integers(0, 5)) == 0:
            text = draw(mutated(st.just(text)))
        if draw(st.integers(0, 5)) == 0:
            flags = draw(st.integers(0, 255))
        status = draw(st.sampled_from([0] * 12 + [1, 2, 3]))
        out += bytes([flags, status]) + len(text).to_bytes(2, "big") + text
    return bytes(out)


@st.composite
def chap_input(draw: st.DrawFn) -> bytes:
    from pytgt.iscsi.chap import ALGORITHMS, encode_binary

    algo = ALGORITHMS[5]
    first = draw(st.sampled_from([{"CHAP_A": "5"}, {"CHAP_A": "7,5"}, {"CHAP_A": "6"},
                                  {"CHAP_A": "\u00b2"}, {"CHAP_A": ""}, {},
                                  {"CHAP_A": "5", "CHAP_I": "3", "CHAP_C": "0x" + "11" * 16},
                                  {"CHAP_A": "7", "CHAP_I": "300", "CHAP_C": "0b"}]))
    right = algo.response(0, CHAP_SECRET.encode(), bytes(range(16)))  # fuzz_chap's randomness
    second = {"CHAP_N": draw(st.sampled_from([CHAP_USER, "nobody", ""])),
              "CHAP_R": draw(st.sampled_from([encode_binary(right), "0x", "0xabc", "0b!!",
                                              "0b" + "A" * 4, "zz"]))}
    if draw(st.booleans()):
        second["CHAP_I"] = draw(st.sampled_from(["1", "256", "-1", "0x1", "x"]))
        second["CHAP_C"] = draw(st.sampled_from(["0x" + "00" * 16, "0x" + bytes(range(16)).hex(),
                                                 "0b", "0x"]))
    steps = [first, second] + draw(st.lists(st.dictionaries(st.sampled_from(KEY_NAMES), values,
                                                           max_size=4), max_size=2))
    raw = b"\xff".join(b"\0".join(f"{k}={v}".encode("utf-8", "surrogatepass")
                                  for k, v in s.items()) for s in steps)
    return raw if not draw(st.booleans()) else draw(mutated(st.just(raw)))


@st.composite
def cdb_input(draw: st.DrawFn) -> bytes:
    op = draw(st.integers(0, 255))
    length = draw(st.sampled_from([6, 10, 12, 16, 16, 32, 1, 3, 8]))
    rest = draw(st.binary(min_size=length - 1, max_size=length - 1))
    small = draw(st.booleans())  # small LBAs and counts reach the data paths
    cdb = bytearray([op]) + rest
    if small and length >= 10:
        cdb[2:length - 2] = bytes(length - 4)
        cdb[length - 2 if length != 6 else 4] = draw(st.integers(0, 8))
    data = draw(st.binary(max_size=1100))
    return bytes([draw(st.integers(0, 3)), draw(st.integers(0, 20)), len(cdb)]) + bytes(cdb) + data


MODES = ["target", "logicalunit", "account", "lld", "system", "portal", "conn", "session", "x"]
OPS = ["new", "delete", "show", "bind", "unbind", "update", "stat", "start", "stop", "x"]
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2, 1 << 40), st.text(max_size=20),
                      st.floats(allow_nan=True))
json_values = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=6)


@st.composite
def control_input(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=300))
    req = {"mode": draw(st.sampled_from(MODES)), "op": draw(st.sampled_from(OPS))}
    req.update(draw(st.dictionaries(
        st.sampled_from(["tid", "lun", "targetname", "backing_store", "bstype", "bsopts",
                         "params", "user", "password", "initiator_address", "name", "value",
                         "sid", "cid", "blocksize", "device_type", "outgoing", "lld"]),
        json_values, max_size=5)))
    if req["mode"] == "logicalunit" and req["op"] == "new" and draw(st.booleans()):
        req["bstype"] = draw(st.sampled_from(["memory", "null", "faulty"]))
        req["backing_store"] = "1M"
    raw = json.dumps(req).encode()
    if kind == 3:
        raw = draw(mutated(st.just(raw)))
    return raw


CONF_WORDS = ["<target iqn.2026-11.org.x:a>", "</target>", "<target>", "backing-store",
              "direct-store", "<backing-store /tmp/x>", "</backing-store>", "lun", "1",
              "initiator-address", "ALL", "10.0.0.0/8", "incominguser", "outgoinguser",
              "u", "secretsecret12", "bs-type", "rdwr", "memory", "write-cache", "on", "off",
              "vendor_id", "product_id", "readonly", "1", "MaxRecvDataSegmentLength", "8192",
              "=", "#", "\\", "\"quoted value\"", "default-driver", "iscsi", "controller_tid",
              "params", "thin_provisioning=1", "block-size", "4096", "allow-in-use", "yes",
              "device-type", "disk", "scsi_sn", "abc", "<", ">", "</", "\t", "   "]


@st.composite
def conf_input(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.lists(st.sampled_from(CONF_WORDS), min_size=1, max_size=4)
                          .map(" ".join), max_size=20))
    text = "\n".join(lines)
    if draw(st.booleans()):
        text = draw(mutated(st.just(text.encode()))).decode("utf-8", "replace")
    return text.encode("utf-8", "surrogatepass")


@st.composite
def framer_input(draw: st.DrawFn) -> bytes:
    pdus = seeds("pdu")
    body = b"".join(draw(st.lists(st.sampled_from(pdus), min_size=1, max_size=8))) if pdus \
        else b""
    if draw(st.booleans()):
        body = draw(mutated(st.just(body)))
    if draw(st.booleans()):  # a header that claims a huge segment
        hdr = bytearray(48)
        hdr[0] = draw(st.sampled_from([0x01, 0x05, 0x04, 0x03]))
        hdr[4] = draw(st.integers(0, 255))
        hdr[5:8] = draw(st.integers(0, (1 << 24) - 1)).to_bytes(3, "big")
        body += bytes(hdr) + draw(st.binary(max_size=100))
    return bytes([draw(st.integers(0, 3)), draw(st.integers(0, 255))]) + body


@st.composite
def connection_input(draw: st.DrawFn) -> bytes:
    s = seeds("connection")
    base = draw(st.sampled_from(s))[1:] if s else b""
    if draw(st.booleans()):
        base = draw(mutated(st.just(base)))
    if draw(st.booleans()) and s:  # a second peer's stream spliced after the first's login
        other = draw(st.sampled_from(s))[1:]
        cut = draw(st.integers(0, len(other)))
        base += other[cut:]
    return bytes([draw(st.integers(0, 255))]) + base


STRATEGIES: dict[str, st.SearchStrategy[bytes]] = {
    "pdu": st.one_of(from_corpus("pdu"), st.binary(min_size=48, max_size=120)),
    "framer": framer_input(),
    "connection": connection_input(),
    "text": st.one_of(pairs.map(_text), st.binary(max_size=200), mutated(pairs.map(_text))),
    "login": st.one_of(login_input(), from_corpus("login")),
    "initiator_login": initiator_login_input(),
    "chap": chap_input(),
    "cdb": st.one_of(cdb_input(), from_corpus("cdb")),
    "control": control_input(),
    "targets_conf": conf_input(),
}
assert set(STRATEGIES) == set(TARGETS)
