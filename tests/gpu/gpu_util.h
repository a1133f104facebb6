// Helpers for the GPU suites (ctest label `gpu`): the one-line skip when no GPU is present, host
// <-> device copies, NaN-poisoned outputs (so an element the kernel forgets to write fails), and
// the tolerance every CUDA-vs-CPU comparison uses, derived from the dtypes and the reduction
// length — never tuned per test.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/cuda_check.h"
#include "tests/common/test_util.h"

// Skips the test with one line saying why when this build or machine has no GPU.
#define R1_REQUIRE_GPU()                                                      \
  do {                                                                        \
    if (!::r1kit::cuda_available()) GTEST_SKIP() << ::r1kit::cuda_describe(); \
  } while (0)

namespace r1kit::testing {

// One CUDA context for the whole test process (created on first use).
inline Context& gpu_ctx() {
  static std::unique_ptr<Context> ctx = Context::cuda({.threads = 2, .seed = 7});
  return *ctx;
}

// A device copy of a host tensor (same shape, dtype and name).
inline Tensor to_device(const TensorView& host, Context& gpu = gpu_ctx()) {
  Tensor t = gpu.empty(host.dims(), host.dtype, host.name);
  gpu.copy(t, host);
  return t;
}

// A host copy of a device tensor (synchronises, so device-side errors surface here).
inline Tensor to_host(const TensorView& dev, Context& gpu = gpu_ctx()) {
  Tensor t = cpu_ctx().empty(dev.dims(), dev.dtype, dev.name);
  gpu.copy(t, dev);
  return t;
}

// A device tensor whose every byte is 0xFF: NaN for every float dtype, -1 for integers. Outputs
// start poisoned so that an element the kernel does not write shows up as NaN.
inline Tensor poisoned(const Shape& shape, DType dtype, const std::string& name = "out",
                       Context& gpu = gpu_ctx()) {
  Tensor t = gpu.empty(shape, dtype, name);
  Tensor host = cpu_ctx().empty(shape, dtype, name);
  if (host.nbytes() > 0) std::memset(host.data(), 0xFF, host.nbytes());
  gpu.copy(t, host);  // on the context's stream, so it is ordered with the kernels around it
  return t;
}

// The unit roundoff 2^-p of a float dtype (p = significand bits incl. the implicit one).
inline double unit_roundoff(DType t) {
  switch (t) {
    case DType::f64:
      return std::ldexp(1.0, -53);
    case DType::f32:
      return std::ldexp(1.0, -24);
    case DType::f16:
      return std::ldexp(1.0, -11);
    case DType::bf16:
      return std::ldexp(1.0, -8);
    default:
      return 0.0;
  }
}

// The normalised-error bound ‖gpu − cpu‖ / ‖cpu‖ for an output stored in `out` whose elements are
// reductions of `reduction_len` terms computed in `acc` (f32 for f32/bf16/f16 data, f64 for f64),
// where the GPU may round intermediates to `internal` (e.g. bf16 operands of a tensor-core product;
// the default, `acc`, means it does not):
//   2·u(out)              both sides round the same real number; a rounding boundary between the
//                         two may flip every element by one ulp of the output dtype
//   2·u(internal)         intermediates rounded once more on the GPU only
//   8·u(acc)·sqrt(K)      a different summation order (and a few ulps of exp/log) in the
//                         accumulator: the statistical bound for K terms with a safety factor
inline double tolerance(DType out, int64_t reduction_len, DType acc = DType::f32,
                        DType internal = DType::boolean) {
  const double k = static_cast<double>(std::max<int64_t>(reduction_len, 1));
  const double ui = internal == DType::boolean ? 0.0 : unit_roundoff(internal);
  return 2 * unit_roundoff(out) + 2 * ui + 8 * unit_roundoff(acc) * std::sqrt(k);
}

// Expects every element of the device tensor `got` to be finite where `want` (a host tensor, the
// CPU reference) is finite, and ‖got − want‖ / ‖want‖ < tol. NaN never passes.
inline void expect_close(const TensorView& got, const TensorView& want, double tol,
                         const std::string& what) {
  Tensor host = got.device.is_cpu() ? Tensor() : to_host(got);
  const TensorView& g = got.device.is_cpu() ? got : host.view();
  std::vector<double> a = to_double(g), b = to_double(want);
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i])) continue;
    if (std::isinf(b[i])) {
      ASSERT_EQ(a[i], b[i]) << what << ": element " << i << " (reference is infinite)";
      a[i] = b[i] = 0;
      continue;
    }
    ASSERT_TRUE(std::isfinite(a[i])) << what << ": element " << i << " is " << a[i]
                                     << " (reference " << b[i] << "): not written or overflowed";
  }
  const double err = normalized_error(a, b);
  EXPECT_LT(err, tol) << what << ": normalised error " << err << " >= tolerance " << tol;
}

// expect_close for outputs that are NaN where the reference is (e.g. a softmax row with no finite
// entry, which has no distribution): wherever the CPU reference `want` is NaN, `got` must be NaN
// too (the test stops otherwise), and those elements are then left out of the error; every other
// element is compared as expect_close does (which fails on any NaN in `got`).
inline void expect_close_nan_aware(const TensorView& got, const TensorView& want, double tol,
                                   const std::string& what) {
  Tensor host = to_host(got);
  auto a = to_double(host), b = to_double(want);
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < b.size(); ++i) {
    if (std::isnan(b[i])) {
      ASSERT_TRUE(std::isnan(a[i]))
          << what << ": element " << i << " is " << a[i] << " where the reference is NaN";
      a[i] = b[i] = 0;
    }
  }
  const int64_t len = static_cast<int64_t>(a.size());
  expect_close(tensor_from(cpu_ctx(), {len}, DType::f64, a, "got"),
               tensor_from(cpu_ctx(), {len}, DType::f64, b, "want"), tol, what);
}

// Exact equality of integer (or otherwise bit-exact) outputs.
inline void expect_equal(const TensorView& got, const TensorView& want, const std::string& what) {
  Tensor host = got.device.is_cpu() ? Tensor() : to_host(got);
  const TensorView& g = got.device.is_cpu() ? got : host.view();
  std::vector<double> a = to_double(g), b = to_double(want);
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << what << ": element " << i;
}

// Byte-for-byte equality (NaN payloads included): for ops specified to reproduce the CPU's bits.
inline void expect_bitwise_equal(const TensorView& got, const TensorView& want,
                                 const std::string& what) {
  Tensor host = got.device.is_cpu() ? Tensor() : to_host(got);
  const TensorView& g = got.device.is_cpu() ? got : host.view();
  ASSERT_EQ(g.dtype, want.dtype) << what;
  ASSERT_EQ(g.nbytes(), want.nbytes()) << what;
  const auto* a = static_cast<const unsigned char*>(g.data);
  const auto* b = static_cast<const unsigned char*>(want.data);
  const size_t es = dtype_size(g.dtype);
  for (size_t i = 0; i < g.nbytes(); ++i)
    ASSERT_EQ(a[i], b[i]) << what << ": element " << i / es << " differs (byte " << i % es << ")";
}

}  // namespace r1kit::testing
