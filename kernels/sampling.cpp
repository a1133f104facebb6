// Sampling front-end: validation of shapes, parameters, counters and logits (finite or −inf),
// then the device switch.
#include "kernels/sampling.h"

#include <cmath>

namespace r1kit::kernels {
namespace {

// Host-side data checks: counters in range, logits finite or −inf with one finite entry per row.
void check_data(const OpCheck& c, const TensorView& logits, const TensorView& rng_counters) {
  const int64_t rows = logits.shape[0], vocab = logits.shape[1];
  const int64_t* counters = rng_counters.ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t stream = counters[2 * r], position = counters[2 * r + 1];
    if (stream < 0)
      c.fail(fmt::format("rng_counters {} row {} has stream {}; streams must be >= 0",
                         rng_counters.describe(), r, stream));
    if (position < 0 || position > static_cast<int64_t>(UINT32_MAX))
      c.fail(fmt::format("rng_counters {} row {} has position {}, outside [0, 2^32)",
                         rng_counters.describe(), r, position));
  }
  for (int64_t r = 0; r < rows; ++r) {
    bool any_finite = false;
    for (int64_t j = 0; j < vocab; ++j) {
      const double x =
          load_as_double(logits.data, logits.dtype, static_cast<size_t>(r * vocab + j));
      if (std::isnan(x) || x == INFINITY)
        c.fail(
            fmt::format("logits {} row {} token {} is {}: sampling needs finite logits "
                        "(-inf masks a token)",
                        logits.describe(), r, j, x));
      any_finite = any_finite || std::isfinite(x);
    }
    if (!any_finite)
      c.fail(fmt::format("logits {} row {} has no finite entry: every token is masked",
                         logits.describe(), r));
  }
}

}  // namespace

void sample_forward(const TensorView& tokens, const TensorView& token_logprob,
                    const TensorView& logits, const TensorView& rng_counters,
                    const SamplingParams& params, uint64_t seed, Context& ctx) {
  OpCheck c("sample", ctx);
  c.float_arg(logits, "logits");
  c.ndim(logits, 2, "logits");
  const int64_t rows = logits.shape[0], vocab = logits.shape[1];
  c.require(vocab >= 1,
            [&] { return fmt::format("logits {} must have a vocab dim >= 1", logits.describe()); });
  c.int_arg(tokens, "tokens");
  c.shape(tokens, {rows}, "tokens");
  c.float_arg(token_logprob, "token_logprob");
  c.shape(token_logprob, {rows}, "token_logprob");
  c.f32_or_f64(token_logprob, "token_logprob");
  c.on_device(rng_counters, "rng_counters");
  c.contiguous(rng_counters, "rng_counters");
  c.dtype(rng_counters, DType::i64, "rng_counters");
  c.shape(rng_counters, {rows, 2}, "rng_counters");
  const double tau = params.temperature;
  c.require(std::isfinite(tau) && (tau == 0 || tau >= kMinSamplingTemperature), [&] {
    return fmt::format("temperature {} must be 0 (greedy) or finite and >= {}", tau,
                       kMinSamplingTemperature);
  });
  c.require(params.top_k >= 0,
            [&] { return fmt::format("top_k {} must be >= 0 (0 = off)", params.top_k); });
  c.require(params.top_p > 0 && params.top_p <= 1,
            [&] { return fmt::format("top_p {} must be in (0, 1] (1 = off)", params.top_p); });
  c.require(params.min_p >= 0 && params.min_p <= 1,
            [&] { return fmt::format("min_p {} must be in [0, 1] (0 = off)", params.min_p); });
  c.outputs_distinct({{&tokens, "tokens"}, {&token_logprob, "token_logprob"}},
                     {{&logits, "logits"}, {&rng_counters, "rng_counters"}});
  if (logits.device.is_cpu()) check_data(c, logits, rng_counters);
  if (ctx.is_cuda())
    return cuda::sample_forward(tokens, token_logprob, logits, rng_counters, params, seed, ctx);
  cpu::sample_forward(tokens, token_logprob, logits, rng_counters, params, seed, ctx);
}

}  // namespace r1kit::kernels
