# The only declarations of the C helpers in csrc/ (static inline, header-only).
from libc.stdint cimport uint64_t


cdef extern from "fnn_common.h" nogil:
    ctypedef Py_ssize_t fnn_index_t
    unsigned int fnn_denormals_off()
    void fnn_denormals_restore(unsigned int old)
    unsigned int fnn_fp_mode_get()
    unsigned int fnn_fp_mode_swap(unsigned int mode)


cdef extern from "fnn_math.h" nogil:
    float fnn_exp_nonpos_f32(float x)
    double fnn_exp_nonpos_f64(double x)
    float fnn_sigmoid_f32(float z)
    double fnn_sigmoid_f64(double z)


cdef extern from "fnn_optim.h" nogil:
    void fnn_adam_update_f32(fnn_index_t n, float* w, const float* g, float* m, float* v,
                             float alpha, float one_minus_b1, float one_minus_b2, float eps)
    void fnn_adam_update_f64(fnn_index_t n, double* w, const double* g, double* m, double* v,
                             double alpha, double one_minus_b1, double one_minus_b2, double eps)
    void fnn_sgd_update_f32(fnn_index_t n, float* w, const float* g, float* u,
                            float lr, float momentum, int nesterov)
    void fnn_sgd_update_f64(fnn_index_t n, double* w, const double* g, double* u,
                            double lr, double momentum, int nesterov)
    void fnn_adamw_update_f32(fnn_index_t n, float* w, const float* g, float* m, float* v,
                              float alpha, float one_minus_b1, float one_minus_b2, float eps,
                              float keep)
    void fnn_adamw_update_f64(fnn_index_t n, double* w, const double* g, double* m, double* v,
                              double alpha, double one_minus_b1, double one_minus_b2,
                              double eps, double keep)
    void fnn_rmsprop_update_f32(fnn_index_t n, float* w, const float* g, float* v, float* u,
                                float* a, float lr, float rho, float one_minus_rho,
                                float momentum, float eps, int centered, int use_momentum)
    void fnn_rmsprop_update_f64(fnn_index_t n, double* w, const double* g, double* v,
                                double* u, double* a, double lr, double rho,
                                double one_minus_rho, double momentum, double eps,
                                int centered, int use_momentum)
    double fnn_sumsq_f32(fnn_index_t n, const float* x)
    double fnn_sumsq_f64(fnn_index_t n, const double* x)
    void fnn_mul_div_f32(fnn_index_t n, float* x, float num, float den)
    void fnn_mul_div_f64(fnn_index_t n, double* x, double num, double den)
    void fnn_scale_f32(fnn_index_t n, float* x, float s)
    void fnn_scale_f64(fnn_index_t n, double* x, double s)
    void fnn_clip_value_f32(fnn_index_t n, float* x, float c)
    void fnn_clip_value_f64(fnn_index_t n, double* x, double c)


cdef extern from "fnn_rng.h" nogil:
    double fnn_uniform(uint64_t seed, uint64_t stream, uint64_t index)


cdef extern from "fnn_gemm.h" nogil:
    int fnn_gemm_small_ok(int m, int n, int k)
    void fnn_gemm_small_f32(int trans_a, int trans_b, int m, int n, int k, const float* a,
                            const float* b, int accumulate, float* c)
    void fnn_gemm_small_f64(int trans_a, int trans_b, int m, int n, int k, const double* a,
                            const double* b, int accumulate, double* c)


cdef extern from "fnn_gemm_rows_packed.h" nogil:
    ctypedef void (*fnn_rows_task_fn)(void* ctx, int task) noexcept nogil
    ctypedef void (*fnn_rows_runner)(int threads, int ntasks, fnn_rows_task_fn fn,
                                     void* ctx) noexcept nogil
    int fnn_gemm_rows_fused()
    const Py_ssize_t FNN_ROWS_RUN_MIN
    void fnn_gemm_rows_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
                           const float* b, float* c)
    void fnn_gemm_rows_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* a,
                           const double* b, double* c)
    void fnn_gemm_rows_run_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
                               const float* b, float* c, int threads, fnn_rows_runner run)
    void fnn_gemm_rows_run_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* a,
                               const double* b, double* c, int threads, fnn_rows_runner run)


cdef extern from "fnn_small.h" nogil:
    enum:
        FNN_ISA_NONE
        FNN_ISA_AVX2
        FNN_ISA_AVX512
        FNN_SMALL_MAX_BT
    int fnn_small_isa()
    int fnn_small_force_isa(int level)
    int fnn_small_gemm_f32(int trans_a, int trans_b, int m, int n, int k, const float* a,
                           const float* b, int accumulate, float* c)
    int fnn_small_dense_f32(int m, int n, int k, const float* x, const float* w,
                            const float* bias, int relu, float* z, float* act)
    void fnn_relu_grad_f32(fnn_index_t size, const float* z, float* g)
    void fnn_relu_grad_f64(fnn_index_t size, const double* z, double* g)
    void fnn_column_sums_f32(fnn_index_t n, fnn_index_t m, const float* g, float* out)
    void fnn_column_sums_f64(fnn_index_t n, fnn_index_t m, const double* g, double* out)
    int fnn_small_sparse_xent_f32(int n, int m, const float* z, const int* labels,
                                  const float* sw, float scale, float* grad, double* total)
    void fnn_gather_rows_f32(fnn_index_t rows, fnn_index_t width, const long long* order,
                             const float* x, float* out)
    void fnn_gather_rows_f64(fnn_index_t rows, fnn_index_t width, const long long* order,
                             const double* x, double* out)
    long fnn_small_sparse_hits_f32(int n, int m, const float* z, const int* labels)


cdef extern from "fnn_conv.h" nogil:
    void fnn_pool_max_f32(fnn_index_t c, const float* x, float* out, float* idx, float cell)
    void fnn_pool_max_f64(fnn_index_t c, const double* x, double* out, double* idx,
                          double cell)
    void fnn_pool_route_f32(fnn_index_t c, const float* g, const float* idx, float* dx,
                            float cell)
    void fnn_pool_route_f64(fnn_index_t c, const double* g, const double* idx, double* dx,
                            double cell)
