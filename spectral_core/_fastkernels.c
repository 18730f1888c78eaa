/* The rbf kernel's elementwise part, exp(min(E, 0)), on a cache-sized tile of C.
 *
 * numpy's float64 exp has no SIMD path without AVX-512 (about 5 ns a value on an AVX2 core,
 * where the distance GEMM costs about 1 ns): this loop vectorizes on any x86-64 and aarch64
 * compiler target. The exponential is computed as 2^n · p(r), x = n·ln 2 + r with
 * |r| ≤ ln 2 / 2 (Cody and Waite's two-part ln 2), p a polynomial of degree 11 in
 * float64 (relative error below 2 ulp on [-708, 0]) or 6 in float32 (below 1 ulp), and 2^n
 * written into the exponent bits. Arguments are ≤ 0 (a clipped negative squared distance),
 * so only underflow needs care: below -708 (float64) or -87 (float32) the value is 0, where
 * libm would return a subnormal of no consequence next to the degrees it is summed into.
 *
 * The loop is compiled for AVX-512, AVX2 with FMA and the baseline ISA, chosen once per call
 * from the CPU (GCC and Clang on x86-64); elsewhere the baseline build is the one.
 * The GIL is released: the estimator's threads run their tiles in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64))
#define SPECTRAL_X86_DISPATCH 1
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define SPECTRAL_X86_DISPATCH 0
#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE static inline
#endif
#endif

ALWAYS_INLINE double exp_neg64(double x)
{
    const double log2e = 1.4426950408889634, ln2_hi = 0.693147180369123816490,
                 ln2_lo = 1.90821492927058770002e-10, shifter = 6755399441055744.0;
    /* exp(r) on |r| ≤ ln 2 / 2: the degree-11 interpolant at the Chebyshev nodes (computed
     * in 50-digit arithmetic, rounded to double), within 0.74 ulp of exp there. */
    const double c0 = 1.0, c1 = 1.0, c2 = 0.5000000000000019, c3 = 0.1666666666666668,
                 c4 = 0.0416666666664881, c5 = 0.008333333333319601,
                 c6 = 0.0013888888952314775, c7 = 0.00019841269890047113,
                 c8 = 2.4801485482328494e-05, c9 = 2.755724091857897e-06,
                 c10 = 2.763263963904103e-07, c11 = 2.5110037605963777e-08;
    double a = x < -708.0 ? -708.0 : x;
    double t = a * log2e + shifter; /* round(a / ln 2) in the low mantissa bits */
    double n = t - shifter;
    double r = a - n * ln2_hi - n * ln2_lo;
    double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4; /* Estrin: a short dependency chain */
    double p = ((c0 + c1 * r) + r2 * (c2 + c3 * r)) + r4 * ((c4 + c5 * r) + r2 * (c6 + c7 * r))
               + r8 * ((c8 + c9 * r) + r2 * (c10 + c11 * r));
    int64_t bits;
    double scale;
    memcpy(&bits, &t, sizeof bits);
    bits = (int64_t)((uint64_t)(bits + 1023) << 52); /* 2^n */
    memcpy(&scale, &bits, sizeof scale);
    return x < -708.0 ? 0.0 : p * scale;
}

ALWAYS_INLINE float exp_neg32(float x)
{
    const float log2e = 1.44269504f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f,
                shifter = 12582912.0f;
    /* The degree-6 Chebyshev interpolant, within 0.83 ulp of exp on |r| ≤ ln 2 / 2. */
    const float c0 = 1.0f, c1 = 1.0f, c2 = 0.5f, c3 = 0.16666415f, c4 = 0.041666351f,
                c5 = 0.0083751259f, c6 = 0.0013941108f;
    float a = x < -87.0f ? -87.0f : x;
    float t = a * log2e + shifter;
    float n = t - shifter;
    float r = a - n * ln2_hi - n * ln2_lo;
    float r2 = r * r, r4 = r2 * r2;
    float p = ((c0 + c1 * r) + r2 * (c2 + c3 * r)) + r4 * ((c4 + c5 * r) + r2 * c6);
    int32_t bits;
    float scale;
    memcpy(&bits, &t, sizeof bits);
    bits = (int32_t)((uint32_t)(bits + 127) << 23);
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.0f ? 0.0f : p * scale;
}

/* E (rows × cols, C order) ← exp(min(E, 0)); sums[j] += Σ_i E[i, j] when sums is given. */
ALWAYS_INLINE void epilogue64_body(double *E, Py_ssize_t rows, Py_ssize_t cols, double *sums)
{
    for (Py_ssize_t i = 0; i < rows; i++) {
        double *row = E + i * cols;
        for (Py_ssize_t j = 0; j < cols; j++) {
            double x = row[j] < 0.0 ? row[j] : 0.0;
            row[j] = exp_neg64(x);
        }
        if (sums)
            for (Py_ssize_t j = 0; j < cols; j++)
                sums[j] += row[j];
    }
}

ALWAYS_INLINE void epilogue32_body(float *E, Py_ssize_t rows, Py_ssize_t cols, double *sums)
{
    for (Py_ssize_t i = 0; i < rows; i++) {
        float *row = E + i * cols;
        for (Py_ssize_t j = 0; j < cols; j++) {
            float x = row[j] < 0.0f ? row[j] : 0.0f;
            row[j] = exp_neg32(x);
        }
        if (sums)
            for (Py_ssize_t j = 0; j < cols; j++)
                sums[j] += (double)row[j];
    }
}

#if SPECTRAL_X86_DISPATCH
#define VARIANTS(body, T)                                                                     \
    __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))                             \
    static void body##_avx512(T *E, Py_ssize_t r, Py_ssize_t c, double *s)                    \
    { body(E, r, c, s); }                                                                     \
    __attribute__((target("avx2,fma")))                                                       \
    static void body##_avx2(T *E, Py_ssize_t r, Py_ssize_t c, double *s)                      \
    { body(E, r, c, s); }                                                                     \
    static void body##_base(T *E, Py_ssize_t r, Py_ssize_t c, double *s)                      \
    { body(E, r, c, s); }                                                                     \
    static void body##_dispatch(T *E, Py_ssize_t r, Py_ssize_t c, double *s)                  \
    {                                                                                         \
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")           \
            && __builtin_cpu_supports("avx512vl"))                                            \
            body##_avx512(E, r, c, s);                                                        \
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))             \
            body##_avx2(E, r, c, s);                                                          \
        else                                                                                  \
            body##_base(E, r, c, s);                                                          \
    }
#else
#define VARIANTS(body, T)                                                                     \
    static void body##_dispatch(T *E, Py_ssize_t r, Py_ssize_t c, double *s)                  \
    { body(E, r, c, s); }
#endif

VARIANTS(epilogue64_body, double)
VARIANTS(epilogue32_body, float)

/* Which build the dispatcher picks on this CPU (for the benchmarks' header). */
static const char *isa_in_use(void)
{
#if SPECTRAL_X86_DISPATCH
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl"))
        return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "avx2";
    return "baseline";
#else
    return "portable";
#endif
}

static PyObject *rbf_epilogue(PyObject *self, PyObject *args)
{
    PyObject *e_obj, *s_obj = Py_None;
    Py_buffer e, s;
    if (!PyArg_ParseTuple(args, "O|O:rbf_epilogue", &e_obj, &s_obj))
        return NULL;
    if (PyObject_GetBuffer(e_obj, &e, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
        return NULL;
    int is64 = e.format && strcmp(e.format, "d") == 0;
    int is32 = e.format && strcmp(e.format, "f") == 0;
    if (e.ndim != 2 || !(is64 || is32)) {
        PyErr_SetString(PyExc_TypeError,
                        "rbf_epilogue: E must be a C-contiguous 2-D float32 or float64 array");
        PyBuffer_Release(&e);
        return NULL;
    }
    Py_ssize_t rows = e.shape[0], cols = e.shape[1];
    double *sums = NULL;
    int have_sums = s_obj != Py_None;
    if (have_sums) {
        if (PyObject_GetBuffer(s_obj, &s, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT)
            < 0) {
            PyBuffer_Release(&e);
            return NULL;
        }
        if (s.ndim != 1 || s.shape[0] != cols || !s.format || strcmp(s.format, "d") != 0) {
            PyErr_SetString(PyExc_TypeError,
                            "rbf_epilogue: sums must be a C-contiguous float64 array with one "
                            "value per column of E");
            PyBuffer_Release(&s);
            PyBuffer_Release(&e);
            return NULL;
        }
        sums = (double *)s.buf;
    }
    Py_BEGIN_ALLOW_THREADS
    if (is64)
        epilogue64_body_dispatch((double *)e.buf, rows, cols, sums);
    else
        epilogue32_body_dispatch((float *)e.buf, rows, cols, sums);
    Py_END_ALLOW_THREADS
    if (have_sums)
        PyBuffer_Release(&s);
    PyBuffer_Release(&e);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"rbf_epilogue", rbf_epilogue, METH_VARARGS,
     "rbf_epilogue(E, sums=None)\n--\n\n"
     "E <- exp(min(E, 0)) in place (float32 or float64, C order, 2-D); adds each column's "
     "sum to ``sums`` (float64) when given. Releases the GIL."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "spectral_core._fastkernels",
    "Compiled elementwise kernels of spectral_core (see _fastkernels.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__fastkernels(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "ISA", isa_in_use()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
