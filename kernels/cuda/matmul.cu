// CUDA matmul, linear and grouped linear through cuBLASLt (cublasLtMatmul on the context's stream).
//
// Layout. Tensors are row-major, cuBLASLt is column-major. A row-major C (m, n) = op(A)·op(B) is
// the column-major Cᵀ (n, m) = op(B)ᵀ·op(A)ᵀ, and a row-major (r, c) matrix is the column-major (c,
// r) one with the same leading dim, so every call passes our B as cuBLASLt's A and our A as its B,
// with the same transpose flags and (m, n) swapped. Batched 3-D products are strided batches
// (CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT / STRIDED_BATCH_OFFSET).
//
// Precision (the CPU reference's): bf16/f16 operands with CUBLAS_COMPUTE_32F (fp32 accumulation,
// one rounding of alpha·acc + beta·C to the output); f32 as true fp32 (CUBLAS_COMPUTE_32F, never
// TF32); f64 with CUBLAS_COMPUTE_64F. For bf16/f16 outputs split-K algorithms may only keep their
// partial sums in the compute type (CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE), never in bf16/f16.
// Dtype mixes cuBLASLt has no kernel for (a bf16 with b f32, f16 inputs into a bf16 output, ...)
// are upcast to f32 scratch first and rounded back, as the CPU reference does.
// beta = 0 never reads C (cuBLASLt's contract; the GPU tests poison C with NaN).
//
// Per-context state (Context::backend_state(BackendSlot::blas)): the cuBLASLt handle, a 32 MiB
// workspace (cudaMalloc'd once), CUDA events for tuning, and a cache of plans (descriptors, layouts
// and the chosen algorithm) keyed by the column-major problem: dims, leading dims, batch and
// strides, transposes, dtypes, epilogue and the pointer alignments the heuristic depends on. The
// first use in a context creates the handle and workspace (cudaMalloc), so it must not happen
// while the stream is being captured into a CUDA graph.
//
// Algorithm choice. By default every plan uses cuBLASLt's first heuristic choice
// (cublasLtMatmulAlgoGetHeuristic, one result): a pure function of the problem (shape, dtypes,
// epilogue, pointer alignment up to 256 bytes, which for r1kit's 256-byte aligned allocations
// depends only on view offsets), the cuBLASLt version and the GPU model (architecture and SM
// count), so the same step computes the same bits in every process (bit-exact resume). cuBLASLt's
// kernels are deterministic for a fixed algorithm (split-K partial sums are reduced in a fixed
// order), so results are reproducible. R1KIT_GEMM_AUTOTUNE=1 in the environment (read when a
// context first uses cuBLASLt) turns on timing: for products of at least kTuneFlops (2·m·n·k·batch)
// the top kTuneCandidates are timed once per plan on first use (events on the context's stream, on
// the call's own operands; into a scratch output when beta != 0 so C is not accumulated more than
// once; with beta = 0 the runs rewrite the same output, which the real call then writes again) and
// heuristic #0 is kept unless another is at least 2% faster. Each timing waits for the stream (a
// host round trip per new plan; grouped GEMMs make one plan per distinct expert size). A problem
// keeps its algorithm for the life of the context, also across plan-cache clears; one first seen
// while the stream is being captured into a CUDA graph is not timed and keeps heuristic #0. A tuned
// choice depends on timings and can differ between processes, and with it the result bits: leave
// tuning off for runs that must resume bit-exactly. The cache holds at most kMaxPlans plans; when
// full it is cleared and refilled.
//
// Linear: the bias goes through CUBLASLT_EPILOGUE_BIAS (bias dtype = output dtype, not f64); other
// cases write the bias into y first and run the GEMM with beta = 1, as the CPU reference does.
// dbias += Σ_rows dy is a deterministic two-pass column sum (fixed chunks of rows, fixed order).
#include <cublasLt.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/matmul.h"

namespace r1kit::kernels::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr double kTuneFlops = 1e10;
constexpr int kTuneCandidates = 16;
constexpr int kTuneReps = 3;
constexpr size_t kMaxPlans = 4096;
constexpr int64_t kMax32 = std::numeric_limits<int32_t>::max();  // cuBLASLt dims and batch count

// ---- errors -------------------------------------------------------------------------------------

[[noreturn]] void throw_cublas(cublasStatus_t s, const char* expr, const char* op,
                               const std::string& problem, const char* file, int line) {
  R1_THROW("[{}] cuBLASLt call {} failed: {} (status {}) for {} ({}:{})", op, expr,
           cublasLtGetStatusString(s), static_cast<int>(s), problem, file, line);
}

// Checks a cuBLASLt status; `problem` (a std::string expression naming the shapes) is evaluated
// only on failure.
#define R1_LT_CHECK(expr, op, problem)                                     \
  do {                                                                     \
    cublasStatus_t r1_lt_st_ = (expr);                                     \
    if (r1_lt_st_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                   \
      throw_cublas(r1_lt_st_, #expr, (op), (problem), __FILE__, __LINE__); \
  } while (0)

// ---- the problem, row-major ---------------------------------------------------------------------

// Row-major C (m, n) = alpha·op(A)·op(B) + beta·C (+ bias broadcast over rows), batch entries at
// element strides sa, sb, sc. A is stored (m, k), or (k, m) when ta; B (k, n), or (n, k) when tb;
// all dense (leading dim = stored row length).
struct Gemm {
  const char* op = "matmul";
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  const void* a = nullptr;
  DType at = DType::f32;
  int64_t sa = 0;
  const void* b = nullptr;
  DType bt = DType::f32;
  int64_t sb = 0;
  void* c = nullptr;
  DType ct = DType::f32;
  int64_t sc = 0;
  double alpha = 1.0, beta = 0.0;
  const void* bias = nullptr;  // (n), or nullptr
  DType biast = DType::f32;

  std::string describe() const {
    std::ostringstream os;
    os << "op(a) (" << m << ", " << k << ") x op(b) (" << k << ", " << n << ") -> c (" << m << ", "
       << n << ")";
    if (batch != 1) os << " x batch " << batch;
    os << ", trans_a " << ta << ", trans_b " << tb << ", dtypes a " << dtype_name(at) << " b "
       << dtype_name(bt) << " c " << dtype_name(ct);
    if (bias) os << ", bias " << dtype_name(biast);
    return os.str();
  }
  double flops() const {
    return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) *
           static_cast<double>(batch);
  }
};

void* offset_ptr(void* p, int64_t elems, DType t) {
  return static_cast<char*>(p) + elems * static_cast<int64_t>(dtype_size(t));
}

// Elements spanned by a batch of (rows x cols) blocks at stride s.
int64_t span(int64_t batch, int64_t s, int64_t rows, int64_t cols) {
  return (batch - 1) * s + rows * cols;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f64:
      return CUDA_R_64F;
    case DType::f32:
      return CUDA_R_32F;
    case DType::bf16:
      return CUDA_R_16BF;
    case DType::f16:
      return CUDA_R_16F;
    default:
      R1_THROW("[matmul] unsupported dtype {} on CUDA", dtype_name(t));
  }
}

// The largest power of two (at most 256) dividing the address and, for batches, the batch stride.
int64_t alignment(const void* p, int64_t batch, int64_t stride_elems, DType t) {
  uint64_t v = reinterpret_cast<uint64_t>(p) | 256u;
  if (batch > 1) v |= static_cast<uint64_t>(stride_elems) * dtype_size(t);
  return static_cast<int64_t>(v & (~v + 1));
}

// Input/output dtype combinations cuBLASLt computes directly.
bool native(DType a, DType b, DType c) {
  if (a != b) return false;
  if (a == DType::f64) return c == DType::f64;
  if (a == DType::f32) return c == DType::f32;
  return c == a || c == DType::f32;  // bf16/f16 operands into the same type or f32
}

// ---- small kernels ------------------------------------------------------------------------------

template <class S, class D>
__global__ void cast_kernel(D* dst, const S* src, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = from_acc<D>(to_acc(src[i]));
}

void cast(Context& ctx, void* dst, DType dt, const void* src, DType st, int64_t n) {
  if (n == 0) return;
  const unsigned blocks = grid_for(ctx, n, 256);
  dispatch_float(st, "matmul", [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_float(dt, "matmul", [&](auto d_tag) {
      using D = decltype(d_tag);
      cast_kernel<S, D>
          <<<blocks, 256, 0, stream_of(ctx)>>>(static_cast<D*>(dst), static_cast<const S*>(src), n);
      R1_CUDA_CHECK_LAUNCH();
    });
  });
}

// c[i, j] = beta·c[i, j] (0 when beta = 0: c is not read) + bias[j] over `total` contiguous
// elements of rows of n; bias may be null.
template <class C, class B>
__global__ void scale_bias_kernel(C* c, int64_t total, int64_t n, acc_t<C> beta, const B* bias) {
  using A = acc_t<C>;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    A v = beta == A(0) ? A(0) : beta * to_acc(c[i]);
    if (bias != nullptr) v += static_cast<A>(to_acc(bias[i % n]));
    c[i] = from_acc<C>(v);
  }
}

// C = beta·C + bias over the whole (contiguous) batch of outputs.
void scale_bias(Context& ctx, const Gemm& g, double beta, const void* bias) {
  const int64_t total = span(g.batch, g.sc, g.m, g.n);
  if (total == 0) return;
  const unsigned blocks = grid_for(ctx, total, 256);
  dispatch_float(g.ct, g.op, [&](auto c_tag) {
    using C = decltype(c_tag);
    dispatch_float(bias ? g.biast : g.ct, g.op, [&](auto b_tag) {
      using B = decltype(b_tag);
      scale_bias_kernel<C, B><<<blocks, 256, 0, stream_of(ctx)>>>(static_cast<C*>(g.c), total, g.n,
                                                                  static_cast<acc_t<C>>(beta),
                                                                  static_cast<const B*>(bias));
      R1_CUDA_CHECK_LAUNCH();
    });
  });
}

// ---- per-context state --------------------------------------------------------------------------

using PlanKey = std::array<int64_t, 22>;

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t v : k) {
      h ^= static_cast<uint64_t>(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
      h *= 0x100000001b3ull;
    }
    return static_cast<size_t>(h);
  }
};

// A heuristic result in a named struct (nvcc 13 fails on std::vector of the anonymous typedef).
struct Candidate {
  cublasLtMatmulHeuristicResult_t r;
};

// Descriptors, layouts and the chosen algorithm of one column-major problem.
struct Plan {
  PlanKey key{};
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  std::vector<Candidate> candidates;  // heuristic order
  int chosen = 0;
  bool tuned = false;  // timed, or not worth timing

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
  bool has_algo() const { return !candidates.empty(); }
  const cublasLtMatmulAlgo_t& algo() const { return candidates[chosen].r.algo; }
};

struct BlasState {
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  bool autotune = false;  // R1KIT_GEMM_AUTOTUNE=1
  std::array<cudaEvent_t, kTuneReps + 1> events{};
  std::unordered_map<PlanKey, Plan, PlanKeyHash> plans;
  // The algorithm each tuned problem settled on; survives plan-cache clears, so a problem never
  // changes algorithm (and result bits) within the context.
  std::unordered_map<PlanKey, Candidate, PlanKeyHash> tuned_choice;

  BlasState() = default;
  BlasState(const BlasState&) = delete;
  BlasState& operator=(const BlasState&) = delete;
  ~BlasState() {  // runs after the context's stream is drained; no throwing here
    plans.clear();
    for (cudaEvent_t e : events)
      if (e) cudaEventDestroy(e);
    if (workspace) cudaFree(workspace);
    if (lt) cublasLtDestroy(lt);
  }
};

BlasState& blas_state(Context& ctx) {
  if (void* p = ctx.backend_state(BackendSlot::blas)) return *static_cast<BlasState*>(p);
  auto s = std::make_unique<BlasState>();
  R1_CUDA_CHECK(cudaSetDevice(ctx.device().index));
  R1_LT_CHECK(cublasLtCreate(&s->lt), "matmul", std::string("creating the cuBLASLt handle"));
  R1_CUDA_CHECK(cudaMalloc(&s->workspace, kWorkspaceBytes));
  for (cudaEvent_t& e : s->events) R1_CUDA_CHECK(cudaEventCreate(&e));
  // Off unless set to something other than "" or "0" (documented value: 1).
  const char* env = std::getenv("R1KIT_GEMM_AUTOTUNE");
  s->autotune = env != nullptr && env[0] != '\0' && std::strcmp(env, "0") != 0;
  BlasState* raw = s.release();
  ctx.set_backend_state(BackendSlot::blas, raw, [](void* q) { delete static_cast<BlasState*>(q); });
  return *raw;
}

// ---- cuBLASLt calls -----------------------------------------------------------------------------

// The column-major operands of a row-major Gemm (see the top of the file).
struct ColMajor {
  cublasOperation_t opa, opb;
  int64_t m, n, k;
  const void* A;  // our b
  DType at;
  int64_t a_rows, a_cols, sa;
  const void* B;  // our a
  DType bt;
  int64_t b_rows, b_cols, sb;
  int64_t sc;
};

ColMajor col_major(const Gemm& g) {
  ColMajor c{};
  c.opa = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  c.opb = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  c.m = g.n;
  c.n = g.m;
  c.k = g.k;
  c.A = g.b;
  c.at = g.bt;
  c.a_rows = g.tb ? g.k : g.n;
  c.a_cols = g.tb ? g.n : g.k;
  c.sa = g.sb;
  c.B = g.a;
  c.bt = g.at;
  c.b_rows = g.ta ? g.m : g.k;
  c.b_cols = g.ta ? g.k : g.m;
  c.sb = g.sa;
  c.sc = g.sc;
  return c;
}

cublasLtMatrixLayout_t make_layout(const Gemm& g, DType t, int64_t rows, int64_t cols,
                                   int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  R1_LT_CHECK(cublasLtMatrixLayoutCreate(&l, cuda_type(t), static_cast<uint64_t>(rows),
                                         static_cast<uint64_t>(cols), std::max<int64_t>(rows, 1)),
              g.op, g.describe());
  if (g.batch > 1) {
    const int32_t count = static_cast<int32_t>(g.batch);
    R1_LT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                 sizeof(count)),
                g.op, g.describe());
    R1_LT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                 &stride, sizeof(stride)),
                g.op, g.describe());
  }
  return l;
}

struct Scalars {
  float f[2];
  double d[2];
  const void* alpha(bool f64) const { return f64 ? static_cast<const void*>(&d[0]) : &f[0]; }
  const void* beta(bool f64) const { return f64 ? static_cast<const void*>(&d[1]) : &f[1]; }
};

cublasStatus_t launch(BlasState& st, const Plan& p, const cublasLtMatmulAlgo_t& algo,
                      const ColMajor& cm, const Gemm& g, void* d, cudaStream_t stream) {
  Scalars s{{static_cast<float>(g.alpha), static_cast<float>(g.beta)}, {g.alpha, g.beta}};
  const bool f64 = g.ct == DType::f64;
  return cublasLtMatmul(st.lt, p.desc, s.alpha(f64), cm.A, p.la, cm.B, p.lb, s.beta(f64), g.c, p.lc,
                        d, p.lc, &algo, st.workspace, kWorkspaceBytes, stream);
}

// Times the first kTuneCandidates candidates on the call's operands and keeps the fastest; the
// choice is recorded for the life of the context (BlasState::tuned_choice).
void tune(Context& ctx, BlasState& st, Plan& p, const ColMajor& cm, const Gemm& g) {
  cudaStream_t stream = stream_of(ctx);
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  R1_CUDA_CHECK(cudaStreamIsCapturing(stream, &cap));
  p.tuned = true;
  p.chosen = 0;
  // Being captured: no timing; heuristic #0 for good, so graph replays and later eager calls of
  // this problem use the same algorithm.
  if (cap != cudaStreamCaptureStatusNone || p.candidates.size() < 2) {
    st.tuned_choice.insert_or_assign(p.key, p.candidates[0]);
    return;
  }
  // beta = 0: every run writes the same D, which the real call then writes again. beta != 0:
  // runs must not accumulate into C, so they write a scratch D (C stays an input).
  Tensor scratch;
  void* d = g.c;
  if (g.beta != 0) {
    scratch = ctx.empty({span(g.batch, g.sc, g.m, g.n)}, g.ct);
    d = scratch.data();
  }
  std::vector<float> best_ms(p.candidates.size(), std::numeric_limits<float>::infinity());
  for (size_t i = 0; i < p.candidates.size(); ++i) {
    const cublasLtMatmulAlgo_t& algo = p.candidates[i].r.algo;
    if (launch(st, p, algo, cm, g, d, stream) != CUBLAS_STATUS_SUCCESS) continue;  // warm-up
    bool ok = true;
    R1_CUDA_CHECK(cudaEventRecord(st.events[0], stream));
    for (int r = 0; r < kTuneReps && ok; ++r) {
      ok = launch(st, p, algo, cm, g, d, stream) == CUBLAS_STATUS_SUCCESS;
      R1_CUDA_CHECK(cudaEventRecord(st.events[r + 1], stream));
    }
    R1_CUDA_CHECK(cudaEventSynchronize(st.events[kTuneReps]));
    if (!ok) continue;
    std::array<float, kTuneReps> t{};
    for (int r = 0; r < kTuneReps; ++r)
      R1_CUDA_CHECK(cudaEventElapsedTime(&t[r], st.events[r], st.events[r + 1]));
    std::sort(t.begin(), t.end());
    best_ms[i] = t[kTuneReps / 2];  // median
  }
  const size_t fastest =
      static_cast<size_t>(std::min_element(best_ms.begin(), best_ms.end()) - best_ms.begin());
  // Keep the heuristic's first choice unless another is clearly faster.
  p.chosen = best_ms[0] <= 1.02f * best_ms[fastest] ? 0 : static_cast<int>(fastest);
  st.tuned_choice.insert_or_assign(p.key, p.candidates[p.chosen]);
}

// The plan of a natively supported problem; bias (when set) selects the bias epilogue.
Plan& plan_for(Context& ctx, BlasState& st, const ColMajor& cm, const Gemm& g) {
  const bool f64 = g.ct == DType::f64;
  const int64_t align_a = alignment(cm.A, g.batch, cm.sa, cm.at);
  const int64_t align_b = alignment(cm.B, g.batch, cm.sb, cm.bt);
  const int64_t align_c = alignment(g.c, g.batch, cm.sc, g.ct);
  const int64_t align_bias = g.bias ? alignment(g.bias, 1, 0, g.biast) : 0;
  const PlanKey key{cm.m,
                    cm.n,
                    cm.k,
                    g.batch,
                    cm.a_rows,
                    cm.a_cols,
                    cm.b_rows,
                    cm.b_cols,
                    cm.sa,
                    cm.sb,
                    cm.sc,
                    static_cast<int64_t>(cm.opa),
                    static_cast<int64_t>(cm.opb),
                    static_cast<int64_t>(cm.at),
                    static_cast<int64_t>(cm.bt),
                    static_cast<int64_t>(g.ct),
                    g.bias ? 1 + static_cast<int64_t>(g.biast) : 0,
                    align_a,
                    align_b,
                    align_c,
                    align_bias,
                    0};
  auto it = st.plans.find(key);
  if (it != st.plans.end()) return it->second;
  if (st.plans.size() >= kMaxPlans) st.plans.clear();
  Plan& p = st.plans.try_emplace(key).first->second;
  p.key = key;
  try {
    const cublasComputeType_t compute = f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
    const cudaDataType_t scale = f64 ? CUDA_R_64F : CUDA_R_32F;
    R1_LT_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, scale), g.op, g.describe());
    R1_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &cm.opa,
                                               sizeof(cm.opa)),
                g.op, g.describe());
    R1_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &cm.opb,
                                               sizeof(cm.opb)),
                g.op, g.describe());
    if (g.bias) {
      const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
      const int32_t bias_type = static_cast<int32_t>(cuda_type(g.biast));
      R1_LT_CHECK(
          cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)),
          g.op, g.describe());
      R1_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                 &bias_type, sizeof(bias_type)),
                  g.op, g.describe());
      // The heuristic reads the pointer's alignment; each call sets its own pointer again.
      R1_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias,
                                                 sizeof(g.bias)),
                  g.op, g.describe());
    }
    p.la = make_layout(g, cm.at, cm.a_rows, cm.a_cols, cm.sa);
    p.lb = make_layout(g, cm.bt, cm.b_rows, cm.b_cols, cm.sb);
    p.lc = make_layout(g, g.ct, cm.m, cm.n, cm.sc);

    cublasLtMatmulPreference_t pref = nullptr;
    R1_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref), g.op, g.describe());
    std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>,
                    decltype(&cublasLtMatmulPreferenceDestroy)>
        pref_guard(pref, &cublasLtMatmulPreferenceDestroy);
    const uint64_t ws = kWorkspaceBytes;
    R1_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &ws, sizeof(ws)),
                g.op, g.describe());
    const uint32_t aligns[4] = {static_cast<uint32_t>(align_a), static_cast<uint32_t>(align_b),
                                static_cast<uint32_t>(align_c), static_cast<uint32_t>(align_c)};
    const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; ++i)
      R1_LT_CHECK(
          cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &aligns[i], sizeof(aligns[i])),
          g.op, g.describe());
    if (g.ct == DType::bf16 || g.ct == DType::f16) {
      // Split-K partial sums in fp32 only, never rounded to the 16-bit output type in between.
      const uint32_t mask = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
      R1_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
                      pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &mask, sizeof(mask)),
                  g.op, g.describe());
    }
    const bool want_tuning = st.autotune && g.flops() >= kTuneFlops;
    if (want_tuning) {  // tuned before (the plan cache was cleared since): the same algorithm
      auto t = st.tuned_choice.find(key);
      if (t != st.tuned_choice.end()) {
        p.candidates.push_back(t->second);
        p.tuned = true;
        return p;
      }
    }
    cublasLtMatmulHeuristicResult_t res[kTuneCandidates];
    int returned = 0;
    const cublasStatus_t hs =
        cublasLtMatmulAlgoGetHeuristic(st.lt, p.desc, p.la, p.lb, p.lc, p.lc, pref,
                                       want_tuning ? kTuneCandidates : 1, res, &returned);
    // NOT_SUPPORTED: no algorithm for this problem (the caller falls back or says so).
    if (hs != CUBLAS_STATUS_NOT_SUPPORTED) R1_LT_CHECK(hs, g.op, g.describe());
    for (int i = 0; i < returned; ++i)
      if (res[i].state == CUBLAS_STATUS_SUCCESS && res[i].workspaceSize <= kWorkspaceBytes)
        p.candidates.push_back(Candidate{res[i]});
    p.tuned = !want_tuning || p.candidates.empty();
  } catch (...) {
    st.plans.erase(key);
    throw;
  }
  return p;
}

void run_native(Context& ctx, const Gemm& g, bool may_realign = true);

// The bias epilogue is not available: C = beta·C + bias first, then the GEMM with beta = 1.
void run_bias_separately(Context& ctx, const Gemm& g) {
  scale_bias(ctx, g, g.beta, g.bias);
  Gemm h = g;
  h.beta = 1.0;
  h.bias = nullptr;
  run_native(ctx, h);
}

// No algorithm for these pointer alignments: the same problem on fresh (256-byte aligned) copies
// of the operands, and the result copied back.
void run_realigned(Context& ctx, const Gemm& g) {
  cudaStream_t stream = stream_of(ctx);
  const int64_t na = span(g.batch, g.sa, g.m, g.k), nb = span(g.batch, g.sb, g.k, g.n);
  const int64_t nc = span(g.batch, g.sc, g.m, g.n);
  Tensor a = ctx.empty({na}, g.at), b = ctx.empty({nb}, g.bt), c = ctx.empty({nc}, g.ct);
  R1_CUDA_CHECK(cudaMemcpyAsync(a.data(), g.a, a.nbytes(), cudaMemcpyDeviceToDevice, stream));
  R1_CUDA_CHECK(cudaMemcpyAsync(b.data(), g.b, b.nbytes(), cudaMemcpyDeviceToDevice, stream));
  if (g.beta != 0)
    R1_CUDA_CHECK(cudaMemcpyAsync(c.data(), g.c, c.nbytes(), cudaMemcpyDeviceToDevice, stream));
  Gemm h = g;
  h.a = a.data();
  h.b = b.data();
  h.c = c.data();
  run_native(ctx, h, false);
  R1_CUDA_CHECK(cudaMemcpyAsync(g.c, c.data(), c.nbytes(), cudaMemcpyDeviceToDevice, stream));
}

// A problem whose dtypes cuBLASLt computes directly (native()), with a bias of the output dtype.
void run_native(Context& ctx, const Gemm& g, bool may_realign) {
  if (g.bias && g.ct == DType::f64) return run_bias_separately(ctx, g);
  BlasState& st = blas_state(ctx);
  const ColMajor cm = col_major(g);
  Plan& p = plan_for(ctx, st, cm, g);
  if (!p.has_algo()) {
    if (g.bias) return run_bias_separately(ctx, g);
    if (may_realign &&
        std::min({alignment(g.a, g.batch, g.sa, g.at), alignment(g.b, g.batch, g.sb, g.bt),
                  alignment(g.c, g.batch, g.sc, g.ct)}) < 256)
      return run_realigned(ctx, g);
    R1_THROW("[{}] cuBLASLt offers no algorithm for {}", g.op, g.describe());
  }
  if (g.bias)
    R1_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias,
                                               sizeof(g.bias)),
                g.op, g.describe());
  if (!p.tuned) tune(ctx, st, p, cm, g);
  R1_LT_CHECK(launch(st, p, p.algo(), cm, g, g.c, stream_of(ctx)), g.op, g.describe());
}

// Any float dtypes (f64 never mixed with others: the front-ends check it).
void run(Context& ctx, const Gemm& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.m > kMax32 || g.n > kMax32 || g.k > kMax32 || g.batch > kMax32)
    R1_THROW("[{}] {} has a dim or batch count beyond cuBLASLt's 32-bit range; split it", g.op,
             g.describe());
  if (g.k == 0) {  // C = beta·C (+ bias); nothing to do for beta = 1 without a bias
    if (g.beta != 1.0 || g.bias) scale_bias(ctx, g, g.beta, g.bias);
    return;
  }
  if (native(g.at, g.bt, g.ct) && (!g.bias || g.biast == g.ct)) return run_native(ctx, g);
  // Upcast every non-f32 operand to f32 scratch, compute in f32, round the result back.
  Gemm h = g;
  Tensor a32, b32, c32, bias32;
  const int64_t na = span(g.batch, g.sa, g.m, g.k), nb = span(g.batch, g.sb, g.k, g.n);
  const int64_t nc = span(g.batch, g.sc, g.m, g.n);
  if (g.at != DType::f32) {
    a32 = ctx.empty({na}, DType::f32);
    cast(ctx, a32.data(), DType::f32, g.a, g.at, na);
    h.a = a32.data();
    h.at = DType::f32;
  }
  if (g.bt != DType::f32) {
    b32 = ctx.empty({nb}, DType::f32);
    cast(ctx, b32.data(), DType::f32, g.b, g.bt, nb);
    h.b = b32.data();
    h.bt = DType::f32;
  }
  if (g.ct != DType::f32) {
    c32 = ctx.empty({nc}, DType::f32);
    if (g.beta != 0) cast(ctx, c32.data(), DType::f32, g.c, g.ct, nc);
    h.c = c32.data();
    h.ct = DType::f32;
  }
  if (g.bias && g.biast != DType::f32) {
    bias32 = ctx.empty({g.n}, DType::f32);
    cast(ctx, bias32.data(), DType::f32, g.bias, g.biast, g.n);
    h.bias = bias32.data();
    h.biast = DType::f32;
  }
  run_native(ctx, h);
  if (g.ct != DType::f32) cast(ctx, g.c, g.ct, c32.data(), DType::f32, nc);
}

// ---- dbias: deterministic column sums -----------------------------------------------------------

constexpr int kSumRowsPerBlock = 8;  // threadIdx.y

// Block (32, 8): each thread sums V adjacent columns over the rows of its chunk that are ≡
// threadIdx.y (mod 8), in order; the block adds the 8 partial sums in order. kFinal: one chunk,
// dbias += sum; else partial[chunk, col] = sum.
template <class T, class TB, int V, bool kFinal>
__global__ void __launch_bounds__(256)
    colsum_kernel(const T* __restrict__ dy, int64_t rows, int64_t cols, int64_t rows_per_chunk,
                  acc_t<T>* __restrict__ partial, TB* __restrict__ dbias) {
  using A = acc_t<T>;
  __shared__ A sm[kSumRowsPerBlock][V][32];
  const int64_t col0 = (static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x) * V;
  const int64_t r_begin = static_cast<int64_t>(blockIdx.y) * rows_per_chunk;
  const int64_t r_end = r_begin + rows_per_chunk < rows ? r_begin + rows_per_chunk : rows;
  A acc[V];
#pragma unroll
  for (int v = 0; v < V; ++v) acc[v] = A(0);
  if (col0 < cols) {
    for (int64_t r = r_begin + threadIdx.y; r < r_end; r += kSumRowsPerBlock) {
      const T* p = dy + r * cols + col0;
      if constexpr (V > 1) {
        const Pack<T> pk = load_pack(p);
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] += to_acc(pk.v[v]);
      } else {
        acc[0] += to_acc(*p);
      }
    }
  }
#pragma unroll
  for (int v = 0; v < V; ++v) sm[threadIdx.y][v][threadIdx.x] = acc[v];
  __syncthreads();
  if (threadIdx.y != 0 || col0 >= cols) return;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    A s = A(0);
#pragma unroll
    for (int y = 0; y < kSumRowsPerBlock; ++y) s += sm[y][v][threadIdx.x];
    if constexpr (kFinal) {
      dbias[col0 + v] = from_acc<TB>(static_cast<A>(to_acc(dbias[col0 + v])) + s);
    } else {
      partial[static_cast<int64_t>(blockIdx.y) * cols + col0 + v] = s;
    }
  }
}

// dbias[col] += Σ_chunk partial[chunk, col], chunks in order.
template <class A, class TB>
__global__ void colsum_finish_kernel(const A* __restrict__ partial, int64_t chunks, int64_t cols,
                                     TB* __restrict__ dbias) {
  for (int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; col < cols;
       col += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    A s = A(0);
    for (int64_t c = 0; c < chunks; ++c) s += partial[c * cols + col];
    dbias[col] = from_acc<TB>(static_cast<A>(to_acc(dbias[col])) + s);
  }
}

template <class T, class TB, int V>
void colsum_launch(Context& ctx, const T* dy, int64_t rows, int64_t cols, TB* dbias) {
  using A = acc_t<T>;
  // Chunks depend on the shape only (not the device), so results are the same everywhere.
  int64_t rpc = std::max<int64_t>(64, (rows + 511) / 512);
  rpc = (rpc + kSumRowsPerBlock - 1) / kSumRowsPerBlock * kSumRowsPerBlock;
  const int64_t chunks = (rows + rpc - 1) / rpc;
  const dim3 block(32, kSumRowsPerBlock);
  const dim3 grid(static_cast<unsigned>((cols + 32 * V - 1) / (32 * V)),
                  static_cast<unsigned>(chunks));
  cudaStream_t stream = stream_of(ctx);
  if (chunks == 1) {
    colsum_kernel<T, TB, V, true><<<grid, block, 0, stream>>>(dy, rows, cols, rpc, nullptr, dbias);
    R1_CUDA_CHECK_LAUNCH();
    return;
  }
  Tensor partial = ctx.empty({chunks * cols}, std::is_same_v<A, double> ? DType::f64 : DType::f32);
  colsum_kernel<T, TB, V, false>
      <<<grid, block, 0, stream>>>(dy, rows, cols, rpc, partial.ptr<A>(), dbias);
  R1_CUDA_CHECK_LAUNCH();
  colsum_finish_kernel<A, TB>
      <<<grid_for(ctx, cols, 256), 256, 0, stream>>>(partial.ptr<A>(), chunks, cols, dbias);
  R1_CUDA_CHECK_LAUNCH();
}

// dbias (cols) += Σ_rows dy (rows, cols).
void column_sum_into(Context& ctx, const TensorView& dbias, const TensorView& dy) {
  const int64_t rows = dy.shape[0], cols = dy.shape[1];
  if (rows == 0 || cols == 0) return;
  dispatch_float(dy.dtype, "linear_backward", [&](auto t_tag) {
    using T = decltype(t_tag);
    dispatch_float(dbias.dtype, "linear_backward", [&](auto b_tag) {
      using TB = decltype(b_tag);
      const T* p = dy.ptr<T>();
      if (cols % kPack<T> == 0 && aligned16(p)) {
        colsum_launch<T, TB, kPack<T>>(ctx, p, rows, cols, dbias.ptr<TB>());
      } else {
        colsum_launch<T, TB, 1>(ctx, p, rows, cols, dbias.ptr<TB>());
      }
    });
  });
}

// ---- helpers for the entry points ---------------------------------------------------------------

int64_t batch_of(const TensorView& v) {
  return v.ndim == 3 ? v.shape[0] : 1;
}
int64_t batch_stride(const TensorView& v) {
  return v.ndim == 3 ? v.stride[0] : 0;
}

Gemm make_gemm(const char* op, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
               const TensorView& a, const TensorView& b, const TensorView& c, double alpha,
               double beta) {
  Gemm g;
  g.op = op;
  g.ta = ta;
  g.tb = tb;
  g.m = m;
  g.n = n;
  g.k = k;
  g.batch = batch_of(c);
  g.a = a.data;
  g.at = a.dtype;
  g.sa = batch_stride(a);
  g.b = b.data;
  g.bt = b.dtype;
  g.sb = batch_stride(b);
  g.c = c.data;
  g.ct = c.dtype;
  g.sc = batch_stride(c);
  g.alpha = alpha;
  g.beta = beta;
  return g;
}

}  // namespace

void matmul_forward(const TensorView& c, const TensorView& a, const TensorView& b,
                    const MatmulOptions& opts, Context& ctx) {
  const int r = a.ndim - 2;
  const int64_t m = c.shape[r], n = c.shape[r + 1];
  const int64_t k = opts.trans_a ? a.shape[r] : a.shape[r + 1];
  run(ctx,
      make_gemm("matmul", opts.trans_a, opts.trans_b, m, n, k, a, b, c, opts.alpha, opts.beta));
}

void matmul_backward(const TensorView& da, const TensorView& db, const TensorView& dc,
                     const TensorView& a, const TensorView& b, const MatmulOptions& opts,
                     GradWrite da_write, GradWrite db_write, Context& ctx) {
  const int r = a.ndim - 2;
  const int64_t m = dc.shape[r], n = dc.shape[r + 1];
  const int64_t k = opts.trans_a ? a.shape[r] : a.shape[r + 1];
  const bool ta = opts.trans_a, tb = opts.trans_b;
  const char* op = "matmul_backward";
  if (da.defined()) {
    const double beta = da_write == GradWrite::accumulate ? 1.0 : 0.0;
    // dA (M, K) = alpha·dC·op(B)ᵀ;  transposed A: dA (K, M) = alpha·op(B)·dCᵀ
    run(ctx, !ta ? make_gemm(op, false, !tb, m, k, n, dc, b, da, opts.alpha, beta)
                 : make_gemm(op, tb, true, k, m, n, b, dc, da, opts.alpha, beta));
  }
  if (db.defined()) {
    const double beta = db_write == GradWrite::accumulate ? 1.0 : 0.0;
    // dB (K, N) = alpha·op(A)ᵀ·dC;  transposed B: dB (N, K) = alpha·dCᵀ·op(A)
    run(ctx, !tb ? make_gemm(op, !ta, false, k, n, m, a, dc, db, opts.alpha, beta)
                 : make_gemm(op, true, ta, n, k, m, dc, a, db, opts.alpha, beta));
  }
}

void linear_forward(const TensorView& y, const TensorView& x, const TensorView& w,
                    const TensorView& bias, Context& ctx) {
  const int64_t n = x.shape[0], ch = x.shape[1], oc = w.shape[0];
  Gemm g = make_gemm("linear", false, true, n, oc, ch, x, w, y, 1.0, 0.0);
  if (bias.defined()) {
    g.bias = bias.data;
    g.biast = bias.dtype;
  }
  run(ctx, g);
}

void linear_backward(const TensorView& dx, const TensorView& dw, const TensorView& dbias,
                     const TensorView& dy, const TensorView& x, const TensorView& w,
                     GradWrite dx_write, Context& ctx) {
  const int64_t n = x.shape[0], ch = x.shape[1], oc = w.shape[0];
  const char* op = "linear_backward";
  // dx (N, C) = dy (N, OC) · w (OC, C)
  if (dx.defined())
    run(ctx, make_gemm(op, false, false, n, ch, oc, dy, w, dx, 1.0,
                       dx_write == GradWrite::accumulate ? 1.0 : 0.0));
  // dw (OC, C) += dyᵀ (OC, N) · x (N, C)
  if (dw.defined()) run(ctx, make_gemm(op, true, false, oc, ch, n, dy, x, dw, 1.0, 1.0));
  // dbias (OC) += Σ_n dy[n, :]
  if (dbias.defined()) column_sum_into(ctx, dbias, dy);
}

void grouped_linear_forward(const TensorView& y, const TensorView& x, const TensorView& w,
                            const TensorView& expert_offsets, Context& ctx) {
  const int64_t ch = x.shape[1], e = w.shape[0], oc = w.shape[1];
  const int32_t* off = expert_offsets.ptr<int32_t>();  // host (the front-end sees to it)
  for (int64_t g = 0; g < e; ++g) {
    const int64_t r0 = off[g], rows = off[g + 1] - off[g];
    if (rows == 0) continue;
    // y_e (m_e, OC) = x_e (m_e, C) · w_eᵀ
    Gemm gm = make_gemm("grouped_linear", false, true, rows, oc, ch, x, w, y, 1.0, 0.0);
    gm.batch = 1;
    gm.sa = gm.sb = gm.sc = 0;
    gm.a = offset_ptr(x.data, r0 * ch, x.dtype);
    gm.b = offset_ptr(w.data, g * oc * ch, w.dtype);
    gm.c = offset_ptr(y.data, r0 * oc, y.dtype);
    run(ctx, gm);
  }
}

void grouped_linear_backward(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                             const TensorView& x, const TensorView& w,
                             const TensorView& expert_offsets, Context& ctx) {
  const int64_t ch = x.shape[1], e = w.shape[0], oc = w.shape[1];
  const int32_t* off = expert_offsets.ptr<int32_t>();  // host (the front-end sees to it)
  const char* op = "grouped_linear_backward";
  for (int64_t g = 0; g < e; ++g) {
    const int64_t r0 = off[g], rows = off[g + 1] - off[g];
    if (rows == 0) continue;  // no rows of dx; dw[e] += 0
    const void* dyg = offset_ptr(dy.data, r0 * oc, dy.dtype);
    if (dx.defined()) {
      // dx_e (m_e, C) = dy_e (m_e, OC) · w_e (OC, C)
      Gemm gm = make_gemm(op, false, false, rows, ch, oc, dy, w, dx, 1.0, 0.0);
      gm.batch = 1;
      gm.sa = gm.sb = gm.sc = 0;
      gm.a = dyg;
      gm.b = offset_ptr(w.data, g * oc * ch, w.dtype);
      gm.c = offset_ptr(dx.data, r0 * ch, dx.dtype);
      run(ctx, gm);
    }
    if (dw.defined()) {
      // dw_e (OC, C) += dy_eᵀ (OC, m_e) · x_e (m_e, C)
      Gemm gm = make_gemm(op, true, false, oc, ch, rows, dy, x, dw, 1.0, 1.0);
      gm.batch = 1;
      gm.sa = gm.sb = gm.sc = 0;
      gm.a = dyg;
      gm.b = offset_ptr(x.data, r0 * ch, x.dtype);
      gm.c = offset_ptr(dw.data, g * oc * ch, dw.dtype);
      run(ctx, gm);
    }
  }
}

}  // namespace r1kit::kernels::cuda
