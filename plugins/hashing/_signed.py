"""How nutcracker sees a key byte when its C code reads a plain ``char``.

Several nutcracker hashes read the key through ``const char *`` and cast each
byte to ``uint32_t`` or ``uint64_t``.  On x86 and x86-64 (the reference
build, Debian's amd64 ``nutcracker``) ``char`` is signed, so a byte >= 0x80
is negative and the cast sign-extends it: byte 0xC3 enters the hash as
0xFFFFFFC3, not 0xC3.  (On ARM Linux ``char`` is unsigned, so an ARM build of
nutcracker hashes such keys differently; we follow x86.)  Only the low 32
bits of the extended value ever matter, because every affected hash keeps a
32-bit result and uses only operations whose low bits depend on low bits
alone, so one 32-bit table serves them all.
"""

from __future__ import annotations

__all__ = ["SIGNED_CHAR_U32"]

SIGNED_CHAR_U32: tuple[int, ...] = tuple(b | 0xFFFFFF00 if b >= 0x80 else b for b in range(256))
"""``SIGNED_CHAR_U32[b]`` is ``(uint32_t)(char)b`` where ``char`` is signed."""
