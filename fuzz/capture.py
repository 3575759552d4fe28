"""Capture a seed corpus from real peers: ``python -m fuzz.capture [--out fuzz/corpus]``.

A recording TCP proxy on 127.0.0.1 sits between initiators and an in-process pytgt
target (:func:`pytgt.testing.serve`). libiscsi's ``iscsi-inq``/``iscsi-ls``/
``iscsi-readcapacity16`` (when installed) and :mod:`pytgt.initiator` sessions (login,
reads, writes with and without R2T, SYNCHRONIZE CACHE, NOP, SendTargets, ABORT TASK,
logout) run through it. Each initiator->target stream is saved whole
(``stream/``, the ``connection`` target's seeds) and cut into PDUs (``pdu/``); Login
and SCSI Command PDUs also seed the ``login`` and ``cdb`` targets in their formats.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
from pathlib import Path

from pytgt.testing import DEFAULT_IQN, serve

HERE = Path(__file__).parent


class Recorder:
    """A TCP proxy that keeps what each client sent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: list[bytearray] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rec = bytearray()
        self.streams.append(rec)
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       keep: bytearray | None) -> None:
            try:
                while data := await src.read(65536):
                    if keep is not None:
                        keep += data
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_w, rec), pipe(up_r, writer, None))


def split_pdus(stream: bytes) -> list[bytes]:
    """Cut an undigested stream into PDUs (BHS, AHS, data and padding)."""
    out, pos = [], 0
    while pos + 48 <= len(stream):
        ahs = stream[pos + 4] * 4
        dlen = int.from_bytes(stream[pos + 5:pos + 8], "big")
        end = pos + 48 + ahs + dlen + (-dlen % 4)
        out.append(stream[pos:end])
        pos = end
    return out


async def _tool(*argv: str) -> None:
    if shutil.which(argv[0]) is None:
        return
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.wait_for(proc.wait(), 20)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def _pytgt_sessions(port: int) -> None:
    from pytgt.initiator import Initiator
    from pytgt.iscsi.constants import TmfFunction

    name = "iqn.2026-11.org.pytgt:capture"
    async with Initiator("127.0.0.1", port, initiator_name=name) as ini:
        await ini.discover()
    for kw in ({}, {"immediate_data": False, "initial_r2t": True},
               {"immediate_data": True, "initial_r2t": False}):
        async with Initiator.login("127.0.0.1", port, target=DEFAULT_IQN,
                                   initiator_name=name, **kw) as s:
            await s.report_luns()
            await s.inquiry(1)
            await s.inquiry(1, evpd=True, page=0x83)
            await s.read_capacity16(1)
            await s.write16(1, 0, bytes(range(256)) * 64, fua=True)
            await s.read16(1, 0, 32)
            await s.synchronize_cache(1)
            await s.nop(b"ping")
            await s.send_targets()
            await s.task_management(TmfFunction.ABORT_TASK, lun=1, ref_itt=0x77)
            await s.task_management(TmfFunction.LOGICAL_UNIT_RESET, lun=1)


async def capture(out: Path) -> None:
    with serve(size=1 << 20) as t:
        rec = Recorder(t.port)
        server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"iscsi://127.0.0.1:{port}/{DEFAULT_IQN}/1"
        await _tool("iscsi-inq", url)
        await _tool("iscsi-inq", "-e", "1", "-c", "0x80", url)
        await _tool("iscsi-readcapacity16", url)
        await _tool("iscsi-ls", "-s", f"iscsi://127.0.0.1:{port}")
        await _pytgt_sessions(port)
        server.close()
    write_corpus(out, [bytes(s) for s in rec.streams if s])


def write_corpus(out: Path, streams: list[bytes]) -> None:
    for sub in ("stream", "pdu", "login", "cdb"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    seen: set[bytes] = set()
    for i, stream in enumerate(streams):
        (out / "stream" / f"s{i:02d}.bin").write_bytes(stream)
        login = bytearray()
        for j, pdu in enumerate(split_pdus(stream)):
            op = pdu[0] & 0x3F
            key = pdu[:1] + pdu[48:]
            if key not in seen:
                seen.add(key)
                (out / "pdu" / f"s{i:02d}-{j:03d}-op{op:02x}.bin").write_bytes(pdu)
            data = pdu[48:48 + int.from_bytes(pdu[5:8], "big")]
            if op == 0x03:  # Login Request -> fuzz_login's record format
                tsih = int.from_bytes(pdu[14:16], "big")
                login += bytes([pdu[1] | (0x20 if tsih else 0), pdu[2] << 4 | pdu[3]])
                login += len(data).to_bytes(2, "big") + data
            elif op == 0x01:  # SCSI Command -> fuzz_cdb's format
                cdb = pdu[32:48]
                rec = bytes([1, 0, 16]) + cdb + data
                if rec not in seen:
                    seen.add(rec)
                    (out / "cdb" / f"s{i:02d}-{j:03d}.bin").write_bytes(rec)
        if login:
            (out / "login" / f"s{i:02d}.bin").write_bytes(bytes(login))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(HERE / "corpus"))
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    asyncio.run(asyncio.wait_for(capture(Path(args.out)), 120))
    for sub in sorted(Path(args.out).iterdir()):
        print(f"{sub.name}: {len(list(sub.iterdir()))} files")


if __name__ == "__main__":
    main()
