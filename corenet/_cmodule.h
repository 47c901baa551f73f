/*
 * The module definition every corenet C accelerator shares.
 *
 * CORENET_MODULE(NAME, DOTTED, DOC, METHODS, SLOTS...) defines the multi-phase
 * init function PyInit_NAME for the module DOTTED: its docstring, its method
 * table (or NULL), and any extra slots before the common ones (such as
 * "{Py_mod_exec, fn},"; may be empty).  Every accelerator holds no global
 * state, so each declares itself safe for subinterpreters with their own GIL
 * and for free-threaded builds, where those slots exist.
 */
#ifndef CORENET_CMODULE_H
#define CORENET_CMODULE_H

#include <Python.h>

#ifdef Py_mod_multiple_interpreters
#define CORENET_SLOT_INTERPRETERS {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#else
#define CORENET_SLOT_INTERPRETERS
#endif

#ifdef Py_mod_gil
#define CORENET_SLOT_GIL {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#else
#define CORENET_SLOT_GIL
#endif

/* Helpers the accelerators share (static inline: unused ones cost nothing). */

#define CORENET_IS_DIGIT(c) ((unsigned char)((c) - '0') <= 9u)

/* Whether a METH_FASTCALL function got its nargs; else TypeError is set. */
static inline int
corenet_arity_ok(const char *name, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s expected %zd arguments, got %zd", name, expected, nargs);
        return 0;
    }
    return 1;
}

/* Read an int argument into *out: 0, or -1 with an exception set. */
static inline int
corenet_ssize_arg(PyObject *obj, Py_ssize_t *out)
{
    *out = PyLong_AsSsize_t(obj);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* Append item, a new reference (or NULL after an error), to list: 0, or -1. */
static inline int
corenet_list_append_new(PyObject *list, PyObject *item)
{
    int failed;
    if (item == NULL) {
        return -1;
    }
    failed = PyList_Append(list, item);
    Py_DECREF(item);
    return failed;
}

/* The frame s[pos:end] of buf (n bytes at s), as bytes: buf itself when it
 * is exactly that frame (a read holding one request or reply is passed on as
 * it came, not copied), else a copy.  A new reference, or NULL. */
static inline PyObject *
corenet_frame_bytes(PyObject *buf, const char *s, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t end)
{
    if (pos == 0 && end == n && buf != NULL && PyBytes_CheckExact(buf)) {
        return Py_NewRef(buf);
    }
    return PyBytes_FromStringAndSize(s + pos, end - pos);
}

/* A batch scan's answer, (frames, pos), taking the reference to frames. */
static inline PyObject *
corenet_batch_result(PyObject *frames, Py_ssize_t pos)
{
    return Py_BuildValue("(Nn)", frames, pos);
}

/* A run of bytes inside a buffer someone else holds. */
typedef struct {
    const char *start;
    Py_ssize_t len;
} corenet_span;

/* The positions of a split request's keys, an array('I'), in *view (release
 * it): 0, or -1 with TypeError naming the function `name`. */
static inline int
corenet_positions_get(const char *name, PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (view->itemsize != (Py_ssize_t)sizeof(unsigned int) || view->format == NULL
        || view->format[0] != 'I' || view->format[1] != '\0') {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s expects positions as array('I')", name);
        return -1;
    }
    return 0;
}

#define CORENET_MODULE(NAME, DOTTED, DOC, METHODS, ...)                        \
    static PyModuleDef_Slot NAME##_module_slots[] = {                          \
        __VA_ARGS__ CORENET_SLOT_INTERPRETERS CORENET_SLOT_GIL {0, NULL},      \
    };                                                                         \
    static struct PyModuleDef NAME##_module = {                                \
        PyModuleDef_HEAD_INIT,                                                 \
        .m_name = DOTTED,                                                      \
        .m_doc = DOC,                                                          \
        .m_size = 0,                                                           \
        .m_methods = METHODS,                                                  \
        .m_slots = NAME##_module_slots,                                        \
    };                                                                         \
    PyMODINIT_FUNC PyInit_##NAME(void) { return PyModuleDef_Init(&NAME##_module); }

#endif /* CORENET_CMODULE_H */
