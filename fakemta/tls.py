"""STARTTLS and AUTH for the fake MTA: a throwaway self-signed certificate, the server's
:class:`ssl.SSLContext`, and an aiosmtpd authenticator for a fixed table of users.

aiosmtpd's STARTTLS wraps the connection in ``asyncio.sslproto.SSLProtocol`` by hand. That
works on uvloop transports too (uvloop 0.23, Python 3.11): tests/fakemta/test_fakemta_tls.py
checks it in-process on a uvloop loop and end to end through the child process, which runs on
uvloop.
"""

from __future__ import annotations

import datetime
import hmac
import ipaddress
import os
import ssl
import tempfile
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_self_signed(hostname: str, directory: str) -> tuple[str, str]:
    """Write a self-signed EC P-256 certificate for *hostname* (also ``localhost`` and
    127.0.0.1), valid for a day, and its key into *directory*; returns (cert, key) paths.
    The certificate is its own trust anchor: a client verifies with it as its CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName(hostname),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


class ServerTls:
    """The server's TLS context, from given files or from a fresh self-signed certificate in
    a temporary directory (removed by :meth:`close`)."""

    def __init__(self, hostname: str, cert: str | None, key: str | None) -> None:
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if cert is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="fakemta-tls-")
            cert, key = make_self_signed(hostname, self._tmpdir.name)
        self.cert_file: str = cert
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)

    def close(self) -> None:
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


class UserTable:
    """An aiosmtpd ``authenticator``: PLAIN and LOGIN against fixed (user, password) pairs."""

    def __init__(self, users: tuple[tuple[str, str], ...]) -> None:
        self.users = {u.encode(): p.encode() for u, p in users}
        self.failures = 0

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        if isinstance(auth_data, LoginPassword):
            want = self.users.get(auth_data.login)
            if want is not None and hmac.compare_digest(want, auth_data.password):
                return AuthResult(success=True, auth_data=auth_data)
        self.failures += 1
        # handled=False: aiosmtpd answers "535 5.7.8 Authentication credentials invalid"
        return AuthResult(success=False, handled=False)


def parse_users(text: str, source: str) -> tuple[tuple[str, str], ...]:
    """AUTH users from *text*: one ``USER:PASSWORD`` a line (the password is the rest of the
    line, colons and all); blank lines and lines starting with ``#`` are skipped. ValueError
    naming *source* and the line (never the password) when one is not USER:PASSWORD."""
    users: list[tuple[str, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, colon, password = line.partition(":")
        if not user or not colon or user != user.strip():
            raise ValueError(f"{source}, line {n}: not USER:PASSWORD")
        users.append((user, password))
    return tuple(users)
