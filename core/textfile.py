"""Reading a user's text file (JSON, JSON Lines, CSV) so that whatever is wrong with it is one clear line.

A missing path, a folder, a binary file, UTF-16 text or bytes that are not UTF-8 (a Latin-1 `é`,
a GBK export) each get their own UsageError saying how to fix the file; a UTF-8 byte-order mark,
as some Windows editors write, is dropped. Every loader of user data reads through here, so no
command lets a UnicodeDecodeError through as a traceback.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import UsageError


def read_text(path: str | Path, what: str = "data file", hint: str = "") -> str:
    """The file's text, or one UsageError; `what` names it in messages ("math data"), `hint` ends the missing-file one."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"{what} {path} does not exist" + (f"; {hint}" if hint else ""))
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; pass a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path} ({exc.strerror})") from None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UsageError(f"{path} is UTF-16 text; convert it first, e.g. `iconv -f UTF-16 -t UTF-8 {path} > "
                         f"{path.stem}-utf8{path.suffix}`")
    if b"\x00" in raw[:8192]:  # text in UTF-8 or a legacy encoding such as GBK never holds a NUL byte
        raise UsageError(f"{path} looks like a binary file, not text; pass a UTF-8 text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); convert it first, e.g. "
                         f"`iconv -f LATIN1 -t UTF-8 {path} > {path.stem}-utf8{path.suffix}` (or -f GBK)") from None
