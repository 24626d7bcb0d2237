/* cni_rdma._native: the few system calls the plugins' hot path needs that would otherwise cost an import.
 *
 * setns(2): Python 3.11 has no os.setns (3.12 has); ctypes costs ~1.7 ms of every call that enters a netns.
 * ns_type: the NS_GET_NSTYPE ioctl on an nsfs fd (fcntl.ioctl's module is a dlopen).
 * flock(2) and the CRC-32 of host-local's bucket file: fcntl and zlib are extension modules, each a dlopen
 * (~0.2 and ~0.45 ms of every call).
 * A netlink socket (open, send to the kernel, receive one datagram) and inet_pton: the _socket extension module
 * is a dlopen plus ~500 constants and three types made at import, ~0.7 ms of every call (bench/README.md). In the bundle this file is compiled into the executable itself
 * (tools/launcher.c registers it as a built-in module: no dlopen at all); `make dev` builds it in place
 * (tools/build_ext.py). Callers fall back to ctypes/fcntl/zlib where it was never built (a plain wheel install).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <sched.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

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

/* A netlink socket of `protocol`, bound (the kernel picks the port id), with extended and capped acks and strict
 * dump checking where the kernel has them, and a receive timeout of `timeout_us` microseconds (0: none): the
 * kernel's SO_RCVTIMEO, so a silent kernel is an EAGAIN, never a hang. Returns the fd (close-on-exec). */
static PyObject *native_nl_socket(PyObject *self, PyObject *args)
{
    int protocol;
    long long timeout_us;
    (void)self;
    if (!PyArg_ParseTuple(args, "iL:nl_socket", &protocol, &timeout_us))
        return NULL;
    if (timeout_us < 0) {
        PyErr_SetString(PyExc_ValueError, "nl_socket: negative timeout");
        return NULL;
    }
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    static const int opts[] = {NETLINK_EXT_ACK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK};
    int one = 1;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        (void)setsockopt(fd, SOL_NETLINK, opts[i], &one, sizeof one); /* older kernels: plain acks */
    struct sockaddr_nl addr = {.nl_family = AF_NETLINK};
    struct timeval tv = {.tv_sec = (time_t)(timeout_us / 1000000), .tv_usec = (suseconds_t)(timeout_us % 1000000)};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        (timeout_us && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(fd);
}

/* One datagram to the kernel (an unconnected netlink socket sends to port 0): the GIL is released, since the
 * kernel handles the request inside this call (an RTM_DELLINK waits ~20 ms there). Retried on EINTR (PEP 475). */
static PyObject *native_nl_send(PyObject *self, PyObject *args)
{
    int fd;
    Py_buffer data;
    ssize_t n;
    (void)self;
    if (!PyArg_ParseTuple(args, "iy*:nl_send", &fd, &data))
        return NULL;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        n = send(fd, data.buf, (size_t)data.len, 0);
        Py_END_ALLOW_THREADS
        if (n >= 0 || errno != EINTR || PyErr_CheckSignals())
            break;
    }
    PyBuffer_Release(&data);
    if (n < 0)
        return PyErr_Occurred() ? NULL : PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromSsize_t(n);
}

/* The next datagram, whole: its length first (MSG_PEEK|MSG_TRUNC answers the full length), then a bytes object
 * of exactly that size. No fixed buffer to outgrow (a PF's VF table has no upper bound). OSError EAGAIN when the
 * receive timeout runs out; b"" for an empty datagram. */
static PyObject *native_nl_recv(PyObject *self, PyObject *args)
{
    int fd;
    ssize_t n;
    char peek[16];
    (void)self;
    if (!PyArg_ParseTuple(args, "i:nl_recv", &fd))
        return NULL;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        n = recv(fd, peek, sizeof peek, MSG_PEEK | MSG_TRUNC);
        Py_END_ALLOW_THREADS
        if (n >= 0)
            break;
        if (errno != EINTR)
            return PyErr_SetFromErrno(PyExc_OSError);
        if (PyErr_CheckSignals())
            return NULL;
    }
    PyObject *buf = PyBytes_FromStringAndSize(NULL, n);
    if (buf == NULL)
        return NULL;
    for (;;) {
        ssize_t got;
        Py_BEGIN_ALLOW_THREADS
        got = recv(fd, PyBytes_AS_STRING(buf), (size_t)n, 0);
        Py_END_ALLOW_THREADS
        if (got >= 0) {
            if (got != n && _PyBytes_Resize(&buf, got) != 0) /* only if the queue changed under us */
                return NULL;
            return buf;
        }
        if (errno != EINTR || PyErr_CheckSignals()) {
            if (!PyErr_Occurred())
                PyErr_SetFromErrno(PyExc_OSError);
            Py_DECREF(buf);
            return NULL;
        }
    }
}

/* inet_pton(3) of a str: the packed address, or None when it is not an address of that family. A NUL in the text
 * is a ValueError and a lone surrogate a UnicodeEncodeError, as with _socket.inet_pton. */
static PyObject *native_inet_pton(PyObject *self, PyObject *args)
{
    int af;
    const char *text;
    unsigned char out[16];
    (void)self;
    if (!PyArg_ParseTuple(args, "is:inet_pton", &af, &text))
        return NULL;
    if (af != AF_INET && af != AF_INET6) {
        errno = EAFNOSUPPORT;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (inet_pton(af, text, out) != 1)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)out, af == AF_INET ? 4 : 16);
}

static PyMethodDef methods[] = {
    {"setns", native_setns, METH_VARARGS, "setns(fd, nstype): move the calling thread into a namespace."},
    {"ns_type", native_ns_type, METH_VARARGS, "ns_type(fd): the CLONE_NEW* type of an nsfs fd (NS_GET_NSTYPE)."},
    {"flock", native_flock, METH_VARARGS, "flock(fd, operation): as fcntl.flock on a file descriptor."},
    {"crc32", native_crc32, METH_VARARGS, "crc32(data, value=0): as zlib.crc32."},
    {"nl_socket", native_nl_socket, METH_VARARGS, "nl_socket(protocol, timeout_us): a bound netlink socket's fd."},
    {"nl_send", native_nl_send, METH_VARARGS, "nl_send(fd, data): send one datagram to the kernel."},
    {"nl_recv", native_nl_recv, METH_VARARGS, "nl_recv(fd): the next datagram, whole."},
    {"inet_pton", native_inet_pton, METH_VARARGS, "inet_pton(af, text): packed address, or None if invalid."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cni_rdma._native", NULL, 0, methods,
                                    NULL, NULL, NULL, NULL};

/* Module: the type of the modules cni_rdma/bundled.py runs. The same module type but for one slot: a failed
 * attribute lookup goes through the generic lookup, which `from x import y` asks without raising (it probes x for
 * `__path__` to tell a package). The standard module's lookup words two AttributeErrors for it, ~9k instructions,
 * ~100 times a call. What it loses: a module-level __getattr__ (PEP 562; cni_rdma/bundled.py gives a module that
 * defines one the standard type back) and the wording of an AttributeError on a missing module attribute. */
static PyTypeObject Module_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "module",
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, /* GC support inherited from the module type */
    .tp_doc = "A module whose failed attribute lookups raise nothing when the caller does not want them to.",
};

PyMODINIT_FUNC PyInit__native(void)
{
    Module_Type.tp_base = &PyModule_Type;
    if (PyType_Ready(&Module_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&Module_Type);
    if (PyModule_AddObject(m, "Module", (PyObject *)&Module_Type) < 0) {
        Py_DECREF(&Module_Type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
