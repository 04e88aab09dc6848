// OCP float8 e4m3fn (as vLLM and LoRAX store an FP8 KV cache): 1 sign, 4
// exponent (bias 7), 3 mantissa bits; no infinities, 0x7f/0xff are NaN, the
// largest finite value is 448. Written by hand: no Debian package converts
// floats to it, and the CPU backend must round exactly as the CUDA kernels do
// (__nv_cvt_float_to_fp8 with __NV_SATFINITE: round to nearest even, values
// beyond 448 saturate to +-448, NaN stays NaN).
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace lorax {

inline uint8_t fp8_e4m3_encode(float x) {
  if (std::isnan(x)) return 0x7f;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  if (a >= 448.0f) return sign | 0x7e;  // saturate (infinities too)
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1): the leading bit has weight 2^(e-1)
  // Three mantissa bits below the leading one; subnormals (below 2^-6) have a
  // fixed step of 2^-9.
  const int step_exp = e - 1 < -6 ? -9 : e - 1 - 3;
  const float q = std::nearbyint(std::ldexp(a, -step_exp));  // round half to even (default mode)
  const float rounded = std::ldexp(q, step_exp);
  if (rounded < 0x1p-6f) return sign | static_cast<uint8_t>(q);  // subnormal (or zero): code = multiples of 2^-9
  int re;
  const float f = std::frexp(rounded, &re);  // rounding may have carried into the next binade
  const int exp_field = re - 1 + 7;
  const int mantissa = static_cast<int>(std::ldexp(f, 4)) - 8;  // f in [0.5, 1) -> 8..15
  return sign | static_cast<uint8_t>(exp_field << 3 | mantissa);
}

inline float fp8_e4m3_decode(uint8_t code) {
  const int exp_field = (code >> 3) & 0xf, mantissa = code & 7;
  float v;
  if (exp_field == 0xf && mantissa == 7)
    v = NAN;
  else if (exp_field == 0)
    v = std::ldexp(static_cast<float>(mantissa), -9);
  else
    v = std::ldexp(static_cast<float>(8 + mantissa), exp_field - 7 - 3);
  return code & 0x80 ? -v : v;
}

// All 256 values, for decoding in inner loops.
inline const std::array<float, 256>& fp8_e4m3_values() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = fp8_e4m3_decode(static_cast<uint8_t>(c));
    return t;
  }();
  return table;
}

}  // namespace lorax
