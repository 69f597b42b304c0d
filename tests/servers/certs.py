"""Test certificates made with the openssl command: a CA, and a server certificate it signed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def certificates(where: Path, san: str = "IP:127.0.0.1") -> tuple[Path, Path, Path]:
    """The CA PEM, and a server certificate and key for ``san`` (``IP:...`` or ``DNS:...``) in ``where``."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True)

    key = ("-newkey", "rsa:2048", "-nodes")
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA")
    openssl("req", *key, "-keyout", "srv.key", "-out", "srv.csr", "-subj", f"/CN={san.partition(':')[2]}")
    (where / "san.ext").write_text(f"subjectAltName={san}\n")
    openssl(
        *("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"),
        *("-out", "srv.pem", "-days", "2", "-extfile", "san.ext"),
    )
    return where / "ca.pem", where / "srv.pem", where / "srv.key"
