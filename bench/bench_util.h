// Benchmark helpers: median timing and the JSON line every case prints — the measured figure, the
// roofline floor (max of FLOPs over the measured compute ceiling and bytes over the measured
// memory bandwidth) and their ratio. Benchmarks never assert; they report.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/context.h"

namespace r1kit::bench {

struct Ceilings {
  double gflops = 0;  // measured GEMM rate of this device and dtype
  double gbps = 0;    // measured memory copy bandwidth (bytes read + written)
};

// Runs fn `reps` times after `warmup` runs, synchronising the context around each run, and
// returns the median wall time in milliseconds.
inline double median_ms(Context& ctx, const std::function<void()>& fn, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) fn();
  ctx.synchronize();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    ctx.synchronize();
    t.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Prints one JSON line for a case. flops and bytes are the minimum the op must do/move.
inline void report(const std::string& op, const std::string& shape, const std::string& device,
                   const std::string& dtype, double ms, double flops, double bytes,
                   const Ceilings& c) {
  double floor_ms = std::max(c.gflops > 0 ? flops / (c.gflops * 1e6) : 0.0,
                             c.gbps > 0 ? bytes / (c.gbps * 1e6) : 0.0);
  const bool compute_bound = c.gflops > 0 && c.gbps > 0 && flops / c.gflops > bytes / c.gbps;
  std::printf(
      "{\"op\":\"%s\",\"shape\":\"%s\",\"device\":\"%s\",\"dtype\":\"%s\",\"median_ms\":%.4f,"
      "\"gflops\":%.2f,\"gbps\":%.2f,\"floor_ms\":%.4f,\"ratio\":%.2f,\"bound\":\"%s\"}\n",
      op.c_str(), shape.c_str(), device.c_str(), dtype.c_str(), ms, flops / (ms * 1e6),
      bytes / (ms * 1e6), floor_ms, floor_ms > 0 ? ms / floor_ms : 0.0,
      compute_bound ? "compute" : "memory");
  std::fflush(stdout);
}

}  // namespace r1kit::bench
