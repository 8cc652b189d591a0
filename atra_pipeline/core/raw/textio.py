"""Open data files whether or not they are gzip-compressed (sniffed, not guessed from the name)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_binary(path: Path):
    """Binary line reader for a gzip or plain file."""
    if is_gzip(path):  # the extra buffer makes line iteration run in C
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 16)
    return open(path, "rb")


def open_text(path: Path):
    """Text reader (UTF-8, a byte-order mark dropped) for a gzip or plain file."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="")
