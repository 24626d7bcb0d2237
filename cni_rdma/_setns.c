/* cni_rdma._setns: setns(2) for Python 3.11, which has no os.setns (3.12 has).
 *
 * The alternative, ctypes, costs ~1.7 ms of every plugin call that enters a netns (its import and a CDLL
 * lookup); this module ~0.2 ms. Built in place by `make dev` (tools/build_ext.py) and into the bundle by
 * `make build`; cni_rdma/netns.py falls back to ctypes where it was never built (a plain wheel install).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sched.h>

static PyObject *cni_setns(PyObject *self, PyObject *args)
{
    int fd, nstype;
    (void)self;
    if (!PyArg_ParseTuple(args, "ii:setns", &fd, &nstype))
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = setns(fd, nstype);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setns", cni_setns, METH_VARARGS, "setns(fd, nstype): move the calling thread into a namespace."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cni_rdma._setns", NULL, 0, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__setns(void)
{
    return PyModule_Create(&module);
}
