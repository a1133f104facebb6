// Causal attention CPU reference: one query row at a time (scores for one row, never a T×T matrix),
// sums in double. Forward parallel over (query head, sequence); backward over (kv head, sequence)
// so that each task owns the dk/dv rows of its kv head and the writes never race.
#include "kernels/attention.h"
#include "kernels/cpu/common.h"

#include <cmath>
#include <limits>
#include <vector>

namespace r1kit::kernels::cpu {
namespace {

// Element pointer of row t, head h of a (T, H, D) view with unit stride in D.
template <class T>
T* row(const TensorView& v, int64_t t, int64_t h) {
  return v.ptr<T>() + t * v.stride[0] + h * v.stride[1];
}

template <class T>
double dot(const T* a, const T* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// p[j] = scale · q_i · k_j for the keys j = j0 .. i of row i (causal), then exp(p[j] − shift).
// shift = NaN asks for the row max (forward); the backward passes the saved lse.
template <class T>
void row_probs(std::vector<double>& p, const T* qi, const TensorView& k, int64_t g, int64_t j0,
               int64_t i, int64_t dqk, double scale, double* shift) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = j0; j <= i; ++j) {
    const double sc = scale * dot(qi, row<T>(k, j, g), dqk);
    p[static_cast<size_t>(j - j0)] = sc;
    m = std::max(m, sc);
  }
  if (std::isnan(*shift)) *shift = m;
  for (int64_t j = j0; j <= i; ++j) {
    double& pj = p[static_cast<size_t>(j - j0)];
    pj = std::exp(pj - *shift);
  }
}

}  // namespace

void attention_forward(const TensorView& out_, const TensorView& lse_, const TensorView& q_,
                       const TensorView& k_, const TensorView& v_, const TensorView& cu_seqlens,
                       double scale, Context& ctx) {
  CpuUpcast up(ctx);
  const TensorView q = up.in(q_), k = up.in(k_), v = up.in(v_), out = up.out(out_);
  const TensorView lse = up.out(lse_);  // f32/f64: passes through
  const int32_t* cu = cu_seqlens.ptr<int32_t>();
  const int64_t n_seq = cu_seqlens.shape[0] - 1, n_tok = q.shape[0];
  const int64_t hq = q.shape[1], group = hq / k.shape[1], dqk = q.shape[2], dv = v.shape[2];
  dispatch_float(q.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(lse.dtype, [&](auto ltag) {
      using L = decltype(ltag);
      ctx.pool().parallel_for(hq * n_seq, 1, [&](int64_t b, int64_t e) {
        std::vector<double> p, acc(static_cast<size_t>(dv));
        for (int64_t task = b; task < e; ++task) {
          const int64_t h = task / n_seq, s = task % n_seq, g = h / group;
          const int64_t j0 = cu[s], j1 = cu[s + 1];
          p.resize(static_cast<size_t>(j1 - j0));
          for (int64_t i = j0; i < j1; ++i) {
            // m = max_j s_ij;  l = Σ_j exp(s_ij − m);  out_i = Σ_j exp(s_ij − m) v_j / l;
            // lse_i = m + log l
            double m = std::numeric_limits<double>::quiet_NaN();
            row_probs(p, row<T>(q, i, h), k, g, j0, i, dqk, scale, &m);
            double l = 0;
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int64_t j = j0; j <= i; ++j) {
              const double pj = p[static_cast<size_t>(j - j0)];
              l += pj;
              const T* vj = row<T>(v, j, g);
              for (int64_t c = 0; c < dv; ++c) acc[static_cast<size_t>(c)] += pj * vj[c];
            }
            T* oi = row<T>(out, i, h);
            for (int64_t c = 0; c < dv; ++c)
              oi[c] = static_cast<T>(acc[static_cast<size_t>(c)] / l);
            lse.ptr<L>()[h * n_tok + i] = static_cast<L>(m + std::log(l));
          }
        }
      });
    });
  });
  up.finish();
}

// dq, dk, dv overwritten (activation gradients). Gradient write rule: parameter gradients
// accumulate (+=), activation gradients overwrite (=), except the residual stream.
void attention_backward(const TensorView& dq_, const TensorView& dk_, const TensorView& dv_,
                        const TensorView& dout_, const TensorView& q_, const TensorView& k_,
                        const TensorView& v_, const TensorView& out_, const TensorView& lse,
                        const TensorView& cu_seqlens, double scale, Context& ctx) {
  CpuUpcast up(ctx);
  const TensorView q = up.in(q_), k = up.in(k_), v = up.in(v_), out = up.in(out_);
  const TensorView dout = up.in(dout_);
  const TensorView dq = up.out(dq_), dk = up.out(dk_), dv = up.out(dv_);
  const int32_t* cu = cu_seqlens.ptr<int32_t>();
  const int64_t n_seq = cu_seqlens.shape[0] - 1, n_tok = q.shape[0];
  const int64_t hq = q.shape[1], hkv = k.shape[1], group = hq / hkv;
  const int64_t dqk = q.shape[2], dvd = v.shape[2];
  dispatch_float(q.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(lse.dtype, [&](auto ltag) {
      using L = decltype(ltag);
      ctx.pool().parallel_for(hkv * n_seq, 1, [&](int64_t b, int64_t e) {
        std::vector<double> p, dk_acc, dv_acc, dq_acc(static_cast<size_t>(dqk));
        for (int64_t task = b; task < e; ++task) {
          const int64_t g = task / n_seq, s = task % n_seq;
          const int64_t j0 = cu[s], j1 = cu[s + 1], len = j1 - j0;
          p.resize(static_cast<size_t>(len));
          // This sequence's dk/dv rows of kv head g, summed over the group's query heads.
          dk_acc.assign(static_cast<size_t>(len * dqk), 0.0);
          dv_acc.assign(static_cast<size_t>(len * dvd), 0.0);
          for (int64_t h = g * group; h < (g + 1) * group; ++h) {
            for (int64_t i = j0; i < j1; ++i) {
              const T* qi = row<T>(q, i, h);
              const T* doi = row<T>(dout, i, h);
              // D_i = dout_i · out_i  (= Σ_j P_ij dP_ij)
              const double di = dot(doi, row<T>(out, i, h), dvd);
              double shift = lse.ptr<L>()[h * n_tok + i];
              row_probs(p, qi, k, g, j0, i, dqk, scale, &shift);  // P_ij from the saved lse
              std::fill(dq_acc.begin(), dq_acc.end(), 0.0);
              for (int64_t j = j0; j <= i; ++j) {
                const double pij = p[static_cast<size_t>(j - j0)];
                const T* kj = row<T>(k, j, g);
                const T* vj = row<T>(v, j, g);
                double* dvj = dv_acc.data() + (j - j0) * dvd;
                double* dkj = dk_acc.data() + (j - j0) * dqk;
                // dv_j += P_ij dout_i;  dS_ij = P_ij (dout_i · v_j − D_i)
                for (int64_t c = 0; c < dvd; ++c) dvj[c] += pij * doi[c];
                const double ds = pij * (dot(doi, vj, dvd) - di);
                // dq_i += scale dS_ij k_j;  dk_j += scale dS_ij q_i
                for (int64_t c = 0; c < dqk; ++c) {
                  dq_acc[static_cast<size_t>(c)] += scale * ds * kj[c];
                  dkj[c] += scale * ds * qi[c];
                }
              }
              T* dqi = row<T>(dq, i, h);
              for (int64_t c = 0; c < dqk; ++c)
                dqi[c] = static_cast<T>(dq_acc[static_cast<size_t>(c)]);
            }
          }
          for (int64_t j = j0; j < j1; ++j) {
            T* dkj = row<T>(dk, j, g);
            T* dvj = row<T>(dv, j, g);
            for (int64_t c = 0; c < dqk; ++c) dkj[c] = static_cast<T>(dk_acc[(j - j0) * dqk + c]);
            for (int64_t c = 0; c < dvd; ++c) dvj[c] = static_cast<T>(dv_acc[(j - j0) * dvd + c]);
          }
        }
      });
    });
  });
  up.finish();
}

}  // namespace r1kit::kernels::cpu
