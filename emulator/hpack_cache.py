"""Memoised HPACK Huffman decoding, a measured hot spot of the pure-Python HTTP/2 stack.

h2 (RFC 7541 §7.1.3) sends `authorization` as a never-indexed literal, so the decoder
Huffman-decodes the bearer token on every request: ~15 µs for a short static token, ~90 µs
for a real 200-character OAuth token. The token changes once an hour and `content-length`
values repeat, so a small cache of decoded strings removes most of that work.

This replaces `hpack.hpack.decode_huffman`, the name hpack's decoder calls, for the whole
process: harmless for any other h2 user in the same process (same results, same errors),
and idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import hpack.hpack

_original: Callable[[bytes], bytes] | None = None


def install_hpack_huffman_cache(max_entries: int = 4096) -> None:
    global _original
    if _original is not None:
        return
    # hpack.hpack imported the function by name (`from .huffman_table import ...`), so
    # that module's global is what its Decoder calls; it is not re-exported, hence vars().
    namespace = vars(hpack.hpack)
    original: Callable[[bytes], bytes] = namespace["decode_huffman"]
    _original = original
    cached = lru_cache(maxsize=max_entries)(original)

    def decode_huffman(huffman_string: bytes | bytearray | memoryview | None) -> bytes:
        if not huffman_string:
            return b""
        # hpack hands over memoryview slices of the whole read buffer: copy to a small
        # bytes key, so the cache neither fails on bytearrays nor pins large buffers.
        return cached(bytes(huffman_string))

    namespace["decode_huffman"] = decode_huffman
