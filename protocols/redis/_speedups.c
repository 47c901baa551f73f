/*
 * corenet.protocols.redis._speedups: compiled versions of the two hot scans
 * of the Redis parsers in _parser.py.
 *
 * The pure-Python code in _parser.py is the reference: it documents the
 * rules (which follow Redis 7's processMultibulkBuffer and the RESP2/RESP3
 * reply grammar), it always exists, and the tests check this module against
 * it with differential hypothesis tests.  Both functions here only ever
 * answer for the common case and say "don't know" otherwise, so the Python
 * code keeps the resume state and the exact error messages:
 *
 *   scan_multibulk(buf, start, max_bulk_len) -> (end, spans) | None
 *       _parser._scan_multibulk_pure: a complete multibulk request with
 *       plain decimal lengths at buf[start:], as (end, (s0, e0, s1, e1, ...))
 *       (end absolute, spans relative to start); None for anything else.
 *       A tuple pair rather than a flat [end, s0, ...] list: the caller
 *       passes spans on as they are instead of slicing (measured faster).
 *       Like the reference it does not look at buf[start] (the caller has
 *       seen the '*').
 *
 *   reply_end(buf, pos) -> int
 *       The end offset of the one reply starting at buf[pos], -1 when it is
 *       incomplete, -2 when ReplyParser.parse would raise on it.
 *
 * buf is bytes (or any object with the buffer protocol); anything else gives
 * None / -2, as does a negative offset.  No module state, no GIL release:
 * the scans are short and skip bulk bodies by their declared length.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

#define IS_DIGIT(c) ((unsigned char)((c) - '0') <= 9u)

/* Reply counts and sizes saturate here: no buffer holds that many elements
 * or bytes, so a saturated value behaves like the exact (larger) one. */
#define SAT_MAX ((long long)1 << 60)

typedef struct {
    Py_buffer view;
    int owned; /* view must be released */
} byte_source;

/* Point src at buf's bytes; 0 on success, -1 (no exception set) otherwise. */
static int
source_get(PyObject *buf, byte_source *src)
{
    if (PyBytes_Check(buf)) {
        src->view.buf = PyBytes_AS_STRING(buf);
        src->view.len = PyBytes_GET_SIZE(buf);
        src->owned = 0;
        return 0;
    }
    if (PyObject_GetBuffer(buf, &src->view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return -1;
    }
    src->owned = 1;
    return 0;
}

static void
source_release(byte_source *src)
{
    if (src->owned) {
        PyBuffer_Release(&src->view);
    }
}

/* ---- requests --------------------------------------------------------- */

/* Scan the multibulk request at s[start:n]; return its end offset and store
 * the argument count in *argc_out, or return -1 when the fast path does not
 * apply (-2 on a memory error).  With spans (a tuple of 2 * argc) non-NULL,
 * fill it with the relative offsets. */
static Py_ssize_t
multibulk_scan(const char *s, Py_ssize_t n, Py_ssize_t start, long long max_bulk,
               Py_ssize_t *argc_out, PyObject *spans)
{
    Py_ssize_t p = start + 1;
    long long argc = 0;

    /* "*<count>\r\n": digits, no leading zero (so not "0"), <= INT_MAX. */
    if (p >= n || !IS_DIGIT(s[p]) || s[p] == '0') {
        return -1;
    }
    while (p < n && IS_DIGIT(s[p])) {
        argc = argc * 10 + (s[p] - '0');
        if (argc > INT_MAX) {
            return -1;
        }
        p++;
    }
    if (p + 1 >= n || s[p] != '\r' || s[p + 1] != '\n') {
        return -1;
    }
    p += 2;
    /* Each element takes at least 6 bytes ("$0\r\n" and 2): cheap bail-out
     * that also bounds the list allocated by the caller. */
    if (argc > (n - p) / 6 || max_bulk < 0) {
        return -1;
    }
    for (long long i = 0; i < argc; i++) {
        Py_ssize_t q;
        long long size = 0;
        /* The size can't exceed the bytes left, nor max_bulk. */
        long long limit = (long long)(n - p);
        if (max_bulk < limit) {
            limit = max_bulk;
        }
        if (p >= n || s[p] != '$') {
            return -1;
        }
        q = p + 1;
        if (q >= n || !IS_DIGIT(s[q])) {
            return -1;
        }
        if (s[q] == '0' && q + 1 < n && IS_DIGIT(s[q + 1])) {
            return -1; /* a leading zero; a lone "0" is fine */
        }
        while (q < n && IS_DIGIT(s[q])) {
            int d = s[q] - '0';
            if (limit - d < 0 || size > (limit - d) / 10) {
                return -1; /* over max_bulk, or more than the buffer holds */
            }
            size = size * 10 + d;
            q++;
        }
        if (q + 1 >= n || s[q] != '\r' || s[q + 1] != '\n') {
            return -1;
        }
        q += 2;
        /* The data and the two bytes after it (not checked, like Redis). */
        if (size > (long long)(n - q) - 2) {
            return -1;
        }
        if (spans != NULL) {
            PyObject *a = PyLong_FromSsize_t(q - start);
            PyObject *b = PyLong_FromSsize_t(q + (Py_ssize_t)size - start);
            if (a == NULL || b == NULL) {
                Py_XDECREF(a);
                Py_XDECREF(b);
                return -2;
            }
            PyTuple_SET_ITEM(spans, (Py_ssize_t)(2 * i), a);
            PyTuple_SET_ITEM(spans, (Py_ssize_t)(2 * i + 1), b);
        }
        p = q + (Py_ssize_t)size + 2;
    }
    *argc_out = (Py_ssize_t)argc;
    return p;
}

static PyObject *
scan_multibulk(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    byte_source src;
    Py_ssize_t start, argc = 0, end;
    long long max_bulk;
    int overflow;
    PyObject *spans, *end_obj, *result;

    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "scan_multibulk expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    max_bulk = PyLong_AsLongLongAndOverflow(args[2], &overflow);
    if (max_bulk == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow > 0) {
        max_bulk = LLONG_MAX;
    }
    else if (overflow < 0) {
        max_bulk = -1;
    }
    if (start < 0 || source_get(args[0], &src) < 0) {
        Py_RETURN_NONE;
    }
    /* First pass validates and finds argc; the second (same bytes, now
     * known good) builds the spans, so a failed scan allocates nothing. */
    end = multibulk_scan(src.view.buf, src.view.len, start, max_bulk, &argc, NULL);
    if (end < 0) {
        source_release(&src);
        Py_RETURN_NONE;
    }
    spans = PyTuple_New(2 * argc);
    if (spans == NULL) {
        source_release(&src);
        return NULL;
    }
    if (multibulk_scan(src.view.buf, src.view.len, start, max_bulk, &argc, spans) != end) {
        source_release(&src);
        Py_DECREF(spans);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "buffer changed while scanned");
        }
        return NULL;
    }
    source_release(&src);
    end_obj = PyLong_FromSsize_t(end);
    if (end_obj == NULL) {
        Py_DECREF(spans);
        return NULL;
    }
    result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(end_obj);
        Py_DECREF(spans);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, end_obj);
    PyTuple_SET_ITEM(result, 1, spans);
    return result;
}

/* ---- replies ---------------------------------------------------------- */

/* First "\r\n" in s[p:n], as bytes.find; -1 if none. */
static Py_ssize_t
find_crlf(const char *s, Py_ssize_t p, Py_ssize_t n)
{
    while (p < n - 1) {
        const char *r = memchr(s + p, '\r', (size_t)(n - 1 - p));
        if (r == NULL) {
            return -1;
        }
        p = r - s;
        if (s[p + 1] == '\n') {
            return p;
        }
        p++;
    }
    return -1;
}

/* _parser._length of s[a:b]: 0 and the value (saturated at SAT_MAX) in
 * *out for strict digits, 0 and -1 for exactly "-1", -1 otherwise. */
static int
reply_length(const char *s, Py_ssize_t a, Py_ssize_t b, long long *out)
{
    long long v = 0;
    if (b - a == 2 && s[a] == '-' && s[a + 1] == '1') {
        *out = -1;
        return 0;
    }
    if (a >= b) {
        return -1;
    }
    for (; a < b; a++) {
        if (!IS_DIGIT(s[a])) {
            return -1;
        }
        /* No overflow: v <= (SAT_MAX - 9) / 10 before the step. */
        v = v > (SAT_MAX - 9) / 10 ? SAT_MAX : v * 10 + (s[a] - '0');
    }
    *out = v;
    return 0;
}

static Py_ssize_t
reply_scan(const char *s, Py_ssize_t n, Py_ssize_t pos)
{
    Py_ssize_t p = pos;
    long long owed = 1;

    if (pos >= n) {
        return -1;
    }
    while (owed) {
        long long len;
        Py_ssize_t nl = find_crlf(s, p, n);
        if (nl < 0) {
            return -1;
        }
        owed--;
        switch (s[p]) {
        case '+': case '-': case ':': case '_': case ',': case '#': case '(':
            p = nl + 2;
            break;
        case '$': case '=': case '!':
            if (reply_length(s, p + 1, nl, &len) < 0) {
                return -2;
            }
            if (len < 0) {
                p = nl + 2;
                break;
            }
            if (len > (long long)(n - nl) - 4) {
                return -1;
            }
            p = nl + 4 + (Py_ssize_t)len;
            if (s[p - 2] != '\r' || s[p - 1] != '\n') {
                return -2;
            }
            break;
        case '*': case '~': case '>': case '%': case '|':
            if (reply_length(s, p + 1, nl, &len) < 0) {
                return -2;
            }
            if (len > 0) {
                owed += (s[p] == '%' || s[p] == '|') ? 2 * len : len;
            }
            if (s[p] == '|') {
                owed += 1; /* an attribute decorates the value after it */
            }
            if (owed > SAT_MAX) {
                owed = SAT_MAX;
            }
            p = nl + 2;
            break;
        default:
            return -2;
        }
        if (owed && p >= n) {
            return -1;
        }
    }
    return p;
}

static PyObject *
reply_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    byte_source src;
    Py_ssize_t pos, end;

    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "reply_end expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (pos < 0 || source_get(args[0], &src) < 0) {
        return PyLong_FromLong(-2);
    }
    end = reply_scan(src.view.buf, src.view.len, pos);
    source_release(&src);
    return PyLong_FromSsize_t(end);
}

static PyMethodDef speedups_methods[] = {
    {"scan_multibulk", (PyCFunction)(void (*)(void))scan_multibulk, METH_FASTCALL,
     PyDoc_STR("scan_multibulk(buf, start, max_bulk_len, /)\n--\n\n"
               "(end, (s0, e0, ...)) of the complete plain multibulk request at "
               "buf[start:] (spans relative to start), or None.")},
    {"reply_end", (PyCFunction)(void (*)(void))reply_end, METH_FASTCALL,
     PyDoc_STR("reply_end(buf, pos, /)\n--\n\n"
               "End offset of the one reply at buf[pos:], -1 if incomplete, "
               "-2 if malformed.")},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot speedups_slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "corenet.protocols.redis._speedups",
    .m_doc = "Compiled Redis request and reply scans; _parser.py is the reference.",
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
