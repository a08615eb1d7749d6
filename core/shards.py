"""Token shards: token ids on disk, read through memory maps, the way nanoGPT and llm.c store a corpus.

A shard folder holds, per split ("train", "eval", or a fine-tuning set's "examples"), files of at most
`shard_tokens` ids each, and one `index.json` naming them:

    index.json              format, version, dtype, the tokenizer's fingerprint, each split's rows,
                            tokens and shard files with their checksums, plus what the writer adds
    train-00000.bin         a 1024-byte header, then the ids (uint16 when the vocabulary fits, else uint32)

The header repeats what the index says of the file (magic, version, id size, tokens, rows, the
tokenizer's fingerprint hash, a sha256 of the ids), so a file can be checked on its own. Writing is
crash-safe: each file is written under a temporary name, fsynced and renamed; the whole folder is
built under a temporary name and renamed into place after its index, so a folder under its final
name is complete, and a full disk leaves only a temporary folder that nothing reads.

`open_shards` checks everything before a single id is used: the index, each file's size against
its header, the header against the index, and (reading the files once, in chunks, not through the
map, so it costs no resident memory) each checksum. A damaged folder is a `ShardError` naming the
file and what is wrong; callers rebuild a cache or refuse the input. Nothing here imports torch.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"LLMLABTK"
VERSION = 1
HEADER_BYTES = 1024
# magic, version, id size, tokens, rows, tokenizer fingerprint hash (16 bytes), sha256 of the ids (32 bytes)
_HEADER = struct.Struct("<8sIIQQ16s32s")
INDEX = "index.json"
FORMAT = "llmlab-token-shards"
SHARD_TOKENS = 100_000_000  # ids per file: 200 MB as uint16, as nanoGPT's FineWeb shards
_READ_CHUNK = 16 * 2**20


class ShardError(ValueError):
    """A shard folder that cannot be used as it is: missing, cut short, or not what its index says."""


def dtype_for(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (GPT-2's 50,257 do), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def fingerprint_hash(fingerprint: str) -> bytes:
    return hashlib.sha256(fingerprint.encode("utf-8")).digest()[:16]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ShardFile:
    """One shard being written: header placeholder, ids appended (hashed as they go), header filled in, fsynced."""

    def __init__(self, folder: Path, name: str, dtype: np.dtype, fp_hash: bytes) -> None:
        self.name, self.final, self.dtype, self.fp_hash = name, folder / name, dtype, fp_hash
        self.tmp = folder / f".{name}.tmp"
        self.fh = open(self.tmp, "wb")
        self.fh.write(b"\0" * HEADER_BYTES)
        self.tokens, self.rows, self.hash = 0, 0, hashlib.sha256()

    def write(self, ids: np.ndarray) -> None:
        data = np.ascontiguousarray(ids, dtype=self.dtype).tobytes()
        self.fh.write(data)
        self.hash.update(data)
        self.tokens += len(ids)

    def close(self) -> dict:
        digest = self.hash.digest()
        self.fh.seek(0)
        self.fh.write(_HEADER.pack(MAGIC, VERSION, self.dtype.itemsize, self.tokens, self.rows, self.fp_hash, digest))
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.final)
        return {"file": self.name, "tokens": self.tokens, "rows": self.rows, "sha256": digest.hex()}

    def abandon(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


class ShardWriter:
    """Writes one shard folder: `add(split, ids, rows)` in order, then `finish(**extra)` (or `abandon()`).

    Usable as a context manager: leaving it by an exception removes the temporary folder.
    """

    def __init__(self, folder: Path, vocab_size: int, fingerprint: str, shard_tokens: int = SHARD_TOKENS) -> None:
        self.folder = Path(folder)
        self.tmp = self.folder.with_name(f".{self.folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.dtype, self.fingerprint = dtype_for(vocab_size), fingerprint
        self.fp_hash, self.shard_tokens = fingerprint_hash(fingerprint), max(1, int(shard_tokens))
        self.splits: dict[str, dict] = {}
        self.arrays: dict[str, dict] = {}
        self._open: dict[str, _ShardFile] = {}

    def add(self, split: str, ids: np.ndarray, rows: int = 0) -> None:
        """Append `ids` (the ids of `rows` whole rows) to `split`; files roll over every shard_tokens ids."""
        info = self.splits.setdefault(split, {"rows": 0, "tokens": 0, "shards": []})
        info["rows"] += rows
        start = 0
        while True:
            shard = self._open.get(split)
            if shard is None:
                shard = self._open[split] = _ShardFile(self.tmp, f"{split}-{len(info['shards']):05d}.bin", self.dtype,
                                                       self.fp_hash)
            room = self.shard_tokens - shard.tokens
            piece = ids[start:start + room]
            shard.write(piece)
            start += len(piece)
            info["tokens"] += len(piece)
            if start >= len(ids):
                shard.rows += rows  # rows are counted where they end
                return
            info["shards"].append(shard.close())
            del self._open[split]

    def add_array(self, name: str, array: np.ndarray) -> None:
        """A small array that belongs with the ids (e.g. where each fine-tuning example starts), as `name`.npy."""
        final, tmp = self.tmp / f"{name}.npy", self.tmp / f".{name}.npy.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self.arrays[name] = {"file": final.name, "sha256": _file_sha256(final), "length": len(array)}

    def finish(self, **extra) -> Path:
        """Close every file, write the index, and move the folder into place.

        A damaged folder in the way is replaced; a sound one (written meanwhile by another process tokenizing the
        same data: the ranks of another machine, say) is kept and this one dropped, so a folder is never removed
        while someone reads it.
        """
        for split, shard in list(self._open.items()):
            self.splits[split]["shards"].append(shard.close())
        self._open.clear()
        index = {"format": FORMAT, "version": VERSION, "dtype": self.dtype.name, "tokenizer": self.fingerprint,
                 "splits": self.splits, "arrays": self.arrays, **extra}
        (self.tmp / INDEX).write_text(json.dumps(index, ensure_ascii=False, indent=1), encoding="utf-8")
        _fsync(self.tmp / INDEX)
        _fsync(self.tmp)
        if self.folder.exists():
            try:
                open_shards(self.folder)  # checksums too: a damaged cache is why a folder is rewritten
                shutil.rmtree(self.tmp, ignore_errors=True)
                return self.folder
            except ShardError:
                shutil.rmtree(self.folder, ignore_errors=True)
        try:
            os.replace(self.tmp, self.folder)
        except OSError as exc:  # another writer's folder arrived first (a directory is not replaced when not empty)
            if not self.folder.is_dir() or exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(self.tmp, ignore_errors=True)
        _fsync(self.folder.parent)
        return self.folder

    def abandon(self) -> None:
        for shard in self._open.values():
            shard.abandon()
        self._open.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abandon()


@dataclass
class TokenStream:
    """One split's ids across its shard files, read through memory maps: `len()`, `[i]`, `[a:b]` (a numpy array)."""

    maps: list = field(default_factory=list)   # one read-only np.memmap per file
    rows: int = 0

    def __post_init__(self) -> None:
        self.ends = np.cumsum([len(m) for m in self.maps], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    @property
    def dtype(self) -> np.dtype:
        return self.maps[0].dtype if self.maps else np.dtype(np.uint16)

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise ValueError("token streams are read in contiguous slices")
            return self.read(start, stop)
        key = int(key) + (len(self) if int(key) < 0 else 0)
        return self.read(key, key + 1)[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """ids [start, stop) as one array (a copy when the slice spans two files)."""
        stop = min(stop, len(self))
        if stop <= start:
            return np.zeros(0, dtype=self.dtype)
        first = int(np.searchsorted(self.ends, start, side="right"))
        pieces, at = [], start
        for i in range(first, len(self.maps)):
            begin = int(self.ends[i - 1]) if i else 0
            take = self.maps[i][at - begin:min(stop, int(self.ends[i])) - begin]
            pieces.append(take)
            at += len(take)
            if at >= stop:
                break
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def tolist(self) -> list[int]:
        return self.read(0, len(self)).tolist()

    def __array__(self, dtype=None, copy=None):  # np.asarray(stream): every id in memory (small corpora only)
        out = self.read(0, len(self))
        return out.astype(dtype) if dtype is not None else out


@dataclass
class Shards:
    """An opened, checked shard folder."""

    folder: Path
    index: dict
    streams: dict   # split -> TokenStream
    arrays: dict = field(default_factory=dict)  # name -> the array written with add_array (memory-mapped)

    def __getitem__(self, split: str) -> TokenStream:
        return self.streams[split]

    def rows(self, split: str) -> int:
        return int(self.index["splits"].get(split, {}).get("rows", 0))


def open_shards(folder: Path, fingerprint: str | None = None, verify: bool = True) -> Shards:
    """The folder's splits as memory-mapped streams, after checking it whole; ShardError says what is wrong.

    `fingerprint`: the tokenizer the ids must come from. `verify`: also read every file once to check its
    sha256 (about 1 GB/s); the sizes and headers are always checked.
    """
    folder = Path(folder)
    try:
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardError(f"{folder} has no {INDEX} (not a token shard folder, or one whose writing never finished)") from None
    except (OSError, ValueError) as exc:
        raise ShardError(f"{folder / INDEX} is unreadable ({str(exc).splitlines()[0]})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ShardError(f"{folder / INDEX} is not an llmlab token shard index")
    if index.get("version") != VERSION:
        raise ShardError(f"{folder} holds token shards of format version {index.get('version')}; this llmlab reads {VERSION}")
    if fingerprint is not None and index.get("tokenizer") != fingerprint:
        raise ShardError(f"{folder} was tokenized by another tokenizer ({str(index.get('tokenizer'))[:60]}…)")
    dtype = np.dtype(index.get("dtype", "uint16"))
    fp_hash = fingerprint_hash(str(index.get("tokenizer")))
    streams = {}
    for split, info in (index.get("splits") or {}).items():
        maps = []
        for shard in info.get("shards", []):
            path = folder / shard["file"]
            _check_file(path, shard, dtype, fp_hash, verify)
            if shard["tokens"]:
                maps.append(np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(shard["tokens"],)))
        stream = TokenStream(maps, int(info.get("rows", 0)))
        if len(stream) != info.get("tokens"):
            raise ShardError(f"{folder / INDEX} says {split} has {info.get('tokens')} tokens, its files {len(stream)}")
        streams[split] = stream
    arrays = {}
    for name, info in (index.get("arrays") or {}).items():
        path = folder / info["file"]
        try:
            if verify and _file_sha256(path) != info["sha256"]:
                raise ShardError(f"{path.name} fails its checksum: it was changed or damaged on disk")
            arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise ShardError(f"{path.name} is missing from {folder}") from None
        except (OSError, ValueError) as exc:
            raise ShardError(f"{path.name} cannot be read ({str(exc).splitlines()[0]})") from None
        if len(arrays[name]) != info["length"]:
            raise ShardError(f"{path.name} holds {len(arrays[name])} entries but its index says {info['length']}")
    return Shards(folder, index, streams, arrays)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check_file(path: Path, shard: dict, dtype: np.dtype, fp_hash: bytes, verify: bool) -> None:
    want = HEADER_BYTES + int(shard["tokens"]) * dtype.itemsize
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(_HEADER.size)
            if size != want:
                raise ShardError(f"{path.name} is {size:,} bytes but its index says {want:,}: cut short or overwritten")
            if len(head) < _HEADER.size:
                raise ShardError(f"{path.name} has no complete header")
            magic, version, itemsize, tokens, rows, fp, digest = _HEADER.unpack(head)
            if magic != MAGIC or version != VERSION:
                raise ShardError(f"{path.name} does not start with an llmlab token shard header")
            if (itemsize, tokens, rows, fp) != (dtype.itemsize, shard["tokens"], shard["rows"], fp_hash) or \
                    digest.hex() != shard["sha256"]:
                raise ShardError(f"{path.name}'s header does not match its index (another folder's file?)")
            if verify:
                fh.seek(HEADER_BYTES)
                h = hashlib.sha256()
                while chunk := fh.read(_READ_CHUNK):
                    h.update(chunk)
                if h.digest() != digest:
                    raise ShardError(f"{path.name} fails its checksum: its ids were changed or damaged on disk")
    except FileNotFoundError:
        raise ShardError(f"{path.name} is missing from {path.parent}") from None
    except OSError as exc:
        raise ShardError(f"{path.name} cannot be read ({exc.strerror or exc})") from None


__all__ = ["ShardError", "ShardWriter", "TokenStream", "Shards", "open_shards", "dtype_for", "SHARD_TOKENS", "INDEX"]
