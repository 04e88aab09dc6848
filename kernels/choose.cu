// Token choice on the device, one CTA per logits row, with exactly the host's
// semantics (sampling/sampling.cpp, choose_token): penalties, temperature,
// top-k, top-p and typical-p, then argmax or the draw for the host-supplied
// uniform, and the log-prob of the chosen token; or a prompt token's log-prob.
// Only ids and log-probs leave the GPU. Nothing is sorted: top-k finds its
// threshold by radix selection over order-preserving keys (8-bit digit counts),
// top-p and typical-p by radix selection over probability mass per digit, with
// ties at the boundary resolved in id order like the host's stable sort.
// Written by hand: no packaged library selects by cumulative probability mass.
#include <climits>

#include "kernels/common.cuh"

namespace lorax::kernels {
namespace {

constexpr int kThreads = 1024;  // 32 warps: every warp can reduce all warp partials itself

// Keys order like the floats; -0 becomes +0 (they compare equal, so they tie).
__device__ __forceinline__ uint32_t float_key(float f) {
  const uint32_t u = __float_as_uint(f + 0.0f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_float(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

template <typename V>
__device__ __forceinline__ V warp_reduce(V v, bool max_op) {
  for (int o = 16; o > 0; o >>= 1) {
    const V other = __shfl_xor_sync(0xffffffffu, v, o);
    v = max_op ? (other > v ? other : v) : v + other;
  }
  return v;
}

// Sum or max over the block, returned to every thread.
template <typename V>
__device__ V block_reduce(V v, bool max_op, V* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_reduce(v, max_op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = warp_reduce(scratch[lane], max_op);
  __syncthreads();
  return v;
}

// Exclusive prefix sum over the block (thread order); *total gets the sum.
template <typename V>
__device__ V block_exclusive_scan(V v, V* scratch, V* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  V x = v;
  for (int o = 1; o < 32; o <<= 1) {
    const V y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) scratch[warp] = x;
  __syncthreads();
  V w = scratch[lane];
  for (int o = 1; o < 32; o <<= 1) {
    const V y = __shfl_up_sync(0xffffffffu, w, o);
    if (lane >= o) w += y;
  }
  const V warp_before = __shfl_sync(0xffffffffu, w, warp > 0 ? warp - 1 : 0);
  *total = __shfl_sync(0xffffffffu, w, 31);
  V before_in_warp = __shfl_up_sync(0xffffffffu, x, 1);
  __syncthreads();
  return (warp > 0 ? warp_before : V(0)) + (lane > 0 ? before_in_warp : V(0));
}

struct Shared {
  double d[32];
  float f[32];
  int i[32];
  unsigned counts[256];
  double mass[256];
  uint64_t prefix, mask;
  int remaining;
  double above;  // mass of the keys above the current selection
  bool found;
  int chosen;
  int top_count;
  int top_id[kMaxChooseTop];
  float top_val[kMaxChooseTop];
};

// Order-preserving key of a non-negative double (or +inf).
__device__ __forceinline__ uint64_t double_key(double d) {
  return static_cast<uint64_t>(__double_as_longlong(d + 0.0)) | 0x8000000000000000ull;
}

// One radix pass over the keys that match prefix/mask: counts and (optionally)
// probability mass per 8-bit digit at `shift`.
template <typename KeyFn>
__device__ void digit_histogram(const float* s, int64_t vocab, int shift, bool with_mass, double lse, KeyFn key_of,
                                Shared& sh) {
  for (int b = threadIdx.x; b < 256; b += blockDim.x) {
    sh.counts[b] = 0;
    sh.mass[b] = 0.0;
  }
  __syncthreads();
  const uint64_t prefix = sh.prefix, mask = sh.mask;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const uint64_t key = key_of(s[i]);
    if ((key & mask) != prefix) continue;
    const int digit = static_cast<int>((key >> shift) & 255);
    atomicAdd(&sh.counts[digit], 1u);
    if (with_mass) atomicAdd(&sh.mass[digit], exp(static_cast<double>(s[i]) - lse));
  }
  __syncthreads();
}

// The k-th largest value of s (s has more than k entries).
__device__ float kth_largest(const float* s, int64_t vocab, int k, Shared& sh) {
  if (threadIdx.x == 0) {
    sh.prefix = sh.mask = 0;
    sh.remaining = k;
  }
  __syncthreads();
  auto key_of = [](float v) { return static_cast<uint64_t>(float_key(v)); };
  for (int shift = 24; shift >= 0; shift -= 8) {
    digit_histogram(s, vocab, shift, false, 0.0, key_of, sh);
    if (threadIdx.x == 0) {
      int b = 255;
      for (; b > 0; --b) {
        if (static_cast<int>(sh.counts[b]) >= sh.remaining) break;
        sh.remaining -= static_cast<int>(sh.counts[b]);
      }
      sh.prefix |= static_cast<uint64_t>(b) << shift;
      sh.mask |= 255ull << shift;
    }
    __syncthreads();
  }
  return key_float(static_cast<uint32_t>(sh.prefix));
}

// log-sum-exp of s over the block, in double like the host.
__device__ double block_lse(const float* s, int64_t vocab, Shared& sh) {
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, s[i]);
  m = block_reduce(m, true, sh.f);
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) sum += exp(static_cast<double>(s[i]) - m);
  sum = block_reduce(sum, false, sh.d);
  return m + log(sum);
}

// Keeps the tokens that come first in descending key order (ties in id order,
// like the host's stable sort) until their running probability mass reaches
// `target`, the one that reaches it included; removes the rest.
template <int kKeyBits, typename KeyFn>
__device__ void keep_until_mass(float* s, int64_t vocab, double target, double lse, KeyFn key_of, Shared& sh) {
  if (threadIdx.x == 0) {
    sh.prefix = sh.mask = 0;
    sh.above = 0.0;
    sh.found = true;
  }
  __syncthreads();
  for (int shift = kKeyBits - 8; shift >= 0; shift -= 8) {
    digit_histogram(s, vocab, shift, true, lse, key_of, sh);
    if (threadIdx.x == 0 && sh.found) {
      int b = 255, lowest = -1;
      bool hit = false;
      for (; b >= 0; --b) {
        if (sh.counts[b] == 0) continue;
        lowest = b;
        if (sh.above + sh.mass[b] >= target) {
          hit = true;
          break;
        }
        sh.above += sh.mass[b];
      }
      if (!hit && shift == kKeyBits - 8) {
        sh.found = false;  // the whole mass stays below the target (rounding): keep everything
      } else {
        if (!hit) {  // a later pass summed its bins a little differently: take the lowest digit
          b = lowest;
          sh.above -= sh.mass[b];
        }
        sh.prefix |= static_cast<uint64_t>(b) << shift;
        sh.mask |= 255ull << shift;
      }
    }
    __syncthreads();
  }
  if (!sh.found) return;
  const uint64_t boundary = sh.prefix;
  const double above = sh.above;
  // Tokens at the boundary key, in id order: contiguous chunks per thread, the
  // mass before each from a prefix sum; kept while the running mass is short.
  const int64_t chunk = (vocab + blockDim.x - 1) / blockDim.x;
  const int64_t begin = threadIdx.x * chunk, end = min(vocab, begin + chunk);
  double mine = 0.0;
  for (int64_t i = begin; i < end; ++i)
    if (key_of(s[i]) == boundary) mine += exp(static_cast<double>(s[i]) - lse);
  double total;
  double before = above + block_exclusive_scan(mine, sh.d, &total);
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t key = key_of(s[i]);
    if (key == boundary) {
      const bool keep = before < target;
      before += exp(static_cast<double>(s[i]) - lse);
      if (!keep) s[i] = -INFINITY;
    } else if (key < boundary) {
      s[i] = -INFINITY;
    }
  }
  __syncthreads();
}

// Top-p: the most likely tokens first.
__device__ void top_p_filter(float* s, int64_t vocab, double p, Shared& sh) {
  const double lse = block_lse(s, vocab, sh);
  keep_until_mass<32>(s, vocab, p, lse, [](float v) { return static_cast<uint64_t>(float_key(v)); }, sh);
}

// Typical-p: tokens whose surprise is closest to the entropy first.
__device__ void typical_p_filter(float* s, int64_t vocab, double mass, Shared& sh) {
  const double lse = block_lse(s, vocab, sh);
  double h = 0.0;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const double lp = static_cast<double>(s[i]) - lse;
    if (isfinite(lp)) h -= lp * exp(lp);
  }
  h = block_reduce(h, false, sh.d);
  auto key_of = [lse, h](float v) {
    const double lp = static_cast<double>(v) - lse;
    return ~double_key(isfinite(lp) ? fabs(-lp - h) : INFINITY);  // smaller distance, larger key
  };
  keep_until_mass<64>(s, vocab, mass, lse, key_of, sh);
}

// The row's n highest finite scores, ties in id order (sampling.cpp's top_tokens),
// with log-probs s - lse: kMaxChooseTop slots per row, unused ones id -1.
__device__ void top_alternatives(const float* s, int64_t vocab, int n, double lse, int32_t* top_ids,
                                 float* top_logprobs, Shared& sh) {
  n = min(n, kMaxChooseTop);
  const float kth = n < vocab ? kth_largest(s, vocab, n, sh) : -INFINITY;
  if (threadIdx.x == 0) sh.top_count = 0;
  __syncthreads();
  // Every score above the n-th is in; of those equal to it (when finite), the first in id order.
  const int64_t chunk = (vocab + blockDim.x - 1) / blockDim.x;
  const int64_t begin = threadIdx.x * chunk, end = min(vocab, begin + chunk);
  int greater = 0, equal = 0;
  for (int64_t i = begin; i < end; ++i) {
    greater += s[i] > kth;
    equal += s[i] == kth && isfinite(kth);
  }
  const int total_greater = block_reduce(greater, false, sh.i);
  int total_equal;
  int equal_before = block_exclusive_scan(equal, sh.i, &total_equal);
  for (int64_t i = begin; i < end; ++i) {
    bool take = s[i] > kth;
    if (!take && s[i] == kth && isfinite(kth)) take = total_greater + equal_before++ < n;
    if (take) {
      const int slot = atomicAdd(&sh.top_count, 1);
      if (slot < kMaxChooseTop) {
        sh.top_id[slot] = static_cast<int>(i);
        sh.top_val[slot] = s[i];
      }
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const int count = min(sh.top_count, n);
    for (int a = 1; a < count; ++a)  // insertion sort of at most kMaxChooseTop entries
      for (int b = a; b > 0; --b) {
        const bool before = sh.top_val[b] > sh.top_val[b - 1] ||
                            (sh.top_val[b] == sh.top_val[b - 1] && sh.top_id[b] < sh.top_id[b - 1]);
        if (!before) break;
        const int id = sh.top_id[b];
        const float v = sh.top_val[b];
        sh.top_id[b] = sh.top_id[b - 1], sh.top_val[b] = sh.top_val[b - 1];
        sh.top_id[b - 1] = id, sh.top_val[b - 1] = v;
      }
    for (int k = 0; k < kMaxChooseTop; ++k) {
      top_ids[k] = k < count ? sh.top_id[k] : -1;
      top_logprobs[k] = k < count ? static_cast<float>(static_cast<double>(sh.top_val[k]) - lse) : 0.0f;
    }
  }
  __syncthreads();
}

template <typename T>
__global__ void __launch_bounds__(kThreads) choose_kernel(const T* logits, int64_t vocab, const ChooseRow* rows,
                                                          const int32_t* penalties, const uint32_t* masks,
                                                          float* scratch, int32_t* ids, float* logprobs,
                                                          int32_t* top_ids, float* top_logprobs) {
  __shared__ Shared sh;
  const int64_t r = blockIdx.x;
  const ChooseRow p = rows[r];
  const T* x = logits + r * vocab;
  float* s = scratch + r * vocab;
  if (p.mask_row >= 0 && p.prompt_target < 0) {  // constrained decoding: tokens outside the mask are removed
    const uint32_t* mask = masks + static_cast<int64_t>(p.mask_row) * ((vocab + 31) / 32);
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
      s[i] = (mask[i / 32] >> (i % 32) & 1) ? to_f(x[i]) : -INFINITY;
  } else {
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) s[i] = to_f(x[i]);
  }
  __syncthreads();
  if (p.prompt_target >= 0) {  // the raw logits' log-prob of the given token
    const double lse = block_lse(s, vocab, sh);
    if (threadIdx.x == 0) {
      ids[r] = p.prompt_target;
      logprobs[r] = static_cast<float>(static_cast<double>(s[p.prompt_target]) - lse);
    }
    return;
  }
  const bool frequency = p.frequency_penalty != 0.0 || p.presence_penalty != 0.0;
  for (int j = threadIdx.x; j < p.pen_count; j += blockDim.x) {  // distinct tokens: no write conflicts
    const int32_t* e = penalties + 3 * static_cast<int64_t>(p.pen_begin + j);
    const int32_t token = e[0], generated = e[1], in_context = e[2];
    if (token < 0 || token >= vocab) continue;
    float v = s[token];
    if (p.repetition_penalty != 1.0 && in_context) {
      const float rp = static_cast<float>(p.repetition_penalty);
      v = v < 0 ? v * rp : v / rp;
    }
    if (frequency && generated > 0) v -= static_cast<float>(p.frequency_penalty * generated + p.presence_penalty);
    s[token] = v;
  }
  __syncthreads();
  if (p.sample) {
    if (p.temperature != 1.0)
      for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
        s[i] = static_cast<float>(static_cast<double>(s[i]) / p.temperature);
    __syncthreads();
    if (p.top_k > 0 && p.top_k < vocab) {
      const float kth = kth_largest(s, vocab, p.top_k, sh);
      for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
        if (s[i] < kth) s[i] = -INFINITY;
      __syncthreads();
    }
    if (p.top_p < 1.0) top_p_filter(s, vocab, p.top_p, sh);
    if (p.typical_p < 1.0) typical_p_filter(s, vocab, p.typical_p, sh);
  }
  const double lse = block_lse(s, vocab, sh);
  float m = -INFINITY;  // the argmax value
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, s[i]);
  m = block_reduce(m, true, sh.f);
  if (threadIdx.x == 0) sh.chosen = INT_MAX;
  __syncthreads();
  if (!p.sample) {  // argmax, the first of equal maxima
    int best = INT_MAX;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
      if (s[i] == m) {
        best = static_cast<int>(i);
        break;
      }
    best = -block_reduce(-best, true, sh.i);
    if (threadIdx.x == 0) sh.chosen = best;
  } else {
    // The first token (in id order) whose cumulative probability exceeds u of the total.
    const int64_t chunk = (vocab + blockDim.x - 1) / blockDim.x;
    const int64_t begin = threadIdx.x * chunk, end = min(vocab, begin + chunk);
    double mine = 0.0;
    int last_positive = -1;
    for (int64_t i = begin; i < end; ++i) {
      const double prob = exp(static_cast<double>(s[i]) - lse);
      mine += prob;
      if (prob > 0) last_positive = static_cast<int>(i);
    }
    double total;
    const double before = block_exclusive_scan(mine, sh.d, &total);
    const double target = p.uniform * total;
    if (mine > 0 && before <= target && target < before + mine) {
      double cum = before;
      int pick = last_positive;
      for (int64_t i = begin; i < end; ++i) {
        const double prob = exp(static_cast<double>(s[i]) - lse);
        if (prob <= 0) continue;
        cum += prob;
        if (cum > target) {
          pick = static_cast<int>(i);
          break;
        }
      }
      atomicMin(&sh.chosen, pick);
    }
    const int fallback = block_reduce(last_positive, true, sh.i);  // rounding left no taker: the last token
    __syncthreads();
    if (threadIdx.x == 0 && sh.chosen == INT_MAX) sh.chosen = fallback;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    ids[r] = sh.chosen;
    logprobs[r] = static_cast<float>(static_cast<double>(s[sh.chosen]) - lse);
  }
  if (p.top_n > 0) top_alternatives(s, vocab, p.top_n, lse, top_ids + r * kMaxChooseTop, top_logprobs + r * kMaxChooseTop, sh);
}

}  // namespace

void choose_tokens(Dt dt, const void* logits, int64_t rows, int64_t vocab, const ChooseRow* params,
                   const int32_t* penalties, const uint32_t* masks, float* scratch, int32_t* ids, float* logprobs,
                   int32_t* top_ids, float* top_logprobs, cudaStream_t s) {
  if (rows == 0) return;
  LORAX_DISPATCH(dt, choose_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
                         static_cast<const T*>(logits), vocab, params, penalties, masks, scratch, ids, logprobs,
                         top_ids, top_logprobs));
}

}  // namespace lorax::kernels
