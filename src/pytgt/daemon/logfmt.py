"""``pytgtd --log-format text|json``: the daemon's log lines.

``json`` writes one object per line and event, with the fields a log pipeline filters on::

    {"ts": "2026-12-06T23:10:01.123Z", "level": "warning", "logger": "pytgt.security",
     "event": "login_refused", "message": "login refused (ACL denial): ...",
     "target": "iqn...", "initiator": "iqn...", "address": "127.0.0.1",
     "reason": "authorization_failure", "pid": 4242}

``event`` names what happened (``login``, ``login_refused``, ``chap_backoff``,
``listening``, ``metrics_listening``, ``shutdown``, ...; ``log`` for a line that names
none). ``target``, ``initiator``, ``portal`` (the local address), ``address`` (the
peer's), ``reason``, ``user``, ``tid`` and ``lun`` appear where the caller knows them: log
calls pass them as ``extra={"event": ..., "target": ...}`` (see :func:`fields`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s pytgtd[%(process)d] %(name)s: %(message)s"
# LogRecord attributes copied into the object when a log call set them
FIELDS = ("target", "initiator", "portal", "address", "reason", "user", "tid", "lun", "tsih")


def fields(event: str, **known: object) -> dict[str, object]:
    """``extra=`` for a log call: the event name and the fields known (None left out)."""
    return {"event": event, **{k: v for k, v in known.items() if v is not None}}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z", "level": record.levelname.lower(),
            "logger": record.name, "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        attrs = record.__dict__
        if "address" not in attrs and "peer" in attrs:  # iscsi.connection's adapter
            out["address"] = attrs["peer"]
        for name in FIELDS:
            if name in attrs:
                out[name] = attrs[name]
        out["pid"] = record.process
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(level: int, log_format: str = "text") -> None:
    """Configure the root logger for pytgtd (stderr)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
