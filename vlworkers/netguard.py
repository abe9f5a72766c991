"""Refuse URLs that resolve to loopback, private, link-local or metadata addresses.

Web archive URLs are attacker-controlled: without this, a manifest could make the job
read a cloud metadata service or an internal admin page and write it into captions.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class BlockedAddressError(Exception):
    pass


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_public(url: str) -> None:
    """Raise BlockedAddressError unless every address the host resolves to is public."""
    host = urlsplit(url).hostname
    if not host:
        raise BlockedAddressError(f"no host in {url!r}")
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    for info in infos:
        address = str(info[4][0])
        if not _is_public(address):
            raise BlockedAddressError(
                f"{host} resolves to the non-public address {address}; "
                "pass --allow-private-addresses to fetch from it"
            )
