/* cni_rdma._native: the few system calls the plugins' hot path needs that would otherwise cost an import.
 *
 * setns(2): Python 3.11 has no os.setns (3.12 has); ctypes costs ~1.7 ms of every call that enters a netns.
 * ns_type: the NS_GET_NSTYPE ioctl on an nsfs fd (fcntl.ioctl's module is a dlopen).
 * flock(2) and the CRC-32 of host-local's bucket file: fcntl and zlib are extension modules, each a dlopen
 * (~0.2 and ~0.45 ms of every call). In the bundle this file is compiled into the executable itself
 * (tools/launcher.c registers it as a built-in module: no dlopen at all); `make dev` builds it in place
 * (tools/build_ext.py). Callers fall back to ctypes/fcntl/zlib where it was never built (a plain wheel install).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/ioctl.h>

#define NS_GET_NSTYPE 0xB703 /* _IO(0xb7, 0x3) in <linux/nsfs.h>, Linux >= 4.11 */

static PyObject *native_setns(PyObject *self, PyObject *args)
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

/* The CLONE_NEW* type of the namespace an nsfs fd refers to; OSError (ENOTTY) for any other file. */
static PyObject *native_ns_type(PyObject *self, PyObject *args)
{
    int fd;
    (void)self;
    if (!PyArg_ParseTuple(args, "i:ns_type", &fd))
        return NULL;
    int rc = ioctl(fd, NS_GET_NSTYPE);
    if (rc < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(rc);
}

/* As fcntl.flock: the GIL released while blocked, retried on EINTR unless a signal handler raised (PEP 475). */
static PyObject *native_flock(PyObject *self, PyObject *args)
{
    int fd, op, rc;
    (void)self;
    if (!PyArg_ParseTuple(args, "ii:flock", &fd, &op))
        return NULL;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        rc = flock(fd, op);
        Py_END_ALLOW_THREADS
        if (rc == 0)
            Py_RETURN_NONE;
        if (errno != EINTR)
            return PyErr_SetFromErrno(PyExc_OSError);
        if (PyErr_CheckSignals())
            return NULL;
    }
}

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) with zlib.crc32's contract: crc32(data, value=0) continues
 * a running CRC and returns an unsigned 32-bit int. The table is computed on first use. */
static uint32_t crc_table[256];
static int crc_table_ready;

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
    crc_table_ready = 1;
}

static PyObject *native_crc32(PyObject *self, PyObject *args)
{
    Py_buffer data;
    unsigned int value = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*|I:crc32", &data, &value))
        return NULL;
    if (!crc_table_ready)
        crc_init();
    uint32_t c = ~(uint32_t)value;
    const unsigned char *p = data.buf;
    for (Py_ssize_t i = 0; i < data.len; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(~c & 0xFFFFFFFFu);
}

static PyMethodDef methods[] = {
    {"setns", native_setns, METH_VARARGS, "setns(fd, nstype): move the calling thread into a namespace."},
    {"ns_type", native_ns_type, METH_VARARGS, "ns_type(fd): the CLONE_NEW* type of an nsfs fd (NS_GET_NSTYPE)."},
    {"flock", native_flock, METH_VARARGS, "flock(fd, operation): as fcntl.flock on a file descriptor."},
    {"crc32", native_crc32, METH_VARARGS, "crc32(data, value=0): as zlib.crc32."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cni_rdma._native", NULL, 0, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModule_Create(&module);
}
