/*
 * corenet.plugins.hashing._speedups: compiled versions of the eight
 * nutcracker 0.5.0 key hashes that need a per-byte loop.
 *
 * The pure-Python modules next to this file (_fnv.py, _oaat.py, _murmur.py,
 * _jenkins.py, _hsieh.py) are the reference: they carry the explanations of
 * every quirk, and the tests check this module against them (golden vectors
 * from nutcracker's own C code, plus a differential hypothesis test).  md5,
 * crc16, crc32 and crc32a already run in C through hashlib, binascii and
 * zlib, so they have no counterpart here.
 *
 * Each function is METH_O: it takes one object supporting the buffer
 * protocol (bytes, bytearray, memoryview, ...), hashes its bytes, and
 * returns an int in [0, 2**32).  Anything else raises TypeError.
 *
 * Portability rules kept throughout:
 *   - all arithmetic is on fixed-width unsigned types, so wrap-around is
 *     defined and identical on every platform;
 *   - nutcracker reads key bytes through `const char *`, and `char` is
 *     signed on its reference build (x86-64): where that sign extension
 *     changes the result, it is written out as an explicit `(int8_t)` cast,
 *     so an ARM build (unsigned `char`) computes the same values;
 *   - multi-byte words are assembled little-endian byte by byte (what the
 *     reference build's pointer casts read), so big-endian hosts agree too.
 *
 * No module state, no GIL release: keys are short and the calls are cheap.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_cmodule.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef uint32_t (*hash_impl)(const uint8_t *key, size_t len);

/* (uint32_t)(char)b with a signed char, whatever this compiler's char is.
 * uint8_t -> int8_t of a value > 127 is implementation-defined before C23;
 * gcc, clang and MSVC all define it as two's complement wrap-around (and
 * C23 requires it), which is what nutcracker's x86-64 build does. */
static inline uint32_t
signed_byte(uint8_t b)
{
    return (uint32_t)(int32_t)(int8_t)b;
}

static inline uint32_t
load_le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static inline uint32_t
load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint32_t
rotl32(uint32_t x, unsigned int k)
{
    return (x << k) | (x >> (32u - k));
}

/* ---- FNV (see _fnv.py) ------------------------------------------------ */

/* Every nutcracker FNV hash is this loop over a 32-bit state: FNV-1
 * multiplies then xors, FNV-1a xors then multiplies.  The 64-bit variants
 * only differ in their constants' low halves, since the low 32 bits of a
 * 64-bit product and xor depend only on the operands' low 32 bits (and
 * nutcracker's fnv1a_64 keeps its state in a uint32_t anyway).  Called with
 * constant arguments, so each caller inlines to its own loop. */
static inline uint32_t
fnv_state32(const uint8_t *key, size_t len, uint32_t h, uint32_t prime, int xor_first)
{
    for (size_t i = 0; i < len; i++) {
        if (xor_first) {
            h ^= signed_byte(key[i]);
            h *= prime;
        } else {
            h *= prime;
            h ^= signed_byte(key[i]);
        }
    }
    return h;
}

#define FNV64_SEED UINT32_C(0x84222325) /* low half of 0xcbf29ce484222325 */
#define FNV64_PRIME UINT32_C(0x1b3)     /* low half of 0x100000001b3 */
#define FNV32_SEED UINT32_C(0x811c9dc5)
#define FNV32_PRIME UINT32_C(0x01000193)

#define FNV_IMPL(name, seed, prime, xor_first)                \
    static uint32_t impl_##name(const uint8_t *key, size_t len) \
    {                                                           \
        return fnv_state32(key, len, seed, prime, xor_first);   \
    }
FNV_IMPL(fnv1a_64, FNV64_SEED, FNV64_PRIME, 1)
FNV_IMPL(fnv1_64, FNV64_SEED, FNV64_PRIME, 0)
FNV_IMPL(fnv1a_32, FNV32_SEED, FNV32_PRIME, 1)
FNV_IMPL(fnv1_32, FNV32_SEED, FNV32_PRIME, 0)

/* ---- one_at_a_time (see _oaat.py) -------------------------------------- */

static uint32_t
impl_one_at_a_time(const uint8_t *key, size_t len)
{
    uint32_t h = 0;
    for (size_t i = 0; i < len; i++) {
        h += signed_byte(key[i]);
        h += h << 10;
        h ^= h >> 6;
    }
    h += h << 3;
    h ^= h >> 11;
    h += h << 15;
    return h;
}

/* ---- murmur: MurmurHash2 with nutcracker's seed (see _murmur.py) ------- */

static uint32_t
impl_murmur(const uint8_t *key, size_t len)
{
    const uint32_t m = UINT32_C(0x5bd1e995);
    /* The seed, and the length mixed into the initial state, are the
     * length modulo 2**32, as in nutcracker's uint32_t arithmetic. */
    const uint32_t len32 = (uint32_t)len;
    uint32_t h = (UINT32_C(0xdeadbeef) * len32) ^ len32;
    size_t rest = len;

    while (rest >= 4) {
        uint32_t k = load_le32(key);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
        key += 4;
        rest -= 4;
    }
    /* Tail bytes are unsigned here (nutcracker reads them as unsigned char). */
    switch (rest) {
    case 3:
        h ^= (uint32_t)key[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)key[1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)key[0];
        h *= m;
        break;
    default:
        break;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

/* ---- jenkins: lookup3 hashlittle, initval 13 (see _jenkins.py) --------- */

static uint32_t
impl_jenkins(const uint8_t *key, size_t len)
{
    uint32_t a, b, c;
    uint8_t tail[12] = {0};
    size_t rest = len;

    a = b = c = UINT32_C(0xdeadbeef) + (uint32_t)len + UINT32_C(13);
    if (len == 0) {
        return c; /* the initial state, unmixed */
    }
    /* A block is mixed only while more than 12 bytes remain: the last
     * (possibly full) block goes through the final step below. */
    while (rest > 12) {
        a += load_le32(key);
        b += load_le32(key + 4);
        c += load_le32(key + 8);
        a -= c; a ^= rotl32(c, 4);  c += b;
        b -= a; b ^= rotl32(a, 6);  a += c;
        c -= b; c ^= rotl32(b, 8);  b += a;
        a -= c; a ^= rotl32(c, 16); c += b;
        b -= a; b ^= rotl32(a, 19); a += c;
        c -= b; c ^= rotl32(b, 4);  b += a;
        key += 12;
        rest -= 12;
    }
    /* 1..12 bytes left: zero-padded little-endian words. */
    memcpy(tail, key, rest);
    a += load_le32(tail);
    b += load_le32(tail + 4);
    c += load_le32(tail + 8);
    c ^= b; c -= rotl32(b, 14);
    a ^= c; a -= rotl32(c, 11);
    b ^= a; b -= rotl32(a, 25);
    c ^= b; c -= rotl32(b, 16);
    a ^= c; a -= rotl32(c, 4);
    b ^= a; b -= rotl32(a, 14);
    c ^= b; c -= rotl32(b, 24);
    return c;
}

/* ---- hsieh: SuperFastHash as nutcracker has it (see _hsieh.py) --------- */

static uint32_t
impl_hsieh(const uint8_t *key, size_t len)
{
    uint32_t h = 0;
    size_t blocks = len >> 2;

    if (len == 0) {
        return 0;
    }
    for (; blocks > 0; blocks--) {
        h += load_le16(key);
        h = (h << 16) ^ (load_le16(key + 2) << 11) ^ h;
        h += h >> 11;
        key += 4;
    }
    switch (len & 3) {
    case 3:
        h += load_le16(key);
        h ^= h << 16;
        /* The quirk: this byte alone is read as a signed char. */
        h ^= signed_byte(key[2]) << 18;
        h += h >> 11;
        break;
    case 2:
        h += load_le16(key);
        h ^= h << 11;
        h += h >> 17;
        break;
    case 1:
        h += (uint32_t)key[0];
        h ^= h << 10;
        h += h >> 1;
        break;
    default:
        break;
    }
    h ^= h << 3;
    h += h >> 5;
    h ^= h << 4;
    h += h >> 17;
    h ^= h << 25;
    h += h >> 6;
    return h;
}

/* ---- Python glue -------------------------------------------------------- */

static PyObject *
call_hash(PyObject *arg, hash_impl impl)
{
    Py_buffer view;
    uint32_t h;

    /* bytes is what the proxy passes; skip the buffer dance for it. */
    if (PyBytes_CheckExact(arg)) {
        h = impl((const uint8_t *)PyBytes_AS_STRING(arg),
                 (size_t)PyBytes_GET_SIZE(arg));
        return PyLong_FromUnsignedLong((unsigned long)h);
    }
    /* Raises TypeError for objects without the buffer protocol (str...). */
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    h = impl((const uint8_t *)view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong((unsigned long)h);
}

#define HASH_WRAPPER(name)                                                  \
    static PyObject *py_##name(PyObject *module, PyObject *arg)             \
    {                                                                       \
        (void)module;                                                       \
        return call_hash(arg, impl_##name);                                 \
    }

HASH_WRAPPER(fnv1a_64)
HASH_WRAPPER(fnv1_64)
HASH_WRAPPER(fnv1a_32)
HASH_WRAPPER(fnv1_32)
HASH_WRAPPER(one_at_a_time)
HASH_WRAPPER(murmur)
HASH_WRAPPER(jenkins)
HASH_WRAPPER(hsieh)

#define HASH_METHOD(name, doc)                                              \
    {#name, py_##name, METH_O,                                              \
     PyDoc_STR(#name "(key, /)\n--\n\n" doc)}

static PyMethodDef speedups_methods[] = {
    HASH_METHOD(fnv1a_64, "nutcracker's fnv1a_64 (32-bit state) of a bytes-like key."),
    HASH_METHOD(fnv1_64, "nutcracker's fnv1_64 (low 32 bits of 64-bit FNV-1) of a bytes-like key."),
    HASH_METHOD(fnv1a_32, "nutcracker's fnv1a_32 of a bytes-like key."),
    HASH_METHOD(fnv1_32, "nutcracker's fnv1_32 of a bytes-like key."),
    HASH_METHOD(one_at_a_time, "nutcracker's one_at_a_time of a bytes-like key."),
    HASH_METHOD(murmur, "nutcracker's murmur (MurmurHash2) of a bytes-like key."),
    HASH_METHOD(jenkins, "nutcracker's jenkins (lookup3 hashlittle) of a bytes-like key."),
    HASH_METHOD(hsieh, "nutcracker's hsieh (SuperFastHash) of a bytes-like key."),
    {NULL, NULL, 0, NULL},
};

CORENET_MODULE(_speedups, "corenet.plugins.hashing._speedups",
               "Compiled nutcracker key hashes; the pure-Python modules are the reference.",
               speedups_methods, )
