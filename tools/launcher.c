/* The bundle's executable: start the bundled CPython on the bundle's own modules and run cni_rdma.main.
 *
 * It takes the place of PyInstaller's bootloader (tools/build_bundle.py compiles it against the libpython
 * PyInstaller collected). Start-up is every CNI call's latency, and the bootloader costs a re-exec of itself
 * (to set LD_LIBRARY_PATH, which our RPATHs make needless) plus its Python-level bootstrap (its importers, a
 * ctypes probe, zlib and struct) on every call. This does only what a plugin needs: the interpreter
 * configured as PyInstaller configures it (isolated: no PYTHON* variables, no site, no user site, no
 * bytecode writes, UTF-8 mode, sys.path = the bundle only), sys.frozen and sys._MEIPASS set, then
 * `cni_rdma.main.run()` (main(), then the exit), its modules from the bundle's modules file (cni_rdma/bundled.py,
 * frozen in with the codec registry). cni_rdma/_native.c is compiled in as the built-in module
 * `cni_rdma._native` (no dlopen; cni_rdma/bundled.py's finder resolves the dotted name).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define DYNLOAD "/python" STR(PY_MAJOR_VERSION) "." STR(PY_MINOR_VERSION) "/lib-dynload"

PyMODINIT_FUNC PyInit__native(void); /* cni_rdma/_native.c, linked in */
extern const struct _frozen cni_rdma_frozen[]; /* tools/build_bundle.frozen_source: encodings, generated */

static int fail(const char *what, PyStatus st)
{
    fprintf(stderr, "cni-rdma: %s: %s%s%s\n", what, st.func ? st.func : "", st.func ? ": " : "",
            st.err_msg ? st.err_msg : "failed");
    return 1;
}

static int set_str(PyConfig *c, wchar_t **field, const char *value, const char *what)
{
    PyStatus st = PyConfig_SetBytesString(c, field, value);
    return PyStatus_Exception(st) ? fail(what, st) : 0;
}

/* A frozen package has no directory (this config has no sys._stdlib_dir), so its modules that are not frozen
 * (encodings.idna, encodings.cp1252..., cni_rdma.main...) would not be found: each package of the frozen table is
 * imported (they are all imported by every call anyway) and given the bundle's directory as its __path__. */
static int frozen_packages_find_their_files(const char *home)
{
    for (const struct _frozen *f = cni_rdma_frozen; f->name != NULL; f++) {
        if (!f->is_package)
            continue;
        char dir[PATH_MAX + 64];
        int n = snprintf(dir, sizeof dir, "%s/%s", home, f->name);
        if (n < 0 || n >= (int)sizeof dir) {
            PyErr_Format(PyExc_OSError, "bundle path too long for %s", f->name);
            return -1;
        }
        for (char *c = dir + strlen(home) + 1; *c; c++)
            if (*c == '.')
                *c = '/'; /* a dotted package name is a nested directory */
        PyObject *module = PyImport_ImportModule(f->name), *path = NULL, *entry = NULL;
        int rc = -1;
        if (module != NULL && (path = PyObject_GetAttrString(module, "__path__")) != NULL &&
            (entry = PyUnicode_DecodeFSDefault(dir)) != NULL)
            rc = PyList_Append(path, entry);
        Py_XDECREF(entry);
        Py_XDECREF(path);
        Py_XDECREF(module);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Python's objects live in obmalloc's 1 MiB arenas, and a plugin call fills 2-3 of them: ~200 page faults each
 * (every 4 KiB page a fault: allocated, zeroed, charged to the cgroup), ~0.8 ms of a DEL's CPU (bench/README.md,
 * round 6). The first arenas are slots of one 2 MiB-aligned region that the kernel may back with transparent huge
 * pages (MADV_HUGEPAGE: one fault per 2 MiB): where THP is off ("never"), or no 2 MiB page is free, it is ordinary
 * pages, faulted as before. More arenas than the region holds are mapped one by one, as CPython does. A freed
 * slot is kept (not returned to the kernel, which would split the huge page) and given out again. */
#define ARENA_REGION ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)
static char *arena_region;
static size_t arena_slot; /* the arena size, set by the first request */
static unsigned arena_slots_used;

static void *arena_alloc(void *ctx, size_t size)
{
    (void)ctx;
    if (arena_slot == 0 && size > 0 && ARENA_REGION % size == 0 && ARENA_REGION / size <= 32) {
        arena_slot = size;
        char *p = mmap(NULL, ARENA_REGION + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            char *aligned = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
            if (aligned > p)
                munmap(p, (size_t)(aligned - p));
            munmap(aligned + ARENA_REGION, (size_t)(p + HUGE_PAGE - aligned));
            madvise(aligned, ARENA_REGION, MADV_HUGEPAGE); /* advice: on a kernel without THP, nothing changes */
            arena_region = aligned;
        }
    }
    if (arena_region != NULL && size == arena_slot)
        for (unsigned i = 0; i < ARENA_REGION / arena_slot; i++)
            if (!(arena_slots_used & (1u << i))) {
                arena_slots_used |= 1u << i;
                return arena_region + i * arena_slot;
            }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void arena_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    char *c = ptr;
    if (arena_region != NULL && c >= arena_region && c < arena_region + ARENA_REGION) {
        arena_slots_used &= ~(1u << ((size_t)(c - arena_region) / arena_slot));
        return;
    }
    munmap(ptr, size);
}

/* What the launcher runs, as the Python lines
 *     import cni_rdma.bundled
 *     try:
 *         cni_rdma.bundled.install()
 *     except Exception:
 *         pass
 *     from cni_rdma.main import run
 *     run()
 * would, without parsing and compiling them at every start (~0.1M instructions): the modules file first
 * (cni_rdma.bundled, frozen in), then main and everything after it from there. A broken file is left to main(),
 * which answers it as a CNI error. -1 with the exception set (run() ends the process otherwise). */
int cni_rdma_run_main(void);
__attribute__((noinline)) int cni_rdma_run_main(void)
{
    PyObject *bundled = PyImport_ImportModule("cni_rdma.bundled");
    if (bundled == NULL)
        return -1;
    PyObject *installed = PyObject_CallMethod(bundled, "install", NULL);
    Py_DECREF(bundled);
    if (installed == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return -1;
        PyErr_Clear();
    }
    Py_XDECREF(installed);
    PyObject *main_module = PyImport_ImportModule("cni_rdma.main");
    if (main_module == NULL)
        return -1;
    PyObject *result = PyObject_CallMethod(main_module, "run", NULL);
    Py_DECREF(main_module);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

int main(int argc, char **argv)
{
    PyObjectArenaAllocator arenas = {NULL, arena_alloc, arena_free}; /* before the interpreter's first object */
    PyObject_SetArenaAllocator(&arenas);
    /* The bundle is the directory this executable lives in (symlinks, e.g. /opt/cni/bin/macvlan, resolved);
     * without /proc (a bare chroot), argv[0] as the caller spelled it: runtimes exec plugins by path. */
    char exe[PATH_MAX], home[PATH_MAX], dynload[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
    } else if (argc < 1 || strchr(argv[0], '/') == NULL || realpath(argv[0], exe) == NULL) {
        fprintf(stderr, "cni-rdma: cannot find the bundle: /proc/self/exe unreadable and argv[0] is not a path\n");
        return 1;
    }
    char *slash = strrchr(exe, '/');
    int dir_len = slash ? (int)(slash - exe) : 0;
    if (snprintf(home, sizeof home, "%.*s/_internal", dir_len, exe) >= (int)sizeof home ||
        snprintf(dynload, sizeof dynload, "%s" DYNLOAD, home) >= (int)sizeof dynload) {
        fprintf(stderr, "cni-rdma: bundle path too long\n");
        return 1;
    }

    if (PyImport_AppendInittab("cni_rdma._native", PyInit__native) != 0) {
        fprintf(stderr, "cni-rdma: cannot register cni_rdma._native\n");
        return 1;
    }
    /* The codec registry the interpreter sets up at start (encodings, utf_8) comes from the executable, not from
     * .pyc files behind two directory listings: ~0.5 ms of every call. `encodings` is our codec search
     * (cni_rdma/codec_search.py), which loads the alias table only for a name that needs it: ~0.4 ms more. */
    PyImport_FrozenModules = cni_rdma_frozen;
    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1; /* as PyInstaller: the environment's locale never changes how names are decoded */
    PyStatus st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st))
        return fail("pre-initialize", st);

    PyConfig c;
    PyConfig_InitIsolatedConfig(&c);
    c.site_import = 0;
    c.write_bytecode = 0;
    c.user_site_directory = 0;
    c.safe_path = 1;
    /* Python's own signal set-up imports _signal, which reads every signal's disposition (64 rt_sigaction calls)
     * to install a SIGINT handler no plugin uses: ~0.1-0.2 ms of every call. What the plugins do rely on is
     * what it ignores, so that a write to a closed pipe is an EPIPE, not death. (An IPAM child gets both back
     * at their defaults: cni_rdma/ipam.py, setsigdef.) */
    c.install_signal_handlers = 0;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
#ifdef CNI_RDMA_IMPORTTIME
    c.import_time = 1; /* bench/: `CNI_RDMA_IMPORTTIME=1 make build` profiles imports inside the bundle */
#endif
    if (set_str(&c, &c.program_name, argv[0], "program name") || set_str(&c, &c.executable, exe, "executable") ||
        set_str(&c, &c.home, home, "home") || set_str(&c, &c.prefix, home, "prefix") ||
        set_str(&c, &c.exec_prefix, home, "exec prefix") || set_str(&c, &c.base_prefix, home, "base prefix") ||
        set_str(&c, &c.base_exec_prefix, home, "base exec prefix"))
        goto error;
    c.module_search_paths_set = 1;
    wchar_t *path;
    const char *paths[] = {dynload, home};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        path = Py_DecodeLocale(paths[i], NULL);
        if (path == NULL) {
            fprintf(stderr, "cni-rdma: cannot decode %s\n", paths[i]);
            goto error;
        }
        st = PyWideStringList_Append(&c.module_search_paths, path);
        PyMem_RawFree(path);
        if (PyStatus_Exception(st)) {
            fail("module search path", st);
            goto error;
        }
    }
    st = PyConfig_SetBytesArgv(&c, argc, argv);
    if (PyStatus_Exception(st)) {
        fail("argv", st);
        goto error;
    }
    /* The cyclic GC off from the first moment it could run: a plugin process lives for one call and frees nothing
     * that way (cni_rdma/main.py disables it too, for the dev launchers), but the interpreter's own start, ~5000
     * container objects, set off 6 collections (~1M instructions of every call) before any line of ours. PEP 587's
     * two-phase start: the core (builtins, sys, the frozen importlib), then GC off, then the rest (the import
     * system, encodings, io: where the collections came). The operator CLI turns it back on (main.py). */
    c._init_main = 0;
    st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_Exception(st))
        return fail("initialize", st);
    PyGC_Disable();
    /* No zip path hook: the main phase imports the frozen zipimport (a module body of classes, ~0.5M instructions)
     * only to put its hook on sys.path_hooks, and our sys.path (lib-dynload, _internal) holds no zip archive.
     * CPython takes a failed import there as "no zip import: okay"; the entry goes again after, so an explicit
     * `import zipimport` still works. */
    PyObject *modules = PyImport_GetModuleDict();
    if (PyDict_SetItemString(modules, "zipimport", Py_None) != 0) {
        PyErr_Print();
        return 1;
    }
    st = _Py_InitializeMain();
    if (PyStatus_Exception(st))
        return fail("initialize", st);
    if (PyDict_DelItemString(modules, "zipimport") != 0) {
        PyErr_Print();
        return 1;
    }

    PyObject *meipass = PyUnicode_DecodeFSDefault(home);
    if (meipass == NULL || PySys_SetObject("frozen", Py_True) || PySys_SetObject("_MEIPASS", meipass)) {
        PyErr_Print();
        return 1;
    }
    Py_DECREF(meipass);
    if (frozen_packages_find_their_files(home) != 0) {
        PyErr_Print();
        return 1;
    }
    /* run() ends the process: posix._exit once a plugin's answer is flushed, else SystemExit (PyErr_Print
     * handles it: finalize, flush, exit with its code).
     * bench/ builds a CNI_RDMA_FLOOR copy that runs nothing and ends as a plugin call ends: the start-up floor
     * of any plugin in this bundle. */
#if defined(CNI_RDMA_FLOOR)
    /* ends as a plugin call ends (cni_rdma.main.run: _exit, no interpreter teardown) */
    PyRun_SimpleString("import posix\nposix._exit(0)\n");
    return 0;
#elif defined(CNI_RDMA_PROBE)
    /* tests/ only (never a shipped build): run the Python source in $CNI_RDMA_PROBE_CODE in this interpreter */
    const char *probe = getenv("CNI_RDMA_PROBE_CODE");
    if (probe == NULL || PyRun_SimpleString(probe) != 0)
        return 1;
    return Py_FinalizeEx() < 0 ? 120 : 0;
#elif defined(CNI_RDMA_IMPORTS_FLOOR)
    /* bench/: the empty app plus the imports of a macvlan + host-local DEL as main.py and skel make them, no work;
     * with CNI_RDMA_IMPORTS_FLOOR_ADD those of an ADD (macvlan's COMMAND_IMPORTS for ADD replayed too) */
#ifdef CNI_RDMA_IMPORTS_FLOOR_ADD
#define FLOOR_COMMAND_IMPORTS "cni_rdma.bundled.preload('plugins.macvlan.macvlan', 'ADD')\n"
#else
#define FLOOR_COMMAND_IMPORTS ""
#endif
    PyRun_SimpleString("import posix\nimport cni_rdma.bundled\ncni_rdma.bundled.install()\n"
                       "import cni_rdma.main, cni_rdma.early\nfrom cni_rdma import registry\n"
                       "registry.load('plugins.macvlan.macvlan')\nimport cni_rdma.skel\n" FLOOR_COMMAND_IMPORTS
                       "registry.load('ipam.host_local.host_local')\nposix._exit(0)\n");
    return 0;
#else
    /* The modules file first (cni_rdma.bundled, frozen in): main and everything after it come from there. A
     * broken file is left to main(), which answers it as a CNI error. */
    if (cni_rdma_run_main() != 0)
        PyErr_Print(); /* SystemExit: finalize, flush, exit with its code; another exception: its traceback */
#endif
    /* Only an exception other than SystemExit gets here; its traceback is printed on stderr. */
    return Py_FinalizeEx() < 0 ? 120 : 1;

error:
    PyConfig_Clear(&c);
    return 1;
}
