#include "tokenizer/jinja/utf8.h"

#include <algorithm>

namespace lorax::jinja::utf8 {

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    char32_t cp;
    int extra;
    if (c < 0x80) { cp = c; extra = 0; }
    else if ((c >> 5) == 6) { cp = c & 0x1f; extra = 1; }
    else if ((c >> 4) == 14) { cp = c & 0x0f; extra = 2; }
    else if ((c >> 3) == 30) { cp = c & 0x07; extra = 3; }
    else { out.push_back(0xFFFD); ++i; continue; }
    bool ok = true;
    for (int k = 1; k <= extra; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) >> 6) != 2) { ok = false; break; }
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    }
    if (!ok) { out.push_back(0xFFFD); ++i; continue; }
    out.push_back(cp);
    i += extra + 1;
  }
  return out;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

std::string encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append(out, c);
  return out;
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

bool is_alpha_ascii(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Case mappings for the scripts chat messages commonly use (Latin incl.
// Extended-A and Vietnamese, Greek, Cyrillic, Armenian, fullwidth Latin);
// hand-written because the library avoids a Unicode dependency. Letters
// outside these ranges are left unchanged.
namespace {

// Ranges where upper and lower case alternate: `upper_even` says whether the
// even code points are the capitals.
struct PairRange {
  char32_t first, last;
  bool upper_even;
};
constexpr PairRange kPairs[] = {
    {0x0100, 0x012F, true}, {0x0132, 0x0137, true}, {0x0139, 0x0148, false}, {0x014A, 0x0177, true},
    {0x0179, 0x017E, false}, {0x0460, 0x0481, true}, {0x048A, 0x04BF, true}, {0x04C1, 0x04CE, false},
    {0x04D0, 0x052F, true}, {0x1E00, 0x1E95, true}, {0x1EA0, 0x1EFF, true},
};

// Ranges where capitals sit at a fixed distance below their small letters.
struct OffsetRange {
  char32_t upper_first, upper_last;
  char32_t offset;
};
constexpr OffsetRange kOffsets[] = {
    {'A', 'Z', 32},       {0x00C0, 0x00D6, 32},  {0x00D8, 0x00DE, 32}, {0x0391, 0x03A1, 32}, {0x03A3, 0x03AB, 32},
    {0x0410, 0x042F, 32}, {0x0400, 0x040F, 80},  {0x0531, 0x0556, 48}, {0xFF21, 0xFF3A, 32}, {0x0388, 0x038A, 37},
    {0x038E, 0x038F, 63},
};

struct Single {
  char32_t upper, lower;
};
constexpr Single kSingles[] = {{0x0178, 0x00FF}, {0x0386, 0x03AC}, {0x038C, 0x03CC}, {0x04C0, 0x04CF}};

}  // namespace

char32_t to_upper(char32_t c) {
  for (const auto& r : kOffsets)
    if (c >= r.upper_first + r.offset && c <= r.upper_last + r.offset) return c - r.offset;
  for (const auto& r : kPairs)
    if (c >= r.first && c <= r.last && ((c % 2 == 0) != r.upper_even)) return c - 1;
  for (const auto& p : kSingles)
    if (c == p.lower) return p.upper;
  switch (c) {
    case 0x00B5: return 0x039C;  // micro sign
    case 0x0131: return 'I';     // dotless i
    case 0x017F: return 'S';     // long s
    case 0x03C2: return 0x03A3;  // final sigma
    default: return c;
  }
}

char32_t to_lower(char32_t c) {
  for (const auto& r : kOffsets)
    if (c >= r.upper_first && c <= r.upper_last) return c + r.offset;
  for (const auto& r : kPairs)
    if (c >= r.first && c <= r.last && ((c % 2 == 0) == r.upper_even)) return c + 1;
  for (const auto& p : kSingles)
    if (c == p.upper) return p.lower;
  if (c == 0x1E9E) return 0x00DF;  // capital sharp s
  return c;
}

std::u32string upper_full(char32_t c) {
  switch (c) {
    case 0x00DF: return U"SS";
    case 0x0149: return U"\u02BCN";
    default: return std::u32string(1, to_upper(c));
  }
}

std::u32string lower_full(char32_t c) {
  if (c == 0x0130) return U"i\u0307";
  return std::u32string(1, to_lower(c));
}

bool is_cased_letter(char32_t c) {
  return to_upper(c) != c || to_lower(c) != c || c == 0x00DF || c == 0x0149 || c == 0x0138 || c == 0x0130;
}

std::string strip(std::string_view s, bool left, bool right, const std::u32string* chars) {
  std::u32string u = decode(s);
  auto drop = [&](char32_t c) {
    return chars ? std::find(chars->begin(), chars->end(), c) != chars->end() : is_space(c);
  };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && drop(u[b])) ++b;
  if (right)
    while (e > b && drop(u[e - 1])) --e;
  return encode(u.substr(b, e - b));
}

}  // namespace lorax::jinja::utf8
