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

enum { FAST_GET = 0, FAST_GET_MANY = 1, FAST_STORE = 2, FAST_STORE_NOREPLY = 3 };

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

static PyObject *
data_of(PyObject *buf, const char *s, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t end)
{
    if (pos == 0 && end == n && PyBytes_CheckExact(buf)) {
        return Py_NewRef(buf);
    }
    return PyBytes_FromStringAndSize(s + pos, end - pos);
}

/* get/gets: (kind, end, data, key or keys), or None. */
static PyObject *
fast_get(PyObject *buf, const char *s, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t line_max)
{
    Py_ssize_t p = pos + 3, first = -1, first_end = -1, end = -1, count = 0;
    PyObject *keys, *data, *result;

    if (p < n && s[p] == 's') {
        p++;
    }
    if (p >= n || s[p] != ' ') {
        Py_RETURN_NONE;
    }
    p++;
    for (;;) {
        Py_ssize_t k = key_end(s, n, p);
        if (k < 0) {
            Py_RETURN_NONE;
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
            Py_RETURN_NONE;
        }
        end = k + 2;
        break;
    }
    if (end - pos >= line_max) {
        Py_RETURN_NONE;
    }
    data = data_of(buf, s, n, pos, end);
    if (data == NULL) {
        return NULL;
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
        return NULL;
    }
    result = Py_BuildValue("(inNN)", count == 1 ? FAST_GET : FAST_GET_MANY, end, data, keys);
    return result;
}

/* set/add/replace/append/prepend with the whole data block: (kind, end,
 * data, key), or None. */
static PyObject *
fast_store(PyObject *buf, const char *s, Py_ssize_t n, Py_ssize_t pos, long long max_value)
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
        Py_RETURN_NONE;
    }
    key = p;
    p = k + 1;
    if (digits(s, n, &p, 9) < 0 || p >= n || s[p] != ' ') {
        Py_RETURN_NONE;
    }
    p++;
    if (p < n && s[p] == '-') {
        p++;
    }
    if (digits(s, n, &p, 9) < 0 || p >= n || s[p] != ' ') {
        Py_RETURN_NONE;
    }
    p++;
    size = digits(s, n, &p, 9);
    if (size < 0) {
        Py_RETURN_NONE;
    }
    if (starts(s, n, p, " noreply\r\n", 10)) {
        noreply = 1;
        p += 8;
    }
    if (!starts(s, n, p, "\r\n", 2) || size > max_value) {
        Py_RETURN_NONE;
    }
    end = block_end(s, n, p + 2, size);
    if (end == 0) {
        Py_RETURN_NONE;
    }
    data = data_of(buf, s, n, pos, end);
    key_obj = data == NULL ? NULL : PyBytes_FromStringAndSize(s + key, k - key);
    if (key_obj == NULL) {
        Py_XDECREF(data);
        return NULL;
    }
    return Py_BuildValue("(inNN)", noreply ? FAST_STORE_NOREPLY : FAST_STORE, end, data, key_obj);
}

static PyObject *
request_fast(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, line_max;
    long long max_value;
    PyObject *result;

    (void)module;
    if (!corenet_arity_ok("request_fast", nargs, 4) || corenet_ssize_arg(args[1], &pos) < 0
        || corenet_ssize_arg(args[3], &line_max) < 0) {
        return NULL;
    }
    max_value = PyLong_AsLongLong(args[2]);
    if (max_value == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (pos < 0 || PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (starts(view.buf, view.len, pos, "get", 3)) {
        result = fast_get(args[0], view.buf, view.len, pos, line_max);
    }
    else {
        result = fast_store(args[0], view.buf, view.len, pos, max_value);
    }
    PyBuffer_Release(&view);
    return result;
}

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

static PyMethodDef speedups_methods[] = {
    {"reply_end", (PyCFunction)(void (*)(void))reply_end, METH_FASTCALL, reply_end_doc},
    {"request_fast", (PyCFunction)(void (*)(void))request_fast, METH_FASTCALL, request_fast_doc},
    {NULL, NULL, 0, NULL},
};

CORENET_MODULE(_speedups, "corenet.protocols.memcache._speedups",
               "The memcache reply parser's fast path in C; _parser.py is the reference.",
               speedups_methods, )
