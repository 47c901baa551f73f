/*
 * corenet.protocols.redis._speedups: compiled versions of the hot scans
 * of the Redis parsers in _parser.py.
 *
 * The pure-Python code in _parser.py is the reference: it documents the
 * rules (which follow Redis 7's processMultibulkBuffer and the RESP2/RESP3
 * reply grammar), it always exists, and the tests check this module against
 * it with differential hypothesis tests.  The functions here only ever
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
 *   scan_keyed(buf, pos, max_bulk_len, table) -> (data, end, key, fan) | None
 *       _parser._scan_keyed_pure: the same scan, then the command looked up
 *       by its lowercased name in table, so that the requests routed by one
 *       key (or fanned out by their keys) cost one call from bytes to
 *       routing key.  None whenever the general path must decide.
 *
 *   scan_keyed_many(buf, pos, max_bulk_len, table, limit, make, make_fanout,
 *                   max_keys) -> (requests, end)
 *       scan_keyed over a pipeline, in one call per read: the requests it
 *       answers for, built by the callables given, up to the first it does
 *       not (from where the Python parser goes on).
 *
 *   reply_end(buf, pos) -> int
 *       The end offset of the one reply starting at buf[pos], -1 when it is
 *       incomplete, -2 when ReplyParser.parse would raise on it.
 *
 *   reply_resume(buf, p, owed) -> (p, owed)
 *       The same walk resumed inside an incomplete reply: from buf[p], owed
 *       elements to come, over every complete element, stopping at the first
 *       incomplete or malformed one (its start, owed counting it), where
 *       ReplyParser.parse goes on in Python to wait or raise.
 *
 *   split_replies(buf, pos, limit) -> (replies, end)
 *       reply_end over a pipeline: the complete replies as bytes, in one
 *       call per read, up to the first the Python parser must look at.
 *
 *   split_array(reply) -> list | None
 *       _fanout._split_array_pure: the elements of the one array reply
 *       that makes up all of reply, as bytes; None for anything else.
 *
 *   merge_arrays(count, replies, positions) -> bytes | int
 *       _fanout._merge_arrays_pure: the split MGET's array reply, each
 *       fragment's elements copied once into place; or the index of the
 *       first fragment reply that cannot be merged.
 *
 *   encode_command(args) -> bytes
 *       _resp.encode_command: args (an iterable of bytes-like objects) as
 *       one multibulk request; TypeError for anything not bytes-like.
 *
 * buf is bytes (or any object with the buffer protocol); anything else gives
 * None / -2, as does a negative offset.  No module state, no GIL release:
 * the scans are short and skip bulk bodies by their declared length.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_cmodule.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>


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

/* Read the offset and max_bulk_len arguments shared by the request scans:
 * 0 on success, -1 with an exception set.  A max_bulk_len beyond long long
 * saturates (LLONG_MAX, or -1 for a hugely negative one: no bulk allowed). */
static int
offset_and_limit(PyObject *pos_obj, PyObject *max_obj, Py_ssize_t *pos, long long *max_bulk)
{
    int overflow;

    *pos = PyLong_AsSsize_t(pos_obj);
    if (*pos == -1 && PyErr_Occurred()) {
        return -1;
    }
    *max_bulk = PyLong_AsLongLongAndOverflow(max_obj, &overflow);
    if (*max_bulk == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow) {
        *max_bulk = overflow > 0 ? LLONG_MAX : -1;
    }
    return 0;
}

/* ---- requests --------------------------------------------------------- */

/* Scan the multibulk request at s[start:n]; return its end offset and store
 * the argument count in *argc_out, or return -1 when the fast path does not
 * apply (-2 on a memory error).  With spans (a tuple of 2 * argc) non-NULL,
 * fill it with the relative offsets; with marks non-NULL, store the absolute
 * (start, end) of the first cap arguments there. */
static Py_ssize_t
multibulk_scan(const char *s, Py_ssize_t n, Py_ssize_t start, long long max_bulk,
               Py_ssize_t *argc_out, PyObject *spans, Py_ssize_t *marks, long long cap)
{
    Py_ssize_t p = start + 1;
    long long argc = 0;

    /* "*<count>\r\n": digits, no leading zero (so not "0"), <= INT_MAX. */
    if (p >= n || !CORENET_IS_DIGIT(s[p]) || s[p] == '0') {
        return -1;
    }
    while (p < n && CORENET_IS_DIGIT(s[p])) {
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
        if (q >= n || !CORENET_IS_DIGIT(s[q])) {
            return -1;
        }
        if (s[q] == '0' && q + 1 < n && CORENET_IS_DIGIT(s[q + 1])) {
            return -1; /* a leading zero; a lone "0" is fine */
        }
        while (q < n && CORENET_IS_DIGIT(s[q])) {
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
        if (marks != NULL && i < cap) {
            marks[2 * i] = q;
            marks[2 * i + 1] = q + (Py_ssize_t)size;
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
    PyObject *spans, *end_obj, *result;

    (void)module;
    if (!corenet_arity_ok("scan_multibulk", nargs, 3)) {
        return NULL;
    }
    if (offset_and_limit(args[1], args[2], &start, &max_bulk) < 0) {
        return NULL;
    }
    if (start < 0 || source_get(args[0], &src) < 0) {
        Py_RETURN_NONE;
    }
    /* First pass validates and finds argc; the second (same bytes, now
     * known good) builds the spans, so a failed scan allocates nothing. */
    end = multibulk_scan(src.view.buf, src.view.len, start, max_bulk, &argc, NULL, NULL, 0);
    if (end < 0) {
        source_release(&src);
        Py_RETURN_NONE;
    }
    spans = PyTuple_New(2 * argc);
    if (spans == NULL) {
        source_release(&src);
        return NULL;
    }
    if (multibulk_scan(src.view.buf, src.view.len, start, max_bulk, &argc, spans, NULL, 0) != end) {
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

/* Longest command name looked up, and how many leading arguments scan_keyed
 * records: enough for every first-key position in the table. */
#define KEYED_NAME_MAX 32
#define KEYED_ARGS 8

/* The arguments from index first on of the multibulk request at s[start:],
 * already validated by multibulk_scan, as a new list of bytes. */
static PyObject *
collect_args(const char *s, Py_ssize_t start, Py_ssize_t first, Py_ssize_t argc)
{
    PyObject *list = PyList_New(argc - first);
    Py_ssize_t p = start + 1;

    if (list == NULL) {
        return NULL;
    }
    while (s[p] != '\n') {
        p++;
    }
    p++;
    for (Py_ssize_t i = 0; i < argc; i++) {
        Py_ssize_t size = 0;
        p++; /* '$' */
        while (s[p] != '\r') {
            size = size * 10 + (s[p] - '0');
            p++;
        }
        p += 2;
        if (i >= first) {
            PyObject *arg = PyBytes_FromStringAndSize(s + p, size);
            if (arg == NULL) {
                Py_DECREF(list);
                return NULL;
            }
            PyList_SET_ITEM(list, i - first, arg);
        }
        p += size + 2;
    }
    return list;
}

/* _parser._scan_keyed_pure: a complete plain multibulk request at buf[pos:]
 * whose name, ASCII-lowercased, is in table (lowercase name -> (arity,
 * first_key, fan)) with an argument count that arity allows, as (data, end,
 * key, fan), or with fan not None (data, end, [arguments from first_key on],
 * fan); None for anything else.  Unlike scan_multibulk it checks
 * buf[pos] == '*'. */
/* The request at s[pos:n] as scan_keyed finds it: 1 with *data, *key (new
 * references), *fan (borrowed) and *end set; 0 when the general path must
 * decide; -1 with an exception set.  whole is the buffer object, returned
 * as the data when the request is all of it. */
static int
keyed_at(PyObject *whole, const char *s, Py_ssize_t n, Py_ssize_t pos, long long max_bulk,
         PyObject *table, PyObject **data, PyObject **key, PyObject **fan, Py_ssize_t *end)
{
    Py_ssize_t argc = 0, marks[2 * KEYED_ARGS], name_len, stop;
    long arity, first_key;
    char lower[KEYED_NAME_MAX];
    PyObject *name, *entry;

    if (pos >= n || s[pos] != '*') {
        return 0;
    }
    stop = multibulk_scan(s, n, pos, max_bulk, &argc, NULL, marks, KEYED_ARGS);
    name_len = stop < 0 ? 0 : marks[1] - marks[0];
    if (name_len <= 0 || name_len > KEYED_NAME_MAX) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < name_len; i++) {
        char c = s[marks[0] + i];
        lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
    }
    name = PyBytes_FromStringAndSize(lower, name_len);
    if (name == NULL) {
        return -1;
    }
    entry = PyDict_GetItemWithError(table, name); /* borrowed */
    Py_DECREF(name);
    if (entry == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "scan_keyed: table values must be (arity, first_key, fan)");
        return -1;
    }
    arity = PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
    first_key = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
    if ((arity == -1 || first_key == -1) && PyErr_Occurred()) {
        return -1;
    }
    if ((arity > 0 ? argc != arity : argc < -arity) || first_key < 0 || first_key >= argc
        || first_key >= KEYED_ARGS) {
        return 0;
    }
    *fan = PyTuple_GET_ITEM(entry, 2);
    *data = corenet_frame_bytes(whole, s, n, pos, stop);
    if (*fan == Py_None) {
        *key = PyBytes_FromStringAndSize(s + marks[2 * first_key],
                                         marks[2 * first_key + 1] - marks[2 * first_key]);
    }
    else {
        *key = collect_args(s, pos, first_key, argc);
    }
    if (*data == NULL || *key == NULL) {
        Py_CLEAR(*data);
        Py_CLEAR(*key);
        return -1;
    }
    *end = stop;
    return 1;
}

static PyObject *
scan_keyed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    byte_source src;
    Py_ssize_t pos, end = 0;
    long long max_bulk;
    PyObject *data = NULL, *key = NULL, *fan = NULL, *end_obj, *result;
    int found;

    (void)module;
    if (!corenet_arity_ok("scan_keyed", nargs, 4)) {
        return NULL;
    }
    if (!PyDict_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "scan_keyed: table must be a dict");
        return NULL;
    }
    if (offset_and_limit(args[1], args[2], &pos, &max_bulk) < 0) {
        return NULL;
    }
    if (pos < 0 || source_get(args[0], &src) < 0) {
        Py_RETURN_NONE;
    }
    found = keyed_at(args[0], src.view.buf, src.view.len, pos, max_bulk, args[3], &data, &key,
                     &fan, &end);
    source_release(&src);
    if (found <= 0) {
        if (found < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    end_obj = PyLong_FromSsize_t(end);
    if (end_obj == NULL) {
        Py_DECREF(data);
        Py_DECREF(key);
        return NULL;
    }
    result = PyTuple_Pack(4, data, end_obj, key, fan);
    Py_DECREF(data);
    Py_DECREF(end_obj);
    Py_DECREF(key);
    return result;
}

/* Start a batch (scan_keyed_many, split_replies) over buf from pos: 1 with
 * *limit read from limit_obj, *frames a new empty list and src holding buf's
 * bytes; 0 with *result the
 * answer for a buffer that cannot be read, ([], pos); -1 with an exception. */
static int
batch_open(PyObject *buf, Py_ssize_t pos, PyObject *limit_obj, Py_ssize_t *limit,
           byte_source *src, PyObject **frames, PyObject **result)
{
    if (corenet_ssize_arg(limit_obj, limit) < 0) {
        return -1;
    }
    *frames = PyList_New(0);
    if (*frames == NULL) {
        return -1;
    }
    if (pos < 0 || source_get(buf, src) < 0) {
        *result = corenet_batch_result(*frames, pos);
        return *result == NULL ? -1 : 0;
    }
    return 1;
}

/* End a batch: (frames, pos) when ok, else NULL (the exception is set). */
static PyObject *
batch_close(byte_source *src, PyObject *frames, Py_ssize_t pos, int ok)
{
    PyObject *result = ok ? Py_BuildValue("(On)", frames, pos) : NULL;
    source_release(src);
    Py_DECREF(frames);
    return result;
}

/* scan_keyed over a pipeline: the requests from buf[pos] on that
 * scan_keyed answers for, each made by make(data, end, key) or, for a
 * fan-out command with fewer than max_keys keys, by
 * make_fanout(data, end, keys, fan); at most limit of them.  Returns
 * (requests, end of the last one, or pos): the general path goes on there. */
static PyObject *
scan_keyed_many(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    byte_source src;
    Py_ssize_t pos, limit, max_keys;
    long long max_bulk;
    PyObject *table, *make, *make_fanout, *frames, *result = NULL;

    (void)module;
    if (!corenet_arity_ok("scan_keyed_many", nargs, 8)) {
        return NULL;
    }
    table = args[3];
    make = args[5];
    make_fanout = args[6];
    if (!PyDict_CheckExact(table)) {
        PyErr_SetString(PyExc_TypeError, "scan_keyed_many: table must be a dict");
        return NULL;
    }
    if (offset_and_limit(args[1], args[2], &pos, &max_bulk) < 0) {
        return NULL;
    }
    if (corenet_ssize_arg(args[7], &max_keys) < 0
        || batch_open(args[0], pos, args[4], &limit, &src, &frames, &result) <= 0) {
        return result; /* NULL after an error */
    }
    while (PyList_GET_SIZE(frames) < limit) {
        PyObject *data = NULL, *key = NULL, *fan = NULL, *end_obj, *frame;
        Py_ssize_t end = 0;
        int found = keyed_at(args[0], src.view.buf, src.view.len, pos, max_bulk, table, &data,
                             &key, &fan, &end);
        if (found < 0) {
            return batch_close(&src, frames, pos, 0);
        }
        if (found == 0) {
            break;
        }
        if (fan != Py_None && PyList_GET_SIZE(key) >= max_keys) {
            Py_DECREF(data);
            Py_DECREF(key);
            break; /* the general path refuses it */
        }
        end_obj = PyLong_FromSsize_t(end);
        if (end_obj == NULL) {
            frame = NULL;
        }
        else if (fan == Py_None) {
            PyObject *call[3] = {data, end_obj, key};
            frame = PyObject_Vectorcall(make, call, 3, NULL);
        }
        else {
            PyObject *call[4] = {data, end_obj, key, fan};
            frame = PyObject_Vectorcall(make_fanout, call, 4, NULL);
        }
        Py_DECREF(data);
        Py_DECREF(key);
        Py_XDECREF(end_obj);
        if (corenet_list_append_new(frames, frame) < 0) {
            return batch_close(&src, frames, pos, 0);
        }
        pos = end;
    }
    return batch_close(&src, frames, pos, 1);
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
        if (!CORENET_IS_DIGIT(s[a])) {
            return -1;
        }
        /* No overflow: v <= (SAT_MAX - 9) / 10 before the step. */
        v = v > (SAT_MAX - 9) / 10 ? SAT_MAX : v * 10 + (s[a] - '0');
    }
    *out = v;
    return 0;
}

/* Walk the elements of a reply from s[*p], *owed of them still to come,
 * stopping at the first one that is incomplete or malformed: *p is then its
 * start and *owed counts it.  Returns 0 when none is owed any more, -1 when
 * stopped at an incomplete element, -2 at a malformed one. */
static int
reply_walk(const char *s, Py_ssize_t n, Py_ssize_t *p_io, long long *owed_io)
{
    Py_ssize_t p = *p_io;
    long long owed = *owed_io;
    int status = 0;

    while (owed) {
        long long len;
        Py_ssize_t next;
        Py_ssize_t nl;
        if (p >= n || (nl = find_crlf(s, p, n)) < 0) {
            status = -1;
            break;
        }
        switch (s[p]) {
        case '+': case '-': case ':': case '_': case ',': case '#': case '(':
            next = nl + 2;
            owed--;
            break;
        case '$': case '=': case '!':
            if (reply_length(s, p + 1, nl, &len) < 0) {
                status = -2;
                goto stop;
            }
            if (len < 0) {
                next = nl + 2;
            } else {
                if (len > (long long)(n - nl) - 4) {
                    status = -1;
                    goto stop;
                }
                next = nl + 4 + (Py_ssize_t)len;
                if (s[next - 2] != '\r' || s[next - 1] != '\n') {
                    status = -2;
                    goto stop;
                }
            }
            owed--;
            break;
        case '*': case '~': case '>': case '%': case '|':
            if (reply_length(s, p + 1, nl, &len) < 0) {
                status = -2;
                goto stop;
            }
            owed--;
            if (len > 0) {
                owed += (s[p] == '%' || s[p] == '|') ? 2 * len : len;
            }
            if (s[p] == '|') {
                owed += 1; /* an attribute decorates the value after it */
            }
            if (owed > SAT_MAX) {
                owed = SAT_MAX;
            }
            next = nl + 2;
            break;
        default:
            status = -2;
            goto stop;
        }
        p = next;
    }
stop:
    *p_io = p;
    *owed_io = owed;
    return status;
}

static Py_ssize_t
reply_scan(const char *s, Py_ssize_t n, Py_ssize_t pos)
{
    long long owed = 1;
    int status;

    if (pos >= n) {
        return -1;
    }
    status = reply_walk(s, n, &pos, &owed);
    return status == 0 ? pos : status;
}

static PyObject *
reply_resume(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    byte_source src;
    Py_ssize_t p;
    long long owed;

    (void)module;
    if (!corenet_arity_ok("reply_resume", nargs, 3) || corenet_ssize_arg(args[1], &p) < 0) {
        return NULL;
    }
    owed = PyLong_AsLongLong(args[2]);
    if (owed == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (p >= 0 && owed > 0 && source_get(args[0], &src) == 0) {
        if (owed > SAT_MAX) {
            owed = SAT_MAX;
        }
        (void)reply_walk(src.view.buf, src.view.len, &p, &owed);
        source_release(&src);
    }
    return Py_BuildValue("(nL)", p, owed);
}

static PyObject *
reply_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    byte_source src;
    Py_ssize_t pos, end;

    (void)module;
    if (!corenet_arity_ok("reply_end", nargs, 2)) {
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

/* reply_end over a pipeline: (the complete replies from buf[pos] on, as
 * bytes, at most limit of them; the end of the last one, or pos).  Stops at
 * the first incomplete or malformed reply, where ReplyParser.parse goes on. */
static PyObject *
split_replies(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    byte_source src;
    Py_ssize_t pos, limit, n;
    const char *s;
    PyObject *frames, *result = NULL;

    (void)module;
    if (!corenet_arity_ok("split_replies", nargs, 3)) {
        return NULL;
    }
    if (corenet_ssize_arg(args[1], &pos) < 0
        || batch_open(args[0], pos, args[2], &limit, &src, &frames, &result) <= 0) {
        return result; /* NULL after an error */
    }
    s = src.view.buf;
    n = src.view.len;
    while (PyList_GET_SIZE(frames) < limit) {
        Py_ssize_t end = reply_scan(s, n, pos);
        if (end < 0) {
            break;
        }
        if (corenet_list_append_new(frames, corenet_frame_bytes(args[0], s, n, pos, end)) < 0) {
            return batch_close(&src, frames, pos, 0);
        }
        pos = end;
    }
    return batch_close(&src, frames, pos, 1);
}

static PyObject *
split_array(PyObject *module, PyObject *arg)
{
    byte_source src;
    const char *s;
    Py_ssize_t n, nl, p;
    long long count;
    PyObject *list = NULL;

    (void)module;
    if (source_get(arg, &src) < 0) {
        Py_RETURN_NONE;
    }
    s = src.view.buf;
    n = src.view.len;
    if (n < 1 || s[0] != '*' || (nl = find_crlf(s, 0, n)) < 0
        || reply_length(s, 1, nl, &count) < 0 || count < 0) {
        goto none;
    }
    p = nl + 2;
    /* Every element takes at least 3 bytes: a bound on the list's size. */
    if (count > (long long)(n - p) / 3) {
        goto none;
    }
    list = PyList_New((Py_ssize_t)count);
    if (list == NULL) {
        source_release(&src);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < (Py_ssize_t)count; i++) {
        Py_ssize_t end = reply_scan(s, n, p);
        PyObject *element;
        if (end < 0) {
            goto none;
        }
        element = PyBytes_FromStringAndSize(s + p, end - p);
        if (element == NULL) {
            Py_DECREF(list);
            source_release(&src);
            return NULL;
        }
        PyList_SET_ITEM(list, i, element);
        p = end;
    }
    if (p != n) {
        goto none;
    }
    source_release(&src);
    return list;

none:
    Py_XDECREF(list);
    source_release(&src);
    Py_RETURN_NONE;
}

/* ---- encoding --------------------------------------------------------- */

/* How many decimal digits n >= 0 takes. */
static Py_ssize_t
decimal_width(Py_ssize_t n)
{
    Py_ssize_t width = 1;
    while (n >= 10) {
        n /= 10;
        width++;
    }
    return width;
}

/* Write "<mark><n>\r\n" at out; return the bytes written (at most 24). */
static Py_ssize_t
put_header(char *out, char mark, Py_ssize_t n)
{
    char digits[20];
    Py_ssize_t len = 0, w = 0;

    do {
        digits[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    out[w++] = mark;
    while (len > 0) {
        out[w++] = digits[--len];
    }
    out[w++] = '\r';
    out[w++] = '\n';
    return w;
}

/* Point src at the bytes-like argument obj: 0, or -1 with TypeError set. */
static int
argument_get(PyObject *obj, byte_source *src)
{
    if (source_get(obj, src) < 0) {
        PyErr_Format(PyExc_TypeError, "encode_command expects bytes-like arguments, not '%.100s'",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

/* _resp.encode_command for any iterable of bytes-like arguments.  Two
 * passes, sizing then copying, so that a fragment of 200 000 keys needs no
 * table of buffer views (80 bytes per argument) and one exact allocation. */
static PyObject *
encode_command(PyObject *module, PyObject *arg)
{
    PyObject *seq, *result = NULL;
    Py_ssize_t count, size, w;
    byte_source src;
    char *out;

    (void)module;
    seq = PySequence_Fast(arg, "encode_command expects an iterable of bytes");
    if (seq == NULL) {
        return NULL;
    }
    count = PySequence_Fast_GET_SIZE(seq);
    size = 3 + decimal_width(count);
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t len;
        if (argument_get(PySequence_Fast_GET_ITEM(seq, i), &src) < 0) {
            goto done;
        }
        len = src.view.len;
        source_release(&src);
        if (len > PY_SSIZE_T_MAX - size - 48) {
            PyErr_NoMemory();
            goto done;
        }
        size += 3 + decimal_width(len) + len + 2;
    }
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        goto done;
    }
    out = PyBytes_AS_STRING(result);
    w = put_header(out, '*', count);
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t len;
        if (argument_get(PySequence_Fast_GET_ITEM(seq, i), &src) < 0) {
            Py_CLEAR(result);
            goto done;
        }
        len = src.view.len;
        /* Only an exporter that runs code could change its size in between. */
        if (3 + decimal_width(len) + len + 2 > size - w) {
            source_release(&src);
            PyErr_SetString(PyExc_RuntimeError, "encode_command: an argument changed size");
            Py_CLEAR(result);
            goto done;
        }
        w += put_header(out + w, '$', len);
        memcpy(out + w, src.view.buf, (size_t)len);
        source_release(&src);
        w += len;
        out[w++] = '\r';
        out[w++] = '\n';
    }
    if (w != size) {
        PyErr_SetString(PyExc_RuntimeError, "encode_command: an argument changed size");
        Py_CLEAR(result);
    }

done:
    Py_DECREF(seq);
    return result;
}

/* ---- merging ---------------------------------------------------------- */

/* Place the elements of replies[i] (one whole array reply each) at
 * slots[positions[i][j]]: 1 on success, 0 when the reply is not an array
 * of exactly that many elements, -1 with an exception set. */
static int
place_elements(const byte_source *src, PyObject *where, corenet_span *slots, Py_ssize_t count)
{
    const char *s = src->view.buf;
    Py_ssize_t n = src->view.len, nl, p;
    long long elements;
    Py_buffer pv;
    const unsigned int *pos;
    Py_ssize_t npos;
    int placed = 0;

    if (corenet_positions_get("merge_arrays", where, &pv) < 0) {
        return -1;
    }
    pos = pv.buf;
    npos = pv.len / pv.itemsize;
    if (n < 1 || s[0] != '*' || (nl = find_crlf(s, 0, n)) < 0
        || reply_length(s, 1, nl, &elements) < 0 || elements != (long long)npos) {
        goto done;
    }
    p = nl + 2;
    for (Py_ssize_t j = 0; j < npos; j++) {
        Py_ssize_t end = reply_scan(s, n, p);
        if (end < 0) {
            goto done;
        }
        if ((Py_ssize_t)pos[j] >= count) {
            PyErr_SetString(PyExc_ValueError, "merge_arrays: a position is out of range");
            placed = -1;
            goto done;
        }
        slots[pos[j]].start = s + p;
        slots[pos[j]].len = end - p;
        p = end;
    }
    placed = p == n;

done:
    PyBuffer_Release(&pv);
    return placed;
}

/* _fanout._merge_arrays_pure: one array reply of count elements, element
 * positions[i][j] being the j-th element of replies[i]; or the index of the
 * first reply that is not an array of len(positions[i]) elements.  The
 * elements are copied once, from the replies into the result. */
static PyObject *
merge_arrays(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *replies, *positions, *result = NULL;
    Py_ssize_t count, parts, got = 0, failed = -1, size;
    byte_source *srcs = NULL;
    corenet_span *slots = NULL;

    (void)module;
    if (!corenet_arity_ok("merge_arrays", nargs, 3) || corenet_ssize_arg(args[0], &count) < 0) {
        return NULL;
    }
    replies = args[1];
    positions = args[2];
    if (count < 0 || !PyList_Check(replies) || !PyList_Check(positions)
        || PyList_GET_SIZE(replies) != PyList_GET_SIZE(positions)) {
        PyErr_SetString(PyExc_TypeError,
                        "merge_arrays expects a count and two lists of one length");
        return NULL;
    }
    parts = PyList_GET_SIZE(replies);
    srcs = PyMem_Calloc(parts ? (size_t)parts : 1, sizeof(byte_source));
    slots = PyMem_Calloc(count ? (size_t)count : 1, sizeof(corenet_span));
    if (srcs == NULL || slots == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; got < parts; got++) {
        int placed;
        if (source_get(PyList_GET_ITEM(replies, got), &srcs[got]) < 0) {
            failed = got;
            break;
        }
        placed = place_elements(&srcs[got], PyList_GET_ITEM(positions, got), slots, count);
        if (placed < 0) {
            got++;
            goto done;
        }
        if (placed == 0) {
            failed = got++;
            break;
        }
    }
    if (failed >= 0) {
        result = PyLong_FromSsize_t(failed);
        goto done;
    }
    size = 3 + decimal_width(count);
    for (Py_ssize_t i = 0; i < count; i++) {
        size += slots[i].len;
    }
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        goto done;
    }
    {
        char *out = PyBytes_AS_STRING(result);
        Py_ssize_t w = put_header(out, '*', count);
        for (Py_ssize_t i = 0; i < count; i++) {
            memcpy(out + w, slots[i].start, (size_t)slots[i].len);
            w += slots[i].len;
        }
        assert(w == size);
    }

done:
    for (Py_ssize_t i = 0; i < got; i++) {
        source_release(&srcs[i]);
    }
    PyMem_Free(srcs);
    PyMem_Free(slots);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"encode_command", encode_command, METH_O,
     PyDoc_STR("encode_command(args, /)\n--\n\n"
               "One RESP multibulk request of the bytes-like args.")},
    {"merge_arrays", (PyCFunction)(void (*)(void))merge_arrays, METH_FASTCALL,
     PyDoc_STR("merge_arrays(count, replies, positions, /)\n--\n\n"
               "One array reply of count elements placing replies[i]'s j-th "
               "element at positions[i][j], or the index of the first reply "
               "that is not an array of len(positions[i]) elements.")},
    {"split_replies", (PyCFunction)(void (*)(void))split_replies, METH_FASTCALL,
     PyDoc_STR("split_replies(buf, pos, limit, /)\n--\n\n"
               "(replies, end): the complete replies from buf[pos:] as bytes, up to "
               "the first incomplete or malformed one.")},
    {"split_array", split_array, METH_O,
     PyDoc_STR("split_array(reply, /)\n--\n\n"
               "The elements of the one complete array reply that is all of "
               "reply, or None.")},
    {"scan_multibulk", (PyCFunction)(void (*)(void))scan_multibulk, METH_FASTCALL,
     PyDoc_STR("scan_multibulk(buf, start, max_bulk_len, /)\n--\n\n"
               "(end, (s0, e0, ...)) of the complete plain multibulk request at "
               "buf[start:] (spans relative to start), or None.")},
    {"scan_keyed", (PyCFunction)(void (*)(void))scan_keyed, METH_FASTCALL,
     PyDoc_STR("scan_keyed(buf, pos, max_bulk_len, table, /)\n--\n\n"
               "(data, end, key or keys, fan) of the complete plain request at "
               "buf[pos:] whose lowercased name table maps to (arity, first_key, "
               "fan), or None.")},
    {"scan_keyed_many", (PyCFunction)(void (*)(void))scan_keyed_many, METH_FASTCALL,
     PyDoc_STR("scan_keyed_many(buf, pos, max_bulk_len, table, limit, make, make_fanout, "
               "max_keys, /)\n--\n\n"
               "(requests, end): scan_keyed over a pipeline, each request made by "
               "make(data, end, key) or make_fanout(data, end, keys, fan).")},
    {"reply_resume", (PyCFunction)(void (*)(void))reply_resume, METH_FASTCALL,
     PyDoc_STR("reply_resume(buf, p, owed, /)\n--\n\n"
               "(p, owed) after walking the complete elements of a reply from "
               "buf[p:], owed of them to come: stops at the first incomplete or "
               "malformed one.")},
    {"reply_end", (PyCFunction)(void (*)(void))reply_end, METH_FASTCALL,
     PyDoc_STR("reply_end(buf, pos, /)\n--\n\n"
               "End offset of the one reply at buf[pos:], -1 if incomplete, "
               "-2 if malformed.")},
    {NULL, NULL, 0, NULL},
};

CORENET_MODULE(_speedups, "corenet.protocols.redis._speedups",
               "Compiled Redis request and reply scans; _parser.py is the reference.",
               speedups_methods, )
