/*
 * corenet._route: the compiled twin of the router's continuum lookup.
 *
 * corenet.routing composes, for a distribution that declares
 * bisect_table = (points, owners), the per-key function
 *
 *     index_of(key) = owners[bisect_left(points, hash_fn(key))] if key else
 *                     owners[bisect_left(points, 0)]
 *
 * in Python.  BisectRoute(hash_fn, points, owners) is the same function as a
 * callable object: the points are copied into a C array once per rebuild,
 * hash_fn is called through vectorcall, and the search compares machine
 * integers instead of Python ints.  many(keys) routes a list of keys in one
 * call, for multi-key requests, and group(servers, step) groups the
 * positions of the keys by server as routing.group_by_server does.  The
 * Python code stays the reference and the fallback;
 * tests/framework/test_routing.py checks both agree.
 *
 * Contract differences, all outside what a hash plugin may do: a hash value
 * that is not an int in [0, 2**64) raises (TypeError, OverflowError) instead
 * of being compared as a Python object.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_cmodule.h"
#include <structmember.h> /* T_PYSSIZET, READONLY before 3.12 */

#include <limits.h>

typedef struct {
    PyObject_HEAD
    PyObject *hash_fn;
    Py_ssize_t n;
    unsigned long long *points;
    PyObject **owners; /* n strong references */
    PyObject *empty;   /* the owner of hash value 0, for the empty key */
    vectorcallfunc vectorcall;
} BisectRoute;

/* Index of the first point >= value, as bisect_left. */
static Py_ssize_t
bisect(const BisectRoute *self, unsigned long long value)
{
    Py_ssize_t lo = 0, hi = self->n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (self->points[mid] < value) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo;
}

/* New reference to the owner of key, or NULL with an exception set. */
static PyObject *
route_one(BisectRoute *self, PyObject *key)
{
    PyObject *hashed;
    unsigned long long value;
    Py_ssize_t i;
    int truth = PyBytes_CheckExact(key) ? PyBytes_GET_SIZE(key) > 0 : PyObject_IsTrue(key);

    if (truth < 0) {
        return NULL;
    }
    if (!truth) {
        return Py_NewRef(self->empty);
    }
    hashed = PyObject_Vectorcall(self->hash_fn, &key, 1, NULL);
    if (hashed == NULL) {
        return NULL;
    }
    value = PyLong_AsUnsignedLongLong(hashed);
    Py_DECREF(hashed);
    if (value == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    i = bisect(self, value);
    if (i >= self->n) {
        PyErr_SetString(PyExc_IndexError, "hash value past the last continuum point");
        return NULL;
    }
    return Py_NewRef(self->owners[i]);
}

static PyObject *
route_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "BisectRoute takes exactly one argument, the key");
        return NULL;
    }
    return route_one((BisectRoute *)callable, args[0]);
}

static PyObject *
route_many(BisectRoute *self, PyObject *keys)
{
    PyObject *seq = PySequence_Fast(keys, "many() expects an iterable of keys");
    PyObject *out;
    Py_ssize_t n;

    if (seq == NULL) {
        return NULL;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    out = PyList_New(n);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *owner = route_one(self, PySequence_Fast_GET_ITEM(seq, i));
        if (owner == NULL) {
            Py_DECREF(out);
            Py_DECREF(seq);
            return NULL;
        }
        PyList_SET_ITEM(out, i, owner);
    }
    Py_DECREF(seq);
    return out;
}

static void
route_clear_arrays(BisectRoute *self)
{
    if (self->owners != NULL) {
        for (Py_ssize_t i = 0; i < self->n; i++) {
            Py_XDECREF(self->owners[i]);
        }
        PyMem_Free(self->owners);
        self->owners = NULL;
    }
    PyMem_Free(self->points);
    self->points = NULL;
    self->n = 0;
}

static PyObject *
route_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *hash_fn, *points, *owners;
    BisectRoute *self;
    Py_ssize_t n;
    static char *kwlist[] = {"hash_fn", "points", "owners", NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!O!:BisectRoute", kwlist, &hash_fn,
                                     &PyList_Type, &points, &PyList_Type, &owners)) {
        return NULL;
    }
    n = PyList_GET_SIZE(points);
    if (n == 0 || PyList_GET_SIZE(owners) != n) {
        PyErr_SetString(PyExc_ValueError,
                        "BisectRoute needs as many owners as points, and at least one");
        return NULL;
    }
    self = (BisectRoute *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = route_vectorcall;
    self->hash_fn = Py_NewRef(hash_fn);
    self->points = PyMem_Calloc((size_t)n, sizeof(unsigned long long));
    self->owners = PyMem_Calloc((size_t)n, sizeof(PyObject *));
    if (self->points == NULL || self->owners == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->n = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long point = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(points, i));
        if (point == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(self);
            return NULL;
        }
        if (i > 0 && point < self->points[i - 1]) {
            PyErr_SetString(PyExc_ValueError, "BisectRoute points must be sorted");
            Py_DECREF(self);
            return NULL;
        }
        self->points[i] = point;
        self->owners[i] = Py_NewRef(PyList_GET_ITEM(owners, i));
    }
    self->empty = Py_NewRef(self->owners[bisect(self, 0)]);
    return (PyObject *)self;
}

static int
route_traverse(BisectRoute *self, visitproc visit, void *arg)
{
    /* The owners are ints, which take part in no cycle. */
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->hash_fn);
    return 0;
}

static void
route_dealloc(BisectRoute *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->hash_fn);
    Py_CLEAR(self->empty);
    route_clear_arrays(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static int
route_clear(BisectRoute *self)
{
    Py_CLEAR(self->hash_fn);
    return 0;
}

static PyMethodDef route_methods[] = {
    {"many", (PyCFunction)route_many, METH_O,
     PyDoc_STR("many(keys, /)\n--\n\nThe owner of each key, as a list.")},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef route_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(BisectRoute, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot route_slots[] = {
    {Py_tp_new, route_new},
    {Py_tp_dealloc, route_dealloc},
    {Py_tp_traverse, route_traverse},
    {Py_tp_clear, route_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_methods, route_methods},
    {Py_tp_members, route_members},
    {Py_tp_doc,
     (void *)PyDoc_STR("BisectRoute(hash_fn, points, owners)\n--\n\n"
                       "key -> owners[bisect_left(points, hash_fn(key))], "
                       "or the owner of 0 for an empty key.")},
    {0, NULL},
};

static PyType_Spec route_spec = {
    .name = "corenet._route.BisectRoute",
    .basicsize = sizeof(BisectRoute),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = route_slots,
};

static int
route_exec(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &route_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "BisectRoute", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    Py_DECREF(type);
    return 0;
}

/* ---- grouping ---------------------------------------------------------- */

/* Indexes from here up are left to the Python loop (a slot per index is kept). */
#define GROUP_MAX_INDEX 65536

/* group(servers, step) -> {index: bytes of C unsigned ints} | None
 *
 * routing.group_by_server's loop: the positions i * step of servers[i],
 * grouped by server index, in order of first appearance, each group as the
 * bytes of an array('I').  None (for the Python loop) when an index is not
 * an int in [0, GROUP_MAX_INDEX) or a position would not fit. */
PyDoc_STRVAR(group_doc, "group(servers, step, /)\n--\n\n"
                        "{index: bytes of array('I') positions i * step}, in order of "
                        "first appearance, or None for the Python loop.");

static PyObject *
route_group(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *servers, *result = NULL;
    Py_ssize_t n, step;
    long top = 0;
    Py_ssize_t *counts = NULL;
    unsigned short *indexes = NULL;
    unsigned int **cursor = NULL;

    (void)module;
    if (!corenet_arity_ok("group", nargs, 2) || corenet_ssize_arg(args[1], &step) < 0) {
        return NULL;
    }
    if (!PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "group expects a list of indexes");
        return NULL;
    }
    servers = args[0];
    n = PyList_GET_SIZE(servers);
    if (step < 1 || n > (Py_ssize_t)(UINT_MAX / (size_t)step)) {
        Py_RETURN_NONE;
    }
    indexes = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(unsigned short));
    if (indexes == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(servers, i);
        long index = PyLong_CheckExact(item) ? PyLong_AsLong(item) : -1;
        if (index == -1 && PyErr_Occurred()) {
            PyErr_Clear();
        }
        if (index < 0 || index >= GROUP_MAX_INDEX) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        indexes[i] = (unsigned short)index;
        if (index > top) {
            top = index;
        }
    }
    counts = PyMem_Calloc((size_t)top + 1, sizeof(Py_ssize_t));
    cursor = PyMem_Calloc((size_t)top + 1, sizeof(unsigned int *));
    result = PyDict_New();
    if (counts == NULL || cursor == NULL || result == NULL) {
        Py_CLEAR(result);
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        counts[indexes[i]]++;
    }
    /* One bytes object per server, made at its first appearance so that the
     * dict keeps that order; then every position written in one pass. */
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned short index = indexes[i];
        PyObject *key, *group;
        if (cursor[index] != NULL) {
            continue;
        }
        group = PyBytes_FromStringAndSize(NULL, counts[index] * (Py_ssize_t)sizeof(unsigned int));
        key = PyLong_FromLong(index);
        if (group == NULL || key == NULL || PyDict_SetItem(result, key, group) < 0) {
            Py_XDECREF(group);
            Py_XDECREF(key);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(key);
        cursor[index] = (unsigned int *)PyBytes_AS_STRING(group);
        Py_DECREF(group); /* the dict holds it */
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        *cursor[indexes[i]]++ = (unsigned int)(i * step);
    }

done:
    PyMem_Free(counts);
    PyMem_Free(indexes);
    PyMem_Free(cursor);
    return result;
}

static PyMethodDef module_methods[] = {
    {"group", (PyCFunction)(void (*)(void))route_group, METH_FASTCALL, group_doc},
    {NULL, NULL, 0, NULL},
};

CORENET_MODULE(_route, "corenet._route",
               "Compiled continuum lookup for corenet.routing; the Python closure is the reference.",
               module_methods, {Py_mod_exec, route_exec},)
