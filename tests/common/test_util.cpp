// Implementation of the shared test helpers.
#include "tests/common/test_util.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <unistd.h>

namespace r1kit::testing {

Context& cpu_ctx() {
  static std::unique_ptr<Context> ctx = Context::cpu({.threads = 2, .seed = 7});
  return *ctx;
}

Tensor random_tensor(Context& ctx, const Shape& shape, DType dtype, std::mt19937_64& rng, double lo,
                     double hi, std::string name) {
  Tensor t = ctx.empty(shape, dtype, std::move(name));
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (auto& x : v) x = dist(rng);
  fill_from_double(t.view(), v);
  return t;
}

Tensor tensor_from(Context& ctx, const Shape& shape, DType dtype, const std::vector<double>& values,
                   std::string name) {
  Tensor t = ctx.empty(shape, dtype, std::move(name));
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel()) << "tensor_from: wrong value count";
  fill_from_double(t.view(), values);
  return t;
}

Tensor random_ints(Context& ctx, const Shape& shape, std::mt19937_64& rng, int lo, int hi,
                   std::string name) {
  Tensor t = ctx.empty(shape, DType::i32, std::move(name));
  std::uniform_int_distribution<int> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.ptr<int32_t>()[i] = dist(rng);
  return t;
}

std::vector<double> to_double(const TensorView& v) {
  EXPECT_TRUE(v.device.is_cpu()) << "to_double needs a host tensor";
  EXPECT_TRUE(v.is_contiguous()) << "to_double needs a contiguous tensor";
  std::vector<double> out(static_cast<size_t>(v.numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = load_as_double(v.data, v.dtype, i);
  return out;
}

void fill_from_double(const TensorView& v, const std::vector<double>& values) {
  ASSERT_TRUE(v.is_contiguous());
  ASSERT_EQ(static_cast<int64_t>(values.size()), v.numel());
  for (size_t i = 0; i < values.size(); ++i) store_from_double(v.data, v.dtype, i, values[i]);
}

void fill_constant(const TensorView& v, double value) {
  fill_from_double(v, std::vector<double>(static_cast<size_t>(v.numel()), value));
}

double normalized_error(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
    m = std::max(m, std::fabs(a[i] - b[i]));
  }
  return m;
}

double dot(const TensorView& out, const TensorView& g) {
  auto a = to_double(out), b = to_double(g);
  EXPECT_EQ(a.size(), b.size());
  double s = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) s += a[i] * b[i];
  return s;
}

void expect_gradients_match(const std::function<double()>& loss,
                            const std::vector<std::pair<TensorView, TensorView>>& input_and_grad,
                            const GradCheckOptions& opts) {
  std::mt19937_64 rng(opts.seed);
  for (const auto& [x, dx] : input_and_grad) {
    ASSERT_EQ(x.dtype, DType::f64) << "gradient checks run in double: " << x.describe();
    ASSERT_EQ(x.numel(), dx.numel()) << x.describe() << " vs gradient " << dx.describe();
    auto analytic = to_double(dx);
    std::vector<int64_t> idx(static_cast<size_t>(x.numel()));
    std::iota(idx.begin(), idx.end(), 0);
    if (static_cast<int>(idx.size()) > opts.max_elements) {
      std::shuffle(idx.begin(), idx.end(), rng);
      idx.resize(static_cast<size_t>(opts.max_elements));
    }
    double* p = x.ptr<double>();
    int failures = 0;
    for (int64_t i : idx) {
      double orig = p[i];
      p[i] = orig + opts.h;
      double lp = loss();
      p[i] = orig - opts.h;
      double lm = loss();
      p[i] = orig;
      double numeric = (lp - lm) / (2 * opts.h);
      double tol = opts.atol + opts.rtol * std::fabs(numeric);
      if (!(std::fabs(numeric - analytic[static_cast<size_t>(i)]) <= tol) && failures++ < 5) {
        ADD_FAILURE() << "gradient of " << x.describe() << " at flat index " << i << ": analytic "
                      << analytic[static_cast<size_t>(i)] << " numeric " << numeric;
      }
    }
    EXPECT_EQ(failures, 0) << failures << " gradient mismatches for " << x.describe();
  }
}

ScratchDir::ScratchDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  path_ = std::filesystem::temp_directory_path() /
          fmt::format("r1kit_{}_{}_{}", info ? info->test_suite_name() : "none",
                      info ? info->name() : "none", ::getpid());
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;  // never throw from a destructor
  std::filesystem::remove_all(path_, ec);
}

void expect_error_contains(const std::function<void()>& fn,
                           const std::vector<std::string>& needles) {
  try {
    fn();
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "error message lacks '" << n << "': " << msg;
    return;
  }
  ADD_FAILURE() << "expected an r1kit::Error";
}

}  // namespace r1kit::testing
