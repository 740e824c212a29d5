"""Input tokens of images and audio in a request, from the part's data when it is inline.

Images: the documented tile formula (the patch formula for the models that use it), the size read
from a ``data:`` URI's header, 1024x1024 assumed otherwise. Audio: 10 tokens per second, the
duration from the WAV header or the data size at 128 kbit/s. ``tokens`` re-exports the public names.
"""
from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Any, Optional


def bare_model(model: Optional[str]) -> str:
    """``model`` lowercased, without a ``provider/`` prefix (the model-prefix tables match it)."""
    return (model or "").strip().lower().rsplit("/", 1)[-1]


_DEFAULT_IMAGE_SIZE = (1024, 1024)
# (base tokens, tokens per 512px tile) for models that do not use the gpt-4o values (85, 170).
_TILE_PRICES = (("gpt-4o-mini", 2833, 5667), ("o1", 75, 150), ("o3", 75, 150))
# Tokens per 32px patch for the models billed by patches (OpenAI vision guide).
_PATCH_MULTIPLIERS = (
    ("gpt-4.1-mini", 1.62), ("gpt-4.1-nano", 2.46), ("gpt-5-mini", 1.62), ("gpt-5-nano", 2.46),
    ("o4-mini", 1.72),
)
_MAX_PATCHES = 1536


def image_tokens(width: int, height: int, detail: str = "auto", model: Optional[str] = None) -> int:
    """Input tokens for one image of ``width`` x ``height`` pixels.

    Tile formula: detail "low" costs the base (85). Otherwise ("high", and "auto", where the API
    may choose either: we assume the dearer) the image is scaled to fit in 2048x2048, then its
    shortest side scaled down to 768, and each 512px tile costs 170, plus 85. gpt-4o-mini and the
    o1/o3 models use other constants; gpt-4.1-mini/nano, gpt-5-mini/nano and o4-mini count 32px
    patches (at most 1536) times a per-model multiplier, whatever the detail.
    """
    try:
        width, height = int(width), int(height)
    except (TypeError, ValueError, OverflowError):
        width, height = _DEFAULT_IMAGE_SIZE
    name = bare_model(model)
    for prefix, multiplier in _PATCH_MULTIPLIERS:
        if name.startswith(prefix):
            return math.ceil(_patches(width, height) * multiplier)
    base, tile = 85, 170
    for prefix, tile_base, tile_price in _TILE_PRICES:
        if name.startswith(prefix):
            base, tile = tile_base, tile_price
            break
    if detail == "low":
        return base
    w, h = float(max(width, 1)), float(max(height, 1))
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def _patches(width: int, height: int) -> int:
    w, h = float(max(width, 1)), float(max(height, 1))
    patches = math.ceil(w / 32) * math.ceil(h / 32)
    if patches <= _MAX_PATCHES:
        return patches
    r = math.sqrt(32 * 32 * _MAX_PATCHES / (w * h))
    r *= min(math.floor(w * r / 32) / (w * r / 32), math.floor(h * r / 32) / (h * r / 32))
    return min(_MAX_PATCHES, math.ceil(w * r / 32) * math.ceil(h * r / 32))


# Enough base64 for the headers we read; JPEG's size marker can follow a large EXIF block.
_IMAGE_HEADER_B64_CHARS = 1 << 18


def image_size_from_data_uri(url: str) -> Optional[tuple[int, int]]:
    """(width, height) read from the header of a PNG/JPEG/GIF/WebP ``data:`` URI, or None."""
    if not url.startswith("data:"):
        return None
    comma = url.find(",")
    if comma < 0 or ";base64" not in url[:comma]:
        return None
    chunk = url[comma + 1 : comma + 1 + _IMAGE_HEADER_B64_CHARS]
    chunk = chunk[: len(chunk) - len(chunk) % 4]
    try:
        data = base64.b64decode(chunk)
    except (binascii.Error, ValueError):
        return None
    return image_size(data)


def image_size(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) from the first bytes of a PNG, GIF, WebP or JPEG file, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if kind == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8X":
            return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        return None
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> Optional[tuple[int, int]]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        # SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def image_url_tokens(url: Any, detail: Any, model: Optional[str]) -> int:
    size = image_size_from_data_uri(url) if isinstance(url, str) else None
    width, height = size or _DEFAULT_IMAGE_SIZE
    return image_tokens(width, height, detail if isinstance(detail, str) else "auto", model)


# ----------------------------------------------------------------------------- audio

_AUDIO_TOKENS_PER_SECOND = 10
_COMPRESSED_AUDIO_BYTES_PER_SECOND = 16_000  # 128 kbit/s


def audio_tokens(data: Any, audio_format: Any) -> int:
    if not isinstance(data, str) or not data:
        return 0
    size = len(data) * 3 // 4
    bytes_per_second = _COMPRESSED_AUDIO_BYTES_PER_SECOND
    if audio_format == "wav" or data.startswith("UklGR"):  # "RIFF" in base64
        try:
            header = base64.b64decode(data[:64])
            rate = int.from_bytes(header[28:32], "little")
            if header[:4] == b"RIFF" and rate > 0:
                bytes_per_second = rate
                size -= 44
        except (binascii.Error, ValueError):
            pass
    return math.ceil(max(size, 0) / bytes_per_second * _AUDIO_TOKENS_PER_SECOND)
