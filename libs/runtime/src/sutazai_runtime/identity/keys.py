"""Ed25519 key files (PEM): the private key of a minting principal, the public keys every service trusts.

A public-key file may hold several ``PUBLIC KEY`` blocks: every key in it is trusted (a rotation lists the
old and the new key until no token of the old one can be alive; a worker key of its own is one more block).

``python -m sutazai_runtime.identity.keys <folder>`` writes a new pair (``identity-private.pem``, mode 0600,
and ``identity-public.pem``) unless the folder already holds one.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

PRIVATE_FILE = "identity-private.pem"
PUBLIC_FILE = "identity-public.pem"
_PUBLIC_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


class KeyFileError(ValueError):
    """A key file is missing, unreadable, or holds no key of the expected kind."""


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise KeyFileError(f"cannot read the identity private key {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} holds no unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}; identity proofs are signed with Ed25519")
    return key


def parse_public_keys(text: str, where: str = "the public keys") -> list[Ed25519PublicKey]:
    blocks = _PUBLIC_BLOCK.findall(text)
    if not blocks:
        raise KeyFileError(f"{where} hold no '-----BEGIN PUBLIC KEY-----' block")
    keys = []
    for block in blocks:
        try:
            key = load_pem_public_key(block.encode())
        except ValueError as exc:
            raise KeyFileError(f"{where}: a public key block does not parse: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(f"{where}: a {type(key).__name__}; identity proofs are signed with Ed25519")
        keys.append(key)
    return keys


def load_public_keys(path: Path) -> list[Ed25519PublicKey]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyFileError(f"cannot read the identity public keys {path}: {exc.strerror}") from exc
    return parse_public_keys(text, str(path))


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def ensure_key_pair(folder: Path) -> tuple[Path, Path]:
    """(private, public) key files in ``folder``: made once (private mode 0600), then kept."""
    private, public = folder / PRIVATE_FILE, folder / PUBLIC_FILE
    folder.mkdir(parents=True, exist_ok=True)
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another launcher made it at the same moment: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            public.write_text(public_pem(key.public_key()))
    if not public.exists():  # written from the private key when lost (it is not a secret)
        public.write_text(public_pem(load_private_key(private).public_key()))
    return private, public


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m sutazai_runtime.identity.keys <folder>\n")
        sys.exit(2)
    for made in ensure_key_pair(Path(sys.argv[1])):
        sys.stdout.write(f"{made}\n")
