#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/unicode.h"

namespace lorax::tok {
namespace {

struct Tables {
  std::array<std::string, 256> encoded;  // byte -> UTF-8 of its character
  std::array<int, 512> decoded;          // code point -> byte, -1 when not in the alphabet
  Tables() {
    decoded.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      utf8_append(encoded[b], cp);
      decoded[cp] = b;
    }
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += t.encoded[b];
  return out;
}

bool byte_level_to_bytes(std::string_view s, std::string& out) {
  const auto& t = tables();
  size_t start = out.size();
  for (size_t i = 0; i < s.size();) {
    int n;
    char32_t c = utf8_decode(s, i, &n);
    i += n;
    if (c >= 512 || t.decoded[c] < 0) {
      out.resize(start);
      return false;
    }
    out += static_cast<char>(t.decoded[c]);
  }
  return true;
}

}  // namespace lorax::tok
