/*
 * corenet._fatal: a line of the application's own in its log when the
 * process dies of a fatal signal (a real fault, or a kill -SEGV), before
 * faulthandler's traceback and the signal's default end.
 *
 *   note_fatal_signals(fd, lines) -> None
 *       lines maps signal numbers to the bytes to write to fd when that
 *       signal arrives.  The first call installs a handler for each signal
 *       that writes its line, puts back the handler it replaced (call it
 *       after faulthandler.enable(), so that is faulthandler's) and raises
 *       the signal again, so the process still dies of it, with a core
 *       where the system's ulimit -c allows one.  Later calls only change
 *       fd and the lines (after a log file is reopened), as
 *       faulthandler.enable() does when called again.
 *
 * Signals are process-wide, so this module keeps process-wide state: the
 * one place corenet's C code does.  The handler does only what is
 * async-signal-safe: write(2), sigaction(2) and raise(3).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_cmodule.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define MAX_NOTES 8
#define MAX_LINE 200

typedef struct {
    int signum;
    char line[MAX_LINE];
    size_t len;
    struct sigaction previous;
} fatal_note;

static fatal_note notes[MAX_NOTES];
static int note_count;
static volatile sig_atomic_t note_fd = -1;

static void
on_fatal_signal(int signum)
{
    int saved = errno;
    for (int i = 0; i < note_count; i++) {
        if (notes[i].signum == signum) {
            int fd = note_fd;
            if (fd >= 0 && write(fd, notes[i].line, notes[i].len) < 0) {
                /* nothing to be done from here */
            }
            sigaction(signum, &notes[i].previous, NULL);
            break;
        }
    }
    errno = saved;
    raise(signum);
}

static PyObject *
note_fatal_signals(PyObject *module, PyObject *args)
{
    int fd;
    PyObject *lines, *key, *value;
    Py_ssize_t pos = 0;
    int first = note_count == 0;
    fatal_note fresh[MAX_NOTES];
    int count = 0;

    (void)module;
    if (!PyArg_ParseTuple(args, "iO!:note_fatal_signals", &fd, &PyDict_Type, &lines)) {
        return NULL;
    }
    if (PyDict_GET_SIZE(lines) > MAX_NOTES) {
        PyErr_Format(PyExc_ValueError, "at most %d signals", MAX_NOTES);
        return NULL;
    }
    memset(fresh, 0, sizeof(fresh));
    while (PyDict_Next(lines, &pos, &key, &value)) {
        long signum = PyLong_AsLong(key);
        if (signum == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (!PyBytes_Check(value) || PyBytes_GET_SIZE(value) > MAX_LINE) {
            PyErr_Format(PyExc_TypeError, "each line must be bytes of at most %d", MAX_LINE);
            return NULL;
        }
        if (signum < 1 || signum >= NSIG) {
            PyErr_Format(PyExc_ValueError, "signal number out of range: %ld", signum);
            return NULL;
        }
        fresh[count].signum = (int)signum;
        fresh[count].len = (size_t)PyBytes_GET_SIZE(value);
        memcpy(fresh[count].line, PyBytes_AS_STRING(value), fresh[count].len);
        count++;
    }
    if (!first) {
        /* Installed already: only the lines and the descriptor change (the
         * signals the first call installed stay, a new one is not added). */
        for (int i = 0; i < note_count; i++) {
            for (int j = 0; j < count; j++) {
                if (fresh[j].signum == notes[i].signum) {
                    memcpy(notes[i].line, fresh[j].line, fresh[j].len);
                    notes[i].len = fresh[j].len;
                }
            }
        }
        note_fd = fd;
        Py_RETURN_NONE;
    }
    note_fd = fd;
    for (int i = 0; i < count; i++) {
        struct sigaction action;
        memset(&action, 0, sizeof(action));
        action.sa_handler = on_fatal_signal;
        sigemptyset(&action.sa_mask);
        /* SA_NODEFER: the raise() in the handler reaches the handler put
         * back at once; SA_ONSTACK: faulthandler's alternate stack serves a
         * stack overflow too. */
        action.sa_flags = SA_NODEFER | SA_ONSTACK;
        notes[i] = fresh[i];
        if (sigaction(notes[i].signum, &action, &notes[i].previous) < 0) {
            note_count = i;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        note_count = i + 1;
    }
    Py_RETURN_NONE;
}

static PyMethodDef fatal_methods[] = {
    {"note_fatal_signals", note_fatal_signals, METH_VARARGS,
     PyDoc_STR("note_fatal_signals(fd, lines, /)\n--\n\n"
               "On each signal of lines, write its line to fd, then end as the "
               "handler this replaced (faulthandler's, or the default) ends.")},
    {NULL, NULL, 0, NULL},
};

CORENET_MODULE(_fatal, "corenet._fatal",
               "A line in the log before a fatal signal ends the process.", fatal_methods, )
