"""iSNSP (RFC 4171), sans-I/O: the PDU and attribute codec (:mod:`.codec`), the messages
a target sends and answers (:mod:`.messages`) and the client's state (:mod:`.session`).

Never imports asyncio, socket or time; the daemon's adapter is :mod:`pytgt.daemon.isns`.
"""
