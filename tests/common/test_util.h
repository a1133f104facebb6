// Shared test helpers: random tensors, conversions to double, the normalised error metric, and the
// finite-difference gradient check every backward is held to.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"

namespace r1kit::testing {

// The per-test CPU context (2 threads, so thread-pool code paths run even on small machines).
Context& cpu_ctx();

// Uniform random values in [lo, hi), rounded to the dtype.
Tensor random_tensor(Context& ctx, const Shape& shape, DType dtype, std::mt19937_64& rng,
                     double lo = -1.0, double hi = 1.0, std::string name = "x");
// A tensor holding the given values (rounded to the dtype).
Tensor tensor_from(Context& ctx, const Shape& shape, DType dtype, const std::vector<double>& values,
                   std::string name = "x");
// Random integers in [lo, hi] as an i32 tensor (token ids, expert ids).
Tensor random_ints(Context& ctx, const Shape& shape, std::mt19937_64& rng, int lo, int hi,
                   std::string name = "ids");

std::vector<double> to_double(const TensorView& v);  // host tensors only
void fill_from_double(const TensorView& v, const std::vector<double>& values);
void fill_constant(const TensorView& v, double value);  // e.g. NaN poison before an op writes

// ||a - b|| / max(||b||, tiny): the scale-invariant error used to compare implementations.
double normalized_error(const std::vector<double>& a, const std::vector<double>& b);
double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b);
// sum_i out[i] * g[i]: turns a tensor output into a scalar loss whose gradient w.r.t. out is g.
double dot(const TensorView& out, const TensorView& g);

// Central finite differences in double. `loss` recomputes the scalar loss from the current values
// of every input; for each (input, analytic gradient) pair, each element (or `max_elements` chosen
// at random) is perturbed by ±h and (L+ − L−)/(2h) is compared with the analytic gradient with
// tolerance atol + rtol·|numeric|. Inputs must be f64 CPU tensors.
struct GradCheckOptions {
  double h = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  int max_elements = 200;
  uint64_t seed = 1234;
};
void expect_gradients_match(const std::function<double()>& loss,
                            const std::vector<std::pair<TensorView, TensorView>>& input_and_grad,
                            const GradCheckOptions& opts = {});

// A fresh directory per test (named after the suite, test and process), removed afterwards.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Runs `fn` and expects an r1kit::Error whose message contains every needle.
void expect_error_contains(const std::function<void()>& fn,
                           const std::vector<std::string>& needles);

}  // namespace r1kit::testing
