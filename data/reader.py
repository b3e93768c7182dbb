"""Read raw JSON records from a file with the physical line where each one starts.

Handles ``.jsonl``, ``.jsonl.gz`` (gzip is sniffed from the bytes, not the name), ``.json``
arrays and any other extension holding JSON lines; UTF-8 with or without BOM; LF or CRLF.
Written by hand because ``datasets``' JSON loader stops at the first bad line and reports
no line numbers — the validator must report every bad line and carry on.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

try:
    import orjson
except ImportError:  # optional speed-up
    orjson = None

BOM = b"\xef\xbb\xbf"


class FileError(Exception):
    """The file as a whole cannot be read (missing, not gzip, ...)."""


class Bad:
    """A record-level read failure (invalid JSON or UTF-8) in place of the value."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def read_file(path: str | Path) -> bytes:
    """The file's bytes as stored (what its sha256 is taken of)."""
    p = Path(path)
    if not p.exists():
        raise FileError("no such file")
    if p.is_dir():
        raise FileError("is a directory, expected a .jsonl/.json file")
    return p.read_bytes()


def decode(raw: bytes) -> bytes:
    """Stored bytes -> JSON text bytes: gunzip when gzip, drop a UTF-8 BOM."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise FileError(f"corrupt gzip data ({e})") from None
    return raw[len(BOM):] if raw.startswith(BOM) else raw


def _utf8_error(e: UnicodeDecodeError) -> Bad:
    return Bad(f"invalid UTF-8 at byte {e.start + 1} of the line (0x{e.object[e.start]:02x})")


def iter_records(source: str | Path | bytes) -> Iterator[tuple[int, object, bytes | None]]:
    """Yield ``(line, value, raw)``: value is the parsed JSON or a :class:`Bad`; raw is the
    line's bytes for JSON lines (None inside a .json array).

    ``source`` is a path or the stored bytes of a file (see :func:`read_file`).
    """
    raw = decode(source if isinstance(source, bytes) else read_file(source))
    head = raw.lstrip()[:1]
    if head == b"[":
        yield from _iter_array(raw)
    else:
        yield from _iter_lines(raw)


def _iter_lines(raw: bytes) -> Iterator[tuple[int, object, bytes | None]]:
    loads = json.loads
    for n, line in enumerate(raw.split(b"\n"), 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            continue
        if orjson is not None:
            # orjson is 2x faster; on anything it refuses (bad JSON, bad UTF-8, but also
            # integers over 64 bits or lone surrogates, which the stdlib accepts) the stdlib
            # path below decides, so results and messages never depend on orjson.
            try:
                yield n, orjson.loads(line), line
                continue
            except orjson.JSONDecodeError:
                pass
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            yield n, _utf8_error(e), line
            continue
        try:
            yield n, loads(text), line
        except json.JSONDecodeError as e:
            yield n, Bad(f"invalid JSON: {e.msg} at column {e.colno}"), line
        except RecursionError:
            yield n, Bad("invalid JSON: nested too deeply"), line


def _iter_array(raw: bytes) -> Iterator[tuple[int, object, bytes | None]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        yield line, Bad(f"invalid UTF-8 at byte {e.start + 1} of the file (0x{raw[e.start]:02x})"), None
        return
    dec = json.JSONDecoder()
    i = text.index("[") + 1
    line, seen = 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, seen
        line += text.count("\n", seen, pos)
        seen = pos
        return line

    n = len(text)
    expect_value = True
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            yield line_at(i), Bad("invalid JSON: the array is not closed with ']'"), None
            return
        if text[i] == "]":
            return
        if not expect_value:
            if text[i] != ",":
                yield line_at(i), Bad(f"invalid JSON: expected ',' or ']' between array items, found {text[i]!r}"), None
                return
            i += 1
            expect_value = True
            continue
        start = i
        try:
            value, i = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            # Inside one array there is no way to resynchronise: report and stop this file.
            yield line_at(start), Bad(f"invalid JSON: {e.msg} (line {e.lineno}, column {e.colno}); rest of the array not read"), None
            return
        except RecursionError:
            yield line_at(start), Bad("invalid JSON: nested too deeply; rest of the array not read"), None
            return
        yield line_at(start), value, None
        expect_value = False
