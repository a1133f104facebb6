// MoE routing and permutation CPU reference: token-parallel routing with sums in double, a stable
// counting sort for the permutation, and the data-dependent index checks the front-end cannot do.
#include "kernels/moe.h"
#include "kernels/cpu/common.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace r1kit::kernels::cpu {
namespace {

// The renormalisation guard of the references: w / (Σ w + 1e-20).
constexpr double kNormEps = 1e-20;

bool renormalises(const MoeRouting& cfg) {
  return cfg.norm_topk_prob && cfg.num_experts_per_tok > 1;
}

// A strict total order for selection: larger value first, NaN after every number, then the lower
// index first on ties, so the chosen set never depends on the sort algorithm.
template <class T>
bool ranks_before(T a, int64_t ia, T b, int64_t ib) {
  const bool a_nan = std::isnan(a), b_nan = std::isnan(b);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && a != b) return a > b;
  return ia < ib;
}

// Sorts the first `take` of order[0, count) by (value desc, index asc).
template <class T>
void top_by_value(std::vector<int64_t>& order, int64_t count, int64_t take, const T* value) {
  order.resize(count);
  for (int64_t i = 0; i < count; ++i) order[i] = i;
  std::partial_sort(order.begin(), order.begin() + take, order.end(),
                    [&](int64_t a, int64_t b) { return ranks_before(value[a], a, value[b], b); });
}

// Every id of topk_idx (N, K) lies in [0, e); errors name the entry and the id.
void check_expert_ids(const char* op, const TensorView& topk_idx, int64_t e) {
  const int32_t* ids = topk_idx.ptr<int32_t>();
  const int64_t k = topk_idx.shape[1];
  for (int64_t f = 0; f < topk_idx.numel(); ++f)
    if (ids[f] < 0 || ids[f] >= e)
      throw Error(fmt::format("[{}] topk_idx {}: entry [{}, {}] is expert {}, outside [0, {})", op,
                              topk_idx.describe(), f / k, f % k, ids[f], e));
}

// pos[perm_index[p]] = p; errors when perm_index is not a permutation of [0, M).
std::vector<int64_t> invert_permutation(const char* op, const TensorView& perm_index) {
  const int64_t m = perm_index.numel();
  const int32_t* perm = perm_index.ptr<int32_t>();
  std::vector<int64_t> pos(m, -1);
  for (int64_t p = 0; p < m; ++p) {
    const int64_t f = perm[p];
    if (f < 0 || f >= m || pos[f] >= 0)
      throw Error(
          fmt::format("[{}] perm_index {} is not a permutation of [0, {}): entry {} is {}{}", op,
                      perm_index.describe(), m, p, f, f >= 0 && f < m ? " again" : ""));
    pos[f] = p;
  }
  return pos;
}

// out[t] = Σ_i w[t, i] · in[pos[t·K + i]] over the K routed copies of token t, in i order, summed
// in double; w = 1 when weight is TensorView{}. out (N, C), in (N·K, C), weight (N, K).
void sum_copies(const TensorView& out_, const TensorView& in_, const std::vector<int64_t>& pos,
                int64_t k, const TensorView& weight_, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView out = up.out(out_), in = up.in(in_), weight = up.in(weight_);
  const int64_t n = out.shape[0], ch = out.shape[1];
  dispatch_float(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* w = weight.defined() ? weight.ptr<T>() : nullptr;
    ctx.pool().parallel_for(n, 16, [&](int64_t b, int64_t end) {
      std::vector<double> acc(ch);
      for (int64_t t = b; t < end; ++t) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t i = 0; i < k; ++i) {
          const double wi = w ? static_cast<double>(w[t * k + i]) : 1.0;
          const T* row = in.ptr<T>() + pos[t * k + i] * ch;
          for (int64_t j = 0; j < ch; ++j) acc[j] += wi * row[j];
        }
        T* ot = out.ptr<T>() + t * ch;
        for (int64_t j = 0; j < ch; ++j) ot[j] = static_cast<T>(acc[j]);
      }
    });
  });
  up.finish();
}

}  // namespace

void moe_route_forward(const TensorView& topk_idx, const TensorView& topk_weight_,
                       const TensorView& scores_, const TensorView& router_logits_,
                       const TensorView& bias_, const MoeRouting& cfg, Context& ctx) {
  CpuUpcast up(ctx);
  const bool with_bias = bias_.defined();
  TensorView logits = up.in(router_logits_), scores = up.out(scores_);
  TensorView topk_weight = up.out(topk_weight_);
  TensorView bias = up.in(bias_);  // TensorView{} (no bias) passes through
  const int64_t n = logits.shape[0], e = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  const bool grouped = cfg.topk_method != MoeTopkMethod::greedy;
  const int64_t n_group = grouped ? cfg.n_group : 1, group_size = e / n_group;
  // After CpuUpcast and the front-end's same_precision, every float view is T.
  dispatch_float(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T fill =
        cfg.masked_fill == MoeGroupMaskFill::zero ? T(0) : -std::numeric_limits<T>::infinity();
    ctx.pool().parallel_for(n, 16, [&](int64_t b, int64_t end) {
      std::vector<T> choice(e), group_score(n_group);
      std::vector<int64_t> order, group_order;
      std::vector<char> keep(n_group);
      for (int64_t t = b; t < end; ++t) {
        const T* lt = logits.ptr<T>() + t * e;
        T* st = scores.ptr<T>() + t * e;
        // s = softmax(l) = exp(l − max l) / Σ exp(l − max l), or s = 1 / (1 + exp(−l)).
        if (cfg.scoring == MoeScoring::softmax) {
          double mx = -INFINITY;
          for (int64_t j = 0; j < e; ++j) mx = std::max(mx, static_cast<double>(lt[j]));
          double sum = 0;
          for (int64_t j = 0; j < e; ++j) sum += std::exp(static_cast<double>(lt[j]) - mx);
          for (int64_t j = 0; j < e; ++j)
            st[j] = static_cast<T>(std::exp(static_cast<double>(lt[j]) - mx) / sum);
        } else {
          for (int64_t j = 0; j < e; ++j)
            st[j] = static_cast<T>(1.0 / (1.0 + std::exp(-static_cast<double>(lt[j]))));
        }
        // c = s + b, in T like the f32 references; the bias only steers the choice.
        for (int64_t j = 0; j < e; ++j)
          choice[j] = with_bias ? static_cast<T>(st[j] + bias.ptr<T>()[j]) : st[j];
        if (grouped && n_group > 1) {
          // Group score: max c (group_limited_greedy) or the sum of the top-2 c (noaux_tc).
          for (int64_t g = 0; g < n_group; ++g) {
            const T* cg = choice.data() + g * group_size;
            top_by_value(order, group_size, cfg.topk_method == MoeTopkMethod::noaux_tc ? 2 : 1, cg);
            group_score[g] = cfg.topk_method == MoeTopkMethod::noaux_tc
                                 ? static_cast<T>(cg[order[0]] + cg[order[1]])
                                 : cg[order[0]];
          }
          // Keep the topk_group best groups; every expert of the others gets the fill value.
          top_by_value(group_order, n_group, cfg.topk_group, group_score.data());
          std::fill(keep.begin(), keep.end(), 0);
          for (int64_t i = 0; i < cfg.topk_group; ++i) keep[group_order[i]] = 1;
          for (int64_t j = 0; j < e; ++j)
            if (!keep[j / group_size]) choice[j] = fill;
        }
        top_by_value(order, e, k, choice.data());
        // w_k = s[idx_k];  w_k /= Σ w + 1e-20 when renormalising;  w_k *= routed_scaling_factor.
        int32_t* it = topk_idx.ptr<int32_t>() + t * k;
        T* wt = topk_weight.ptr<T>() + t * k;
        double denom = 1.0;
        if (renormalises(cfg)) {
          double sum = 0;
          for (int64_t i = 0; i < k; ++i) sum += st[order[i]];
          denom = sum + kNormEps;
        }
        for (int64_t i = 0; i < k; ++i) {
          const int64_t j = order[i];
          it[i] = static_cast<int32_t>(j);
          wt[i] = static_cast<T>(static_cast<double>(st[j]) / denom * cfg.routed_scaling_factor);
        }
      }
    });
  });
  up.finish();
}

void moe_route_backward(const TensorView& dlogits_, const TensorView& dtopk_weight_,
                        const TensorView& topk_idx, const TensorView& scores_,
                        const MoeRouting& cfg, Context& ctx) {
  const int64_t e = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  check_expert_ids("moe_route_backward", topk_idx, e);
  CpuUpcast up(ctx);
  TensorView dlogits = up.out(dlogits_), dtopk_weight = up.in(dtopk_weight_);
  TensorView scores = up.in(scores_);
  const int64_t n = scores.shape[0];
  const double gamma = cfg.routed_scaling_factor;
  dispatch_float(scores.dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.pool().parallel_for(n, 16, [&](int64_t b, int64_t end) {
      std::vector<double> ds(e), dw(k);
      for (int64_t t = b; t < end; ++t) {
        const T* st = scores.ptr<T>() + t * e;
        const T* gt = dtopk_weight.ptr<T>() + t * k;
        const int32_t* it = topk_idx.ptr<int32_t>() + t * k;
        T* dlt = dlogits.ptr<T>() + t * e;
        // Renormalised: out_k = γ w_k / D, D = Σ w + 1e-20, so
        //   dw_k = γ (g_k / D − Σ_j g_j w_j / D²) = γ (g_k − Σ_j g_j u_j) / D,  u_j = w_j / D.
        // Otherwise out_k = γ w_k and dw_k = γ g_k.
        if (renormalises(cfg)) {
          double sum = 0;
          for (int64_t i = 0; i < k; ++i) sum += st[it[i]];
          const double denom = sum + kNormEps;
          double gu = 0;
          for (int64_t i = 0; i < k; ++i) gu += static_cast<double>(gt[i]) * st[it[i]] / denom;
          for (int64_t i = 0; i < k; ++i) dw[i] = gamma * (static_cast<double>(gt[i]) - gu) / denom;
        } else {
          for (int64_t i = 0; i < k; ++i) dw[i] = gamma * gt[i];
        }
        // ds_e = Σ_{k: idx_k = e} dw_k (the gather's adjoint; ids may repeat).
        std::fill(ds.begin(), ds.end(), 0.0);
        for (int64_t i = 0; i < k; ++i) ds[it[i]] += dw[i];
        if (cfg.scoring == MoeScoring::softmax) {
          // dl_e = s_e (ds_e − Σ_f s_f ds_f); ds is zero outside the chosen experts.
          double dot = 0;
          for (int64_t i = 0; i < k; ++i) dot += static_cast<double>(st[it[i]]) * dw[i];
          for (int64_t j = 0; j < e; ++j)
            dlt[j] = static_cast<T>(static_cast<double>(st[j]) * (ds[j] - dot));
        } else {
          // dl_e = ds_e s_e (1 − s_e).
          for (int64_t j = 0; j < e; ++j) {
            const double s = st[j];
            dlt[j] = static_cast<T>(ds[j] * s * (1.0 - s));
          }
        }
      }
    });
  });
  up.finish();
}

void moe_expert_counts(const TensorView& counts, const TensorView& topk_idx, Context&) {
  const int64_t e = counts.shape[0];
  check_expert_ids("moe_expert_counts", topk_idx, e);
  std::vector<int64_t> c(e, 0);
  const int32_t* ids = topk_idx.ptr<int32_t>();
  for (int64_t f = 0; f < topk_idx.numel(); ++f) ++c[ids[f]];
  for (int64_t j = 0; j < e; ++j) {
    if (counts.dtype == DType::i64)
      counts.ptr<int64_t>()[j] = c[j];
    else
      counts.ptr<int32_t>()[j] = static_cast<int32_t>(c[j]);
  }
}

void moe_permute(const TensorView& x_perm, const TensorView& perm_index,
                 const TensorView& expert_offsets, const TensorView& x, const TensorView& topk_idx,
                 Context& ctx) {
  const int64_t e = expert_offsets.shape[0] - 1, k = topk_idx.shape[1], m = topk_idx.numel();
  check_expert_ids("moe_permute", topk_idx, e);
  const int32_t* ids = topk_idx.ptr<int32_t>();
  // Counting sort, stable: offsets are the prefix sums of the counts, and pairs are placed in
  // increasing f = n·K + k within each expert.
  int32_t* off = expert_offsets.ptr<int32_t>();
  std::fill(off, off + e + 1, 0);
  for (int64_t f = 0; f < m; ++f) ++off[ids[f] + 1];
  for (int64_t j = 0; j < e; ++j) off[j + 1] += off[j];
  std::vector<int32_t> cursor(off, off + e);
  int32_t* perm = perm_index.ptr<int32_t>();
  for (int64_t f = 0; f < m; ++f) perm[cursor[ids[f]]++] = static_cast<int32_t>(f);
  // x_perm[p] = x[perm[p] / K]: a row copy in the tensors' own dtype.
  const size_t row_bytes = static_cast<size_t>(x.shape[1]) * dtype_size(x.dtype);
  const auto* src = static_cast<const char*>(x.data);
  auto* dst = static_cast<char*>(x_perm.data);
  ctx.pool().parallel_for(m, 256, [&](int64_t b, int64_t end) {
    for (int64_t p = b; p < end; ++p)
      if (row_bytes)
        std::memcpy(dst + static_cast<size_t>(p) * row_bytes,
                    src + static_cast<size_t>(perm[p] / k) * row_bytes, row_bytes);
  });
}

// dx[t] = Σ_k dx_perm[pos(t, k)], the transpose of moe_permute's row copies; dx overwritten
// (gradient write rule: parameters +=, activations =, residual stream +=).
void moe_permute_backward(const TensorView& dx, const TensorView& dx_perm,
                          const TensorView& perm_index, Context& ctx) {
  const std::vector<int64_t> pos = invert_permutation("moe_permute_backward", perm_index);
  const int64_t n = dx.shape[0];
  sum_copies(dx, dx_perm, pos, n > 0 ? perm_index.numel() / n : 0, TensorView{}, ctx);
}

void moe_unpermute(const TensorView& y, const TensorView& y_perm, const TensorView& perm_index,
                   const TensorView& topk_weight, Context& ctx) {
  const std::vector<int64_t> pos = invert_permutation("moe_unpermute", perm_index);
  // y[t] = Σ_k w[t, k] · y_perm[pos(t, k)]
  sum_copies(y, y_perm, pos, topk_weight.shape[1], topk_weight, ctx);
}

void moe_unpermute_backward(const TensorView& dy_perm_, const TensorView& dtopk_weight_,
                            const TensorView& dy_, const TensorView& y_perm_,
                            const TensorView& perm_index, const TensorView& topk_weight_,
                            Context& ctx) {
  const std::vector<int64_t> pos = invert_permutation("moe_unpermute_backward", perm_index);
  CpuUpcast up(ctx);
  TensorView dy_perm = up.out(dy_perm_), dtopk_weight = up.out(dtopk_weight_);
  TensorView dy = up.in(dy_), y_perm = up.in(y_perm_), topk_weight = up.in(topk_weight_);
  const int64_t n = dy.shape[0], ch = dy.shape[1], k = topk_weight.shape[1];
  dispatch_float(dy.dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.pool().parallel_for(n, 16, [&](int64_t b, int64_t end) {
      for (int64_t t = b; t < end; ++t) {
        const T* dyt = dy.ptr<T>() + t * ch;
        for (int64_t i = 0; i < k; ++i) {
          const int64_t f = t * k + i, p = pos[f];
          // dy_perm[pos(n, k)] = w[n, k] · dy[n];  dw[n, k] = Σ_c y_perm[pos(n, k), c] · dy[n, c].
          const double w = topk_weight.ptr<T>()[f];
          const T* yp = y_perm.ptr<T>() + p * ch;
          T* dyp = dy_perm.ptr<T>() + p * ch;
          double dot = 0;
          for (int64_t j = 0; j < ch; ++j) {
            dyp[j] = static_cast<T>(w * dyt[j]);
            dot += static_cast<double>(yp[j]) * dyt[j];
          }
          dtopk_weight.ptr<T>()[f] = static_cast<T>(dot);
        }
      }
    });
  });
  up.finish();
}

}  // namespace r1kit::kernels::cpu
