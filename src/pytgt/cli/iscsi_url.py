"""libiscsi's URLs: ``iscsi://[user[%secret]@]host[:port]/IQN/LUN`` (and ``iscsi://host/``).

As libiscsi reads them (``iscsi_parse_full_url``): an IPv6 host in brackets, port 3260
by default, CHAP credentials in the URL or in ``LIBISCSI_CHAP_USERNAME`` /
``LIBISCSI_CHAP_PASSWORD`` (and ``LIBISCSI_CHAP_TARGET_USERNAME`` /
``LIBISCSI_CHAP_TARGET_PASSWORD`` for mutual CHAP).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PORT = 3260


class UrlError(ValueError):
    """Not an iscsi:// URL of the kind asked for."""


@dataclass(frozen=True, slots=True)
class IscsiUrl:
    """A parsed URL; ``target`` and ``lun`` are None for a portal URL."""

    host: str
    port: int = DEFAULT_PORT
    target: str | None = None
    lun: int | None = None
    chap: tuple[str, str] | None = None
    mutual_chap: tuple[str, str] | None = None

    @property
    def portal(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        path = f"/{self.target}/{self.lun}" if self.target is not None else "/"
        return f"iscsi://{self.portal}{path}"


def parse_url(text: str, *, need_lun: bool = True,
              env: Mapping[str, str] | None = None) -> IscsiUrl:
    """Parse ``text``; ``need_lun=False`` also takes a portal URL (``iscsi://host[:port]/``).

    Raises UrlError with libiscsi-like wording.
    """
    env = os.environ if env is None else env
    if not text.startswith("iscsi://"):
        raise UrlError(f"invalid URL {text}: it must start with iscsi://")
    rest = text[len("iscsi://"):]
    chap = None
    if "@" in rest.split("/", 1)[0]:
        cred, rest = rest.split("@", 1)
        user, _sep, secret = cred.partition("%")
        chap = (user, secret)  # as libiscsi: no percent-decoding, split at the first %
    hostport, _sep, path = rest.partition("/")
    host, port = _host_port(hostport, text)
    if chap is None and env.get("LIBISCSI_CHAP_USERNAME"):
        chap = (env["LIBISCSI_CHAP_USERNAME"], env.get("LIBISCSI_CHAP_PASSWORD", ""))
    mutual = None
    if env.get("LIBISCSI_CHAP_TARGET_USERNAME"):
        mutual = (env["LIBISCSI_CHAP_TARGET_USERNAME"],
                  env.get("LIBISCSI_CHAP_TARGET_PASSWORD", ""))
    target, lun = _target_lun(path.rstrip("/") if not need_lun else path, text, need_lun)
    return IscsiUrl(host, port, target, lun, chap, mutual)


def _host_port(hostport: str, text: str) -> tuple[str, int]:
    if hostport.startswith("["):
        host, _sep, after = hostport[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
    else:
        host, _sep, port_text = hostport.partition(":")
    if not host:
        raise UrlError(f"invalid URL {text}: no host")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UrlError(f"invalid URL {text}: bad port {port_text}")
    return host, int(port_text)


def _target_lun(path: str, text: str, need_lun: bool) -> tuple[str | None, int | None]:
    if not path:
        if need_lun:
            raise UrlError(f"invalid URL {text}: expected iscsi://HOST[:PORT]/IQN/LUN")
        return None, None
    target, sep, lun_text = path.rpartition("/")
    if not sep or not target:
        raise UrlError(f"invalid URL {text}: expected iscsi://HOST[:PORT]/IQN/LUN")
    if not lun_text.isdigit():
        raise UrlError(f"invalid URL {text}: bad LUN {lun_text}")
    return target, int(lun_text)
