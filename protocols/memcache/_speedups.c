/*
 * corenet.protocols.memcache._speedups: the compiled twin of the memcache
 * reply parser's fast path.
 *
 *   reply_end(buf, pos) -> int
 *       _parser._fast_reply_end: the end of the reply at buf[pos:] when it
 *       is END, STORED, complete canonical VALUE blocks (no cas) then END,
 *       or a meta reply (a return code, flags without CR or LF, a complete
 *       VA block); 0 when the general path must decide.  The Python
 *       function is the reference; the tests compare the two on generated
 *       and mangled replies.
 *
 *   request_fast(buf, pos, max_value, line_max) -> (kind, end, data, key) | None
 *       The get/gets and storage half of _parser._fast_request: kind 0 a
 *       get of one key, 1 of several (key is then the list), 2 a storage
 *       request, 3 one with noreply.  None leaves the decision to
 *       _fast_request (which also takes the meta commands), so only what
 *       this accepts must match it exactly.
 *
 *   request_many(buf, pos, max_value, line_max, limit, make, make_fanout,
 *                make_noreply) -> (frames, end)
 *   split_replies(buf, pos, limit) -> (replies, end)
 *       request_fast and reply_end over a whole read: the framer's batch
 *       (corenet.framing), one call per read, up to the first request or
 *       reply the Python parser must look at.
 *
 *   get_wire(name, keys, positions) -> bytes
 *       _fanout._get_wire_pure: one fragment's get request.
 *
 *   merge_values(keys, replies, positions) -> bytes | int
 *       _fanout._merge_values_pure: a split multi-get's reply, each VALUE
 *       block copied once from its fragment's reply into place.
 *
 * buf is bytes (or any object with the buffer protocol); anything else, or
 * a negative offset, gives 0 / None.  No module state.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_cmodule.h"

#include <string.h>


static int
starts(const char *s, Py_ssize_t n, Py_ssize_t p, const char *word, Py_ssize_t len)
{
    return n - p >= len && memcmp(s + p, word, (size_t)len) == 0;
}

/* 1..max_digits ASCII digits at s[*p], as \d{1,max} then what follows must
 * match: the value, or -1 (no digits).  *p moves past them. */
static long long
digits(const char *s, Py_ssize_t n, Py_ssize_t *p, int max_digits)
{
    long long value = 0;
    int count = 0;
    while (*p < n && count < max_digits && CORENET_IS_DIGIT(s[*p])) {
        value = value * 10 + (s[*p] - '0');
        (*p)++;
        count++;
    }
    return count ? value : -1;
}

/* The end of a data block of size bytes starting at p, ended by CRLF, or 0. */
static Py_ssize_t
block_end(const char *s, Py_ssize_t n, Py_ssize_t p, long long size)
{
    Py_ssize_t end = p + (Py_ssize_t)size + 2;
    if (end > n || s[end - 2] != '\r' || s[end - 1] != '\n') {
        return 0;
    }
    return end;
}

/* One canonical VALUE block at s[p:]: its end, or 0. */
static Py_ssize_t
value_block(const char *s, Py_ssize_t n, Py_ssize_t p)
{
    Py_ssize_t key = 0;
    long long size;
    if (!starts(s, n, p, "VALUE ", 6)) {
        return 0;
    }
    p += 6;
    while (p < n && key < 250 && s[p] != ' ' && s[p] != '\r' && s[p] != '\n') {
        p++;
        key++;
    }
    if (key == 0 || p >= n || s[p] != ' ') {
        return 0;
    }
    p++;
    if (digits(s, n, &p, 9) < 0 || p >= n || s[p] != ' ') {
        return 0;
    }
    p++;
    size = digits(s, n, &p, 9);
    if (size < 0 || !starts(s, n, p, "\r\n", 2)) {
        return 0;
    }
    return block_end(s, n, p + 2, size);
}

/* A meta reply at s[p:]: its end, or 0. */
static Py_ssize_t
meta_reply(const char *s, Py_ssize_t n, Py_ssize_t p)
{
    static const char *codes[] = {"HD", "EN", "NF", "NS", "EX", "MN"};
    long long size = -1;
    Py_ssize_t flags = 0;
    int known = 0;

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (starts(s, n, p, codes[i], 2)) {
            known = 1;
            p += 2;
            break;
        }
    }
    if (!known) {
        if (!starts(s, n, p, "VA ", 3)) {
            return 0;
        }
        p += 3;
        size = digits(s, n, &p, 9);
        if (size < 0) {
            return 0;
        }
    }
    if (p < n && s[p] == ' ') {
        Py_ssize_t q = p + 1;
        while (q < n && flags < 4096 && s[q] != '\r' && s[q] != '\n') {
            q++;
            flags++;
        }
        if (starts(s, n, q, "\r\n", 2)) {
            p = q;
        }
        /* else the optional part does not match and CRLF must follow the code */
    }
    if (!starts(s, n, p, "\r\n", 2)) {
        return 0;
    }
    p += 2;
    return size < 0 ? p : block_end(s, n, p, size);
}

static Py_ssize_t
fast_reply_end(const char *s, Py_ssize_t n, Py_ssize_t pos)
{
    Py_ssize_t p = pos, end;
    if (starts(s, n, pos, "END\r\n", 5)) {
        return pos + 5;
    }
    if (starts(s, n, pos, "STORED\r\n", 8)) {
        return pos + 8;
    }
    while ((end = value_block(s, n, p)) > 0) {
        if (starts(s, n, end, "END\r\n", 5)) {
            return end + 5;
        }
        p = end;
    }
    if (p != pos) {
        return 0;
    }
    return meta_reply(s, n, pos);
}

/* ---- requests ---------------------------------------------------------- */

enum {
    FAILED = -2, /* an exception is set */
    DECLINED = -1, /* the Python fast path or the general path decides */
    FAST_GET = 0,
    FAST_GET_MANY = 1,
    FAST_STORE = 2,
    FAST_STORE_NOREPLY = 3,
};

/* A key as _FAST_GET/_FAST_STORE take it: 1..250 bytes, none of " \0\r\n".
 * Its end, or -1. */
static Py_ssize_t
key_end(const char *s, Py_ssize_t n, Py_ssize_t p)
{
    Py_ssize_t start = p;
    while (p < n && p - start < 250 && s[p] != ' ' && s[p] != '\0' && s[p] != '\r'
           && s[p] != '\n') {
        p++;
    }
    return p > start ? p : -1;
}

/* get/gets: FAST_GET or FAST_GET_MANY with *end, *data and *keys (the key,
 * or the list of keys) set to new references; DECLINED; or FAILED. */
static int
fast_get(PyObject *buf, const char *s, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t line_max,
         Py_ssize_t *end_out, PyObject **data_out, PyObject **keys_out)
{
    Py_ssize_t p = pos + 3, first = -1, first_end = -1, end = -1, count = 0;
    PyObject *keys, *data;

    if (p < n && s[p] == 's') {
        p++;
    }
    if (p >= n || s[p] != ' ') {
        return DECLINED;
    }
    p++;
    for (;;) {
        Py_ssize_t k = key_end(s, n, p);
        if (k < 0) {
            return DECLINED;
        }
        if (count++ == 0) {
            first = p;
            first_end = k;
        }
        if (k < n && s[k] == ' ') {
            p = k + 1;
            continue;
        }
        if (!starts(s, n, k, "\r\n", 2)) {
            return DECLINED;
        }
        end = k + 2;
        break;
    }
    if (end - pos >= line_max) {
        return DECLINED;
    }
    data = corenet_frame_bytes(buf, s, n, pos, end);
    if (data == NULL) {
        return FAILED;
    }
    if (count == 1) {
        keys = PyBytes_FromStringAndSize(s + first, first_end - first);
    }
    else {
        keys = PyList_New(count);
        for (Py_ssize_t i = 0, q = first; keys != NULL && i < count; i++) {
            Py_ssize_t k = key_end(s, n, q);
            PyObject *key = PyBytes_FromStringAndSize(s + q, k - q);
            if (key == NULL) {
                Py_CLEAR(keys);
                break;
            }
            PyList_SET_ITEM(keys, i, key);
            q = k + 1;
        }
    }
    if (keys == NULL) {
        Py_DECREF(data);
        return FAILED;
    }
    *end_out = end;
    *data_out = data;
    *keys_out = keys;
    return count == 1 ? FAST_GET : FAST_GET_MANY;
}

/* set/add/replace/append/prepend with the whole data block: FAST_STORE or
 * FAST_STORE_NOREPLY with *end, *data and *key set (new references);
 * DECLINED; or FAILED. */
static int
fast_store(PyObject *buf, const char *s, Py_ssize_t n, Py_ssize_t pos, long long max_value,
           Py_ssize_t *end_out, PyObject **data_out, PyObject **key_out)
{
    static const char *names[] = {"set ", "add ", "replace ", "append ", "prepend "};
    Py_ssize_t p = -1, key, k, end;
    long long size;
    int noreply = 0;
    PyObject *data, *key_obj;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        Py_ssize_t len = (Py_ssize_t)strlen(names[i]);
        if (starts(s, n, pos, names[i], len)) {
            p = pos + len;
            break;
        }
    }
    if (p < 0 || (k = key_end(s, n, p)) < 0 || k >= n || s[k] != ' ') {
        return DECLINED;
    }
    key = p;
    p = k + 1;
    if (digits(s, n, &p, 9) < 0 || p >= n || s[p] != ' ') {
        return DECLINED;
    }
    p++;
    if (p < n && s[p] == '-') {
        p++;
    }
    if (digits(s, n, &p, 9) < 0 || p >= n || s[p] != ' ') {
        return DECLINED;
    }
    p++;
    size = digits(s, n, &p, 9);
    if (size < 0) {
        return DECLINED;
    }
    if (starts(s, n, p, " noreply\r\n", 10)) {
        noreply = 1;
        p += 8;
    }
    if (!starts(s, n, p, "\r\n", 2) || size > max_value) {
        return DECLINED;
    }
    end = block_end(s, n, p + 2, size);
    if (end == 0) {
        return DECLINED;
    }
    data = corenet_frame_bytes(buf, s, n, pos, end);
    key_obj = data == NULL ? NULL : PyBytes_FromStringAndSize(s + key, k - key);
    if (key_obj == NULL) {
        Py_XDECREF(data);
        return FAILED;
    }
    *end_out = end;
    *data_out = data;
    *key_out = key_obj;
    return noreply ? FAST_STORE_NOREPLY : FAST_STORE;
}

/* The request at s[pos:] if the fast path takes it: see fast_get and
 * fast_store. */
static int
fast_request(PyObject *buf, const char *s, Py_ssize_t n, Py_ssize_t pos, long long max_value,
             Py_ssize_t line_max, Py_ssize_t *end, PyObject **data, PyObject **key)
{
    if (starts(s, n, pos, "get", 3)) {
        return fast_get(buf, s, n, pos, line_max, end, data, key);
    }
    return fast_store(buf, s, n, pos, max_value, end, data, key);
}

/* The arguments every request scan takes: buf's bytes in *view (release it),
 * pos, max_value and line_max.  1, 0 when buf cannot be read or pos is
 * negative (nothing to scan), -1 with an exception set. */
static int
request_args(PyObject *const *args, Py_buffer *view, Py_ssize_t *pos, long long *max_value,
             Py_ssize_t *line_max)
{
    if (corenet_ssize_arg(args[1], pos) < 0 || corenet_ssize_arg(args[3], line_max) < 0) {
        return -1;
    }
    *max_value = PyLong_AsLongLong(args[2]);
    if (*max_value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (*pos < 0 || PyObject_GetBuffer(args[0], view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}


static PyObject *
request_fast(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, line_max, end = 0;
    long long max_value;
    PyObject *data = NULL, *key = NULL;
    int kind, ready;

    (void)module;
    if (!corenet_arity_ok("request_fast", nargs, 4)) {
        return NULL;
    }
    ready = request_args(args, &view, &pos, &max_value, &line_max);
    if (ready <= 0) {
        return ready < 0 ? NULL : Py_NewRef(Py_None);
    }
    kind = fast_request(args[0], view.buf, view.len, pos, max_value, line_max, &end, &data, &key);
    PyBuffer_Release(&view);
    if (kind == FAILED) {
        return NULL;
    }
    if (kind == DECLINED) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(inNN)", kind, end, data, key);
}

/* End a batch over view: (frames, pos) when ok, else NULL (the exception is
 * set); releases view and the reference to frames either way. */
static PyObject *
batch_end(Py_buffer *view, PyObject *frames, Py_ssize_t pos, int ok)
{
    PyBuffer_Release(view);
    if (!ok) {
        Py_DECREF(frames);
        return NULL;
    }
    return corenet_batch_result(frames, pos);
}

/* request_fast over a pipeline: each request it takes made into a frame,
 * by make(data, end, key) for a get of one key or a storage request,
 * make_fanout(data, end, keys, b"get" or b"gets") for a get of several,
 * make_noreply(data, end, key) for a storage request with noreply; at most
 * limit of them.  (frames, where the first it declines starts). */
static PyObject *
request_many(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, line_max, limit;
    long long max_value;
    PyObject *frames;
    int ready;

    (void)module;
    if (!corenet_arity_ok("request_many", nargs, 8) || corenet_ssize_arg(args[4], &limit) < 0) {
        return NULL;
    }
    ready = request_args(args, &view, &pos, &max_value, &line_max);
    if (ready < 0) {
        return NULL;
    }
    frames = PyList_New(0);
    if (frames == NULL || ready == 0) {
        return frames == NULL ? NULL : corenet_batch_result(frames, pos);
    }
    while (PyList_GET_SIZE(frames) < limit) {
        PyObject *data = NULL, *key = NULL, *end_obj, *frame = NULL;
        Py_ssize_t end = 0;
        int kind = fast_request(args[0], view.buf, view.len, pos, max_value, line_max, &end,
                                &data, &key);
        if (kind == DECLINED || kind == FAILED) {
            return batch_end(&view, frames, pos, kind == DECLINED);
        }
        end_obj = PyLong_FromSsize_t(end);
        if (end_obj != NULL && kind == FAST_GET_MANY) {
            const char *s = view.buf;
            PyObject *name = PyBytes_FromStringAndSize(s + pos, s[pos + 3] == 's' ? 4 : 3);
            if (name != NULL) {
                PyObject *call[4] = {data, end_obj, key, name};
                frame = PyObject_Vectorcall(args[6], call, 4, NULL);
                Py_DECREF(name);
            }
        }
        else if (end_obj != NULL) {
            PyObject *call[3] = {data, end_obj, key};
            frame = PyObject_Vectorcall(kind == FAST_STORE_NOREPLY ? args[7] : args[5], call, 3,
                                        NULL);
        }
        Py_DECREF(data);
        Py_DECREF(key);
        Py_XDECREF(end_obj);
        if (corenet_list_append_new(frames, frame) < 0) {
            return batch_end(&view, frames, pos, 0);
        }
        pos = end;
    }
    return batch_end(&view, frames, pos, 1);
}

PyDoc_STRVAR(request_many_doc,
             "request_many(buf, pos, max_value, line_max, limit, make, make_fanout, "
             "make_noreply, /)\n--\n\n"
             "The requests from buf[pos] on that request_fast takes, made into frames, "
             "and where the first it declines starts.");

PyDoc_STRVAR(request_fast_doc, "request_fast(buf, pos, max_value, line_max, /)\n--\n\n"
                               "(kind, end, data, key or keys) of a canonical get/gets or "
                               "storage request at buf[pos:], or None.");

PyDoc_STRVAR(reply_end_doc, "reply_end(buf, pos, /)\n--\n\n"
                            "End of the common memcache reply at buf[pos:], or 0 when "
                            "the general path must decide.");

static PyObject *
reply_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, end;

    (void)module;
    if (!corenet_arity_ok("reply_end", nargs, 2) || corenet_ssize_arg(args[1], &pos) < 0) {
        return NULL;
    }
    if (pos < 0) {
        return PyLong_FromLong(0);
    }
    if (PyBytes_Check(args[0])) {
        return PyLong_FromSsize_t(
            fast_reply_end(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), pos));
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return PyLong_FromLong(0);
    }
    end = fast_reply_end(view.buf, view.len, pos);
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(end);
}

/* reply_end over a read: the complete replies it takes, as bytes, up to
 * limit of them, and where the first it leaves to the general path starts. */
static PyObject *
split_replies(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, limit;
    PyObject *frames;

    (void)module;
    if (!corenet_arity_ok("split_replies", nargs, 3) || corenet_ssize_arg(args[1], &pos) < 0
        || corenet_ssize_arg(args[2], &limit) < 0) {
        return NULL;
    }
    frames = PyList_New(0);
    if (frames == NULL) {
        return NULL;
    }
    if (pos < 0 || PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return corenet_batch_result(frames, pos);
    }
    while (PyList_GET_SIZE(frames) < limit) {
        const char *s = view.buf;
        Py_ssize_t end = fast_reply_end(s, view.len, pos);
        if (end == 0) {
            break;
        }
        if (corenet_list_append_new(frames, corenet_frame_bytes(args[0], s, view.len, pos, end))
            < 0) {
            return batch_end(&view, frames, pos, 0);
        }
        pos = end;
    }
    return batch_end(&view, frames, pos, 1);
}

PyDoc_STRVAR(split_replies_doc, "split_replies(buf, pos, limit, /)\n--\n\n"
                                "The replies from buf[pos] on that reply_end takes, as bytes, "
                                "and where the first it leaves starts.");

/* ---- multi-get merge ------------------------------------------------------ */

/* One VALUE block at s[p:n] of a validated reply: its end, with its key at
 * *key (*key_len bytes); 0 when it is not one (the pure merge decides). */
static Py_ssize_t
value_block_key(const char *s, Py_ssize_t n, Py_ssize_t p, const char **key, Py_ssize_t *key_len)
{
    Py_ssize_t q, end;
    long long size;
    if (!starts(s, n, p, "VALUE ", 6)) {
        return 0;
    }
    q = p + 6;
    *key = s + q;
    while (q < n && s[q] != ' ' && s[q] != '\r') {
        q++;
    }
    *key_len = q - (p + 6);
    if (*key_len == 0 || q >= n || s[q] != ' ') {
        return 0;
    }
    q++;
    while (q < n && s[q] != ' ' && s[q] != '\r') { /* flags */
        q++;
    }
    if (q >= n || s[q] != ' ') {
        return 0;
    }
    q++;
    size = digits(s, n, &q, 18);
    if (size < 0) {
        return 0;
    }
    if (q < n && s[q] == ' ') { /* the cas unique of a gets */
        Py_ssize_t cas = ++q;
        while (q < n && q - cas < 20 && CORENET_IS_DIGIT(s[q])) {
            q++;
        }
        if (q == cas) {
            return 0;
        }
    }
    if (!starts(s, n, q, "\r\n", 2)) {
        return 0;
    }
    end = block_end(s, n, q + 2, size);
    return end;
}

/* Place the VALUE blocks of reply s[0:n] at the slots of the keys at
 * positions pos[0:npos], in order, skipping the keys it misses: 1, or 0
 * when the reply is not VALUE blocks then END. */
static int
place_values(const char *s, Py_ssize_t n, PyObject *keys, const unsigned int *pos,
             Py_ssize_t npos, corenet_span *slots)
{
    Py_ssize_t p = 0, j = 0, nkeys = PyList_GET_SIZE(keys);
    while (p < n - 5) {
        const char *key;
        Py_ssize_t key_len, end = value_block_key(s, n, p, &key, &key_len);
        if (end == 0) {
            return 0;
        }
        for (; j < npos; j++) {
            PyObject *want;
            if ((Py_ssize_t)pos[j] >= nkeys) {
                return 0;
            }
            want = PyList_GET_ITEM(keys, pos[j]);
            if (!PyBytes_CheckExact(want)) {
                return 0;
            }
            if (PyBytes_GET_SIZE(want) == key_len
                && memcmp(PyBytes_AS_STRING(want), key, (size_t)key_len) == 0) {
                break;
            }
        }
        if (j == npos) {
            /* A key nobody asked for: the rest is dropped, as the pure merge does. */
            return memcmp(s + n - 5, "END\r\n", 5) == 0;
        }
        slots[pos[j]].start = s + p;
        slots[pos[j]].len = end - p;
        j++;
        p = end;
    }
    return p == n - 5 && memcmp(s + p, "END\r\n", 5) == 0;
}

/* _fanout._merge_values_pure: the multi-get's reply from its fragments'
 * replies (each block copied once into it); the index of the first reply
 * that is neither END nor VALUE blocks (the whole request's reply); or -1
 * for anything this does not take (the pure merge decides). */
static PyObject *
merge_values(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *keys, *replies, *positions, *result = NULL;
    Py_ssize_t count, parts, size = 5, verdict = -2;
    corenet_span *slots;

    (void)module;
    if (!corenet_arity_ok("merge_values", nargs, 3)) {
        return NULL;
    }
    keys = args[0];
    replies = args[1];
    positions = args[2];
    if (!PyList_Check(keys) || !PyList_Check(replies) || !PyList_Check(positions)
        || PyList_GET_SIZE(replies) != PyList_GET_SIZE(positions)) {
        PyErr_SetString(PyExc_TypeError, "merge_values expects three lists");
        return NULL;
    }
    count = PyList_GET_SIZE(keys);
    parts = PyList_GET_SIZE(replies);
    for (Py_ssize_t i = 0; i < parts; i++) {
        PyObject *reply = PyList_GET_ITEM(replies, i);
        if (!PyBytes_CheckExact(reply)) {
            return PyLong_FromLong(-1);
        }
        if (!starts(PyBytes_AS_STRING(reply), PyBytes_GET_SIZE(reply), 0, "VALUE ", 6)
            && !(PyBytes_GET_SIZE(reply) == 5 && memcmp(PyBytes_AS_STRING(reply), "END\r\n", 5) == 0)) {
            return PyLong_FromSsize_t(i);
        }
    }
    slots = PyMem_Calloc(count ? (size_t)count : 1, sizeof(corenet_span));
    if (slots == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < parts && verdict == -2; i++) {
        PyObject *reply = PyList_GET_ITEM(replies, i);
        Py_buffer pv;
        int placed;
        if (corenet_positions_get("merge_values", PyList_GET_ITEM(positions, i), &pv) < 0) {
            PyMem_Free(slots);
            return NULL;
        }
        placed = place_values(PyBytes_AS_STRING(reply), PyBytes_GET_SIZE(reply), keys, pv.buf,
                              pv.len / pv.itemsize, slots);
        PyBuffer_Release(&pv);
        if (!placed) {
            verdict = -1;
        }
    }
    if (verdict == -1) {
        PyMem_Free(slots);
        return PyLong_FromLong(-1);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        size += slots[i].len;
    }
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result != NULL) {
        char *out = PyBytes_AS_STRING(result);
        for (Py_ssize_t i = 0; i < count; i++) {
            if (slots[i].len) { /* a miss has no start */
                memcpy(out, slots[i].start, (size_t)slots[i].len);
                out += slots[i].len;
            }
        }
        memcpy(out, "END\r\n", 5);
    }
    PyMem_Free(slots);
    return result;
}

/* _fanout._get_wire_pure: name, then the keys at positions, each after a
 * space, then CRLF: one fragment's request, built in one allocation. */
static PyObject *
get_wire(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *name, *keys, *result = NULL;
    Py_buffer pv;
    const unsigned int *pos;
    Py_ssize_t npos, nkeys, size;

    (void)module;
    if (!corenet_arity_ok("get_wire", nargs, 3)) {
        return NULL;
    }
    name = args[0];
    keys = args[1];
    if (!PyBytes_Check(name) || !PyList_Check(keys)) {
        PyErr_SetString(PyExc_TypeError, "get_wire expects bytes and a list of bytes");
        return NULL;
    }
    if (corenet_positions_get("get_wire", args[2], &pv) < 0) {
        return NULL;
    }
    pos = pv.buf;
    npos = pv.len / pv.itemsize;
    nkeys = PyList_GET_SIZE(keys);
    size = PyBytes_GET_SIZE(name) + 2;
    for (Py_ssize_t j = 0; j < npos; j++) {
        PyObject *key = (Py_ssize_t)pos[j] < nkeys ? PyList_GET_ITEM(keys, pos[j]) : NULL;
        if (key == NULL || !PyBytes_Check(key)) {
            PyErr_SetString(PyExc_ValueError, "get_wire: a position is not a key's");
            goto done;
        }
        size += 1 + PyBytes_GET_SIZE(key);
    }
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result != NULL) {
        char *out = PyBytes_AS_STRING(result);
        memcpy(out, PyBytes_AS_STRING(name), (size_t)PyBytes_GET_SIZE(name));
        out += PyBytes_GET_SIZE(name);
        for (Py_ssize_t j = 0; j < npos; j++) {
            PyObject *key = PyList_GET_ITEM(keys, pos[j]);
            *out++ = ' ';
            memcpy(out, PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
            out += PyBytes_GET_SIZE(key);
        }
        memcpy(out, "\r\n", 2);
    }

done:
    PyBuffer_Release(&pv);
    return result;
}

PyDoc_STRVAR(get_wire_doc, "get_wire(name, keys, positions, /)\n--\n\n"
                           "name, the keys at positions (each after a space), CRLF.");

PyDoc_STRVAR(merge_values_doc,
             "merge_values(keys, replies, positions, /)\n--\n\n"
             "The multi-get's reply from its fragments' replies, the index of the first "
             "reply that is neither END nor VALUE blocks, or -1 for the pure merge.");

static PyMethodDef speedups_methods[] = {
    {"reply_end", (PyCFunction)(void (*)(void))reply_end, METH_FASTCALL, reply_end_doc},
    {"split_replies", (PyCFunction)(void (*)(void))split_replies, METH_FASTCALL,
     split_replies_doc},
    {"request_fast", (PyCFunction)(void (*)(void))request_fast, METH_FASTCALL, request_fast_doc},
    {"request_many", (PyCFunction)(void (*)(void))request_many, METH_FASTCALL, request_many_doc},
    {"merge_values", (PyCFunction)(void (*)(void))merge_values, METH_FASTCALL, merge_values_doc},
    {"get_wire", (PyCFunction)(void (*)(void))get_wire, METH_FASTCALL, get_wire_doc},
    {NULL, NULL, 0, NULL},
};

CORENET_MODULE(_speedups, "corenet.protocols.memcache._speedups",
               "The memcache reply parser's fast path in C; _parser.py is the reference.",
               speedups_methods, )
