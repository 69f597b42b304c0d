"""Where requests go: per-sandbox URLs, and the rules that keep the bearer key on the right host."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

DEFAULT_PROXY_HOST = "sandbox.tensorlake.ai"
# Refused in a URL or a key (str.isspace's whitespace is re's \s).
BLANK_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
# What breaks a DNS label: a character but ASCII letters, digits and '-', or a '-' at either end.
_NOT_LABEL = re.compile(r"[^A-Za-z0-9-]|\A-|-\Z")


def _label_problem(label: str) -> str | None:
    """Why `label` is not one DNS label, or None when it is."""
    if not 0 < len(label) <= 63:
        return f"it is {len(label)} characters long; a DNS label has at most 63" if label else "it is empty"
    bad = _NOT_LABEL.search(label)
    if bad is None or bad[0] == "-":
        return None if bad is None else "it starts or ends with '-'"
    return f"it contains {bad[0]!r}; only ASCII letters, digits and '-' are allowed"


def sandbox_url(sandbox: str, *, proxy_host: str = DEFAULT_PROXY_HOST) -> str:
    """``https://{sandbox}.{proxy_host}``; ``sandbox`` is one DNS label: the key goes to no other host."""
    if not isinstance(sandbox, str):
        raise TypeError(f"sandbox must be a str (a sandbox ID or name), not {type(sandbox).__name__}")
    if problem := _label_problem(sandbox):
        raise ValueError(
            f"invalid sandbox ID or name {sandbox!r}: {problem}. "
            "Pass the sandbox's ID or name alone, or pass base_url= with its ingress_endpoint."
        )
    for label in proxy_host.split(".") if isinstance(proxy_host, str) else [""]:
        if problem := _label_problem(label):
            raise ValueError(f"invalid proxy_host {proxy_host!r}: label {label!r} is not valid ({problem})")
    return f"https://{sandbox}.{proxy_host}"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``[::1]`` (no other name: not even ``*.localhost``)."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash, once checked: https, or http to a loopback host."""
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, not {type(base_url).__name__}")
    try:
        parts = urlsplit(base_url)
        _ = parts.port  # read only to refuse an invalid port
    except ValueError as exc:
        raise ValueError(f"invalid base_url {base_url!r}: {exc}") from None
    for bad, why in (
        (BLANK_OR_CONTROL.search(base_url), "it contains whitespace or control characters"),
        (parts.scheme not in ("http", "https"), "it must start with https:// (or http:// for this machine)"),
        (not parts.hostname, "it has no host"),
        ("@" in parts.netloc, "it must not contain user info ('@')"),
        ("?" in base_url or "#" in base_url, "it must not contain a query or fragment"),
        (
            parts.scheme == "http" and not is_loopback_host(parts.hostname or ""),
            "refusing to send the API key over plain http:// to another machine: use https://, or http:// "
            "only for this machine (http://127.0.0.1:PORT; also localhost or [::1], but no other name)",
        ),
    ):
        if bad:
            raise ValueError(f"invalid base_url {base_url!r}: {why}")
    return base_url.rstrip("/")
