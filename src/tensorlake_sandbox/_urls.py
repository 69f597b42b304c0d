"""Where requests go: per-sandbox URLs, and the rules that keep the bearer key on the right host."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

__all__ = ["DEFAULT_PROXY_HOST", "is_loopback_host", "normalize_base_url", "sandbox_url"]

DEFAULT_PROXY_HOST = "sandbox.tensorlake.ai"

# One DNS label: letters, digits and hyphens, 1-63 characters, no hyphen at either end.
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _label_problem(label: str) -> str | None:
    """Why `label` is not one DNS label, or None when it is."""
    if not label:
        return "it is empty"
    if len(label) > 63:
        return f"it is {len(label)} characters long; a DNS label has at most 63"
    if _LABEL.fullmatch(label):
        return None
    bad = next(
        (c for c in label if not (c.isascii() and (c.isalnum() or c == "-"))),
        None,
    )
    if bad is not None:
        return f"it contains {bad!r}; only ASCII letters, digits and '-' are allowed"
    return "it starts or ends with '-'"


def sandbox_url(sandbox: str, *, proxy_host: str = DEFAULT_PROXY_HOST) -> str:
    """The base URL of one sandbox's API: ``https://{sandbox}.{proxy_host}``.

    ``sandbox`` is a sandbox ID or name and must be exactly one DNS label, so that no
    input can point the request (and the bearer key with it) at another host.

    >>> sandbox_url("my-sandbox")
    'https://my-sandbox.sandbox.tensorlake.ai'
    """
    if not isinstance(sandbox, str):
        raise TypeError(f"sandbox must be a str (a sandbox ID or name), not {type(sandbox).__name__}")
    problem = _label_problem(sandbox)
    if problem is not None:
        raise ValueError(
            f"invalid sandbox ID or name {sandbox!r}: {problem}. "
            "Pass the sandbox's ID or name alone, or pass base_url= with its ingress_endpoint."
        )
    labels = proxy_host.split(".") if isinstance(proxy_host, str) else [""]
    for label in labels:
        problem = _label_problem(label)
        if problem is not None:
            raise ValueError(f"invalid proxy_host {proxy_host!r}: label {label!r} is not valid ({problem})")
    return f"https://{sandbox}.{proxy_host}"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1), brackets and a final dot allowed.

    Other names under ``.localhost`` are not trusted: a resolver may send them elsewhere.
    """
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_base_url(base_url: str) -> str:
    """Check a base URL before any key is sent to it, and return it without a trailing slash.

    It must be ``https://host[:port][/path]``, or ``http://`` to a loopback host only (a
    local sandbox): the bearer key is never sent in clear text over a network.
    """
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, not {type(base_url).__name__}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in base_url):
        raise ValueError(f"invalid base_url {base_url!r}: it contains whitespace or control characters")
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid base_url {base_url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"invalid base_url {base_url!r}: it must start with https:// "
            "(or http:// for a sandbox on this machine)"
        )
    if not parts.hostname:
        raise ValueError(f"invalid base_url {base_url!r}: it has no host")
    if "@" in parts.netloc:
        raise ValueError(f"invalid base_url {base_url!r}: it must not contain user info ('@')")
    if parts.query or parts.fragment or base_url.endswith(("?", "#")):
        raise ValueError(f"invalid base_url {base_url!r}: it must not contain a query or fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"refusing to send the API key over plain http:// to {parts.hostname!r}: "
            "use https://, or http:// only for a sandbox on this machine, named by its address "
            "(http://127.0.0.1:PORT; also localhost or [::1], but no other name)"
        )
    del port  # parsed above only to reject an invalid port
    return base_url.rstrip("/")
