// The matcher's frames. Each stack's top frame decides what the next byte may
// be; a frame that completes pops itself and tells the frame below (a value's
// end moves an object to "after a value", an array's count up, the root to
// done). Numbers and enum numbers have no closing byte: they end when a byte
// cannot continue them, which the frame below then reads.
#include "structured/json_matcher.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

namespace lorax::structured {
namespace {

enum Kind : uint8_t { kRoot, kValue, kObject, kKey, kArray, kString, kNumber, kLiteral };

// Object phases.
enum : uint8_t { kObjOpen, kObjKey, kObjColon, kObjValue, kObjAfterValue, kObjNeedKey };
// Array phases.
enum : uint8_t { kArrOpen, kArrItem, kArrAfterItem, kArrNeedItem };
// Number phases.
enum : uint8_t { kNumSign, kNumZero, kNumInt, kNumDot, kNumFrac, kNumExp, kNumExpSign, kNumExpDigits };

constexpr int kMaxFracDigits = 15, kMaxExpDigits = 2, kMaxIntDigits = 15;  // e99 at most: no double overflows

Frame frame_of(int32_t node, uint8_t kind = 0) {
  Frame f;
  f.node = node;
  f.kind = kind;
  return f;
}

bool is_ws(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
int hex_value(uint8_t c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ---- UTF-8 inside strings: b's bits 0-3 mode, 4-5 count, 6-8 range, 8+ \u value ----
enum : int32_t { kStrNormal = 0, kStrEscape = 1, kStrUnicode = 2, kStrUtf8 = 3 };
int32_t str_mode(int32_t b) { return b & 0xF; }

// The first continuation byte's range after a lead byte (RFC 3629 table 3-7).
struct Range {
  uint8_t lo, hi;
};
constexpr Range kContinuation[] = {{0x80, 0xBF}, {0xA0, 0xBF}, {0x80, 0x9F}, {0x90, 0xBF}, {0x80, 0x8F}};

// A lead byte: how many continuation bytes follow and which range code the first has; -1 if invalid.
int utf8_lead(uint8_t c, int& range) {
  range = 0;
  if (c >= 0xC2 && c <= 0xDF) return 1;
  if (c == 0xE0) return range = 1, 2;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return 2;
  if (c == 0xED) return range = 2, 2;
  if (c == 0xF0) return range = 3, 3;
  if (c >= 0xF1 && c <= 0xF3) return 3;
  if (c == 0xF4) return range = 4, 3;
  return -1;
}

// Feeds one string byte (not the closing quote) to the UTF-8/escape state `b`.
// Returns false when invalid; sets `char_done` when a character ended.
bool string_byte(int32_t& b, uint8_t c, bool& char_done) {
  char_done = false;
  switch (str_mode(b)) {
    case kStrNormal:
      if (c == '\\') return b = kStrEscape, true;
      if (c < 0x20 || c == '"') return false;
      if (c < 0x80) return char_done = true;
      {
        int range;
        const int n = utf8_lead(c, range);
        if (n < 0) return false;
        b = kStrUtf8 | (n << 4) | (range << 6);
        return true;
      }
    case kStrEscape:
      if (c == 'u') return b = kStrUnicode, true;
      if (!std::strchr("\"\\/bfnrt", c) || c == 0) return false;
      b = kStrNormal;
      return char_done = true;
    case kStrUnicode: {
      const int h = hex_value(c);
      if (h < 0) return false;
      const int k = (b >> 4) & 3, v = ((b >> 8) << 4) | h;
      if (k == 3) {
        if (v >= 0xD800 && v <= 0xDFFF) return false;  // surrogates: see json_matcher.h
        b = kStrNormal;
        return char_done = true;
      }
      b = kStrUnicode | ((k + 1) << 4) | (v << 8);
      return true;
    }
    default: {  // kStrUtf8
      const int n = (b >> 4) & 3, range = (b >> 6) & 7;
      const Range r = kContinuation[range];
      if (c < r.lo || c > r.hi) return false;
      if (n == 1) {
        b = kStrNormal;
        return char_done = true;
      }
      b = kStrUtf8 | ((n - 1) << 4);  // later continuations: 80-BF
      return true;
    }
  }
}

// ---- string formats: a = position, b = the digits or sub-state the format needs ----
int days_in_month(int year, int month) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
  return days[month - 1];
}

// YYYY-MM-DD at positions 0-9; b accumulates the digits (YYYYMMDD). Valid for
// Python's date.fromisoformat: year >= 1, real month and day.
bool date_byte(int32_t pos, int32_t& b, uint8_t c) {
  if (pos == 4 || pos == 7) return c == '-';
  if (!is_digit(c)) return false;
  const int d = c - '0';
  switch (pos) {
    case 3:
      if (b == 0 && d == 0) return false;  // year 0000
      break;
    case 5:
      if (d > 1) return false;
      break;
    case 6: {
      const int month = (b % 10) * 10 + d;
      if (month < 1 || month > 12) return false;
      break;
    }
    case 8: {
      const int y = b / 100, m = b % 100;
      if (d > days_in_month(y, m) / 10) return false;
      break;
    }
    case 9: {
      const int y = b / 1000, m = b / 10 % 100, day = (b % 10) * 10 + d;
      if (day < 1 || day > days_in_month(y, m)) return false;
      break;
    }
    default: break;
  }
  b = b * 10 + d;
  return true;
}

// RFC 3339 time: HH:MM:SS[.frac](Z|+HH:MM|-HH:MM). pos 0-7 the fixed part, 8 after
// the seconds, 9 in the fraction (b = its digits), 10-14 the offset's HH:MM, 15 done.
bool time_byte(int32_t& pos, int32_t& b, uint8_t c) {
  auto two_digits = [&](int first, int tens_max, int ones_max_if_top) {
    if (!is_digit(c)) return false;
    const int d = c - '0';
    if (pos == first) {
      if (d > tens_max) return false;
      b = d;
    } else if (b == tens_max && ones_max_if_top >= 0 && d > ones_max_if_top) {
      return false;
    }
    ++pos;
    return true;
  };
  switch (pos) {
    case 0: case 1: return two_digits(0, 2, 3);
    case 2: case 5: return c == ':' ? (++pos, true) : false;
    case 3: case 4: return two_digits(3, 5, -1);
    case 6: case 7: return two_digits(6, 5, -1);
    case 8:
    case 9:
      if (pos == 8 && c == '.') return pos = 9, b = 0, true;
      if (pos == 9 && is_digit(c)) return b < 9 ? (++b, true) : false;
      if (pos == 9 && b == 0) return false;
      if (c == 'Z') return pos = 15, true;
      if (c == '+' || c == '-') return pos = 10, true;
      return false;
    case 10: case 11: {
      int p = pos - 10;
      pos = p;
      const bool ok = two_digits(0, 2, 3);
      pos = ok ? pos + 10 : p + 10;
      return ok;
    }
    case 12: return c == ':' ? (++pos, true) : false;
    case 13: case 14: {
      int p = pos - 13;
      pos = p;
      const bool ok = two_digits(0, 5, -1);
      pos = ok ? pos + 13 : p + 13;
      return ok;
    }
    default: return false;
  }
}

bool is_email_local(uint8_t c) { return std::isalnum(c) || std::strchr("._%+-", c); }
bool is_email_domain(uint8_t c) { return std::isalnum(c) || c == '-'; }

// Feeds one byte of a formatted string; false when it cannot be part of one.
bool format_byte(StringFormat f, int32_t& a, int32_t& b, uint8_t c) {
  if (c == 0) return false;
  switch (f) {
    case StringFormat::Uuid:
      if (a >= 36) return false;
      if (a == 8 || a == 13 || a == 18 || a == 23) return c == '-' ? (++a, true) : false;
      return hex_value(c) >= 0 ? (++a, true) : false;
    case StringFormat::Date:
      if (a >= 10 || !date_byte(a, b, c)) return false;
      return ++a, true;
    case StringFormat::DateTime:
      if (a < 10) return date_byte(a, b, c) ? (++a, true) : false;
      if (a == 10) return c == 'T' ? (a = 11, b = 0, true) : false;
      {
        int32_t pos = a - 11;
        if (!time_byte(pos, b, c)) return false;
        a = pos + 11;
        return true;
      }
    case StringFormat::Time: return time_byte(a, b, c);
    case StringFormat::Email:
      // b: 0 empty local part, 4 in the local part, 1 after '@', 2 in a domain label, 3 after a dot.
      // Nothing is counted, so that states repeat and their masks are cached.
      if (b == 0 || b == 4) {
        if (c == '@') return b == 4 ? (b = 1, true) : false;
        return is_email_local(c) ? (b = 4, true) : false;
      }
      if (c == '.') return b == 2 ? (b = 3, true) : false;
      if (!is_email_domain(c)) return false;
      b = 2;
      return true;
    case StringFormat::None: break;
  }
  return false;
}

bool format_complete(StringFormat f, int32_t a, int32_t b) {
  switch (f) {
    case StringFormat::Uuid: return a == 36;
    case StringFormat::Date: return a == 10;
    case StringFormat::DateTime: return a == 11 + 15;
    case StringFormat::Time: return a == 15;
    case StringFormat::Email: return b == 2;
    case StringFormat::None: return true;
  }
  return false;
}

// ---- numbers: a = digits (int bits 0-7, fraction 8-15, exponent 16-23, negative bit 24); c = |value| ----
int int_digits(int32_t a) { return a & 0xFF; }
int frac_digits(int32_t a) { return (a >> 8) & 0xFF; }
int exp_digits(int32_t a) { return (a >> 16) & 0xFF; }
bool negative(int32_t a) { return (a >> 24) & 1; }
double value_of(uint64_t c) {
  double v;
  std::memcpy(&v, &c, sizeof v);
  return v;
}
uint64_t bits_of(double v) {
  uint64_t c;
  std::memcpy(&c, &v, sizeof c);
  return c;
}

// Some value in [lo, hi] (with the given openness) lies in `r`.
bool meets(const NumberRange& r, long double lo, bool lo_open, long double hi, bool hi_open) {
  long double l = lo, h = hi;
  bool lopen = lo_open, hopen = hi_open;
  if (r.lo > l || (r.lo == l && r.lo_exclusive)) l = r.lo, lopen = r.lo_exclusive;
  if (r.hi < h || (r.hi == h && r.hi_exclusive)) h = r.hi, hopen = r.hi_exclusive;
  return l < h || (l == h && !lopen && !hopen);
}

// A signed view of an interval of absolute values [a, b) (closed at b when `b_closed`).
bool meets_abs(const NumberRange& r, bool neg, long double a, long double b, bool b_closed) {
  if (neg) return meets(r, -b, !b_closed, -a, false);
  return meets(r, a, false, b, !b_closed);
}

// Whether the number written so far can still end inside the node's range.
bool number_feasible(const Node& n, uint8_t phase, int32_t a, double v) {
  if (!n.range.bounded()) return true;
  const bool integer = n.kind == NodeKind::Integer, neg = negative(a);
  const long double cap = std::pow(10.0L, kMaxIntDigits);
  switch (phase) {
    case kNumSign: return integer ? meets(n.range, -(cap - 1), false, 0, false) : meets(n.range, -cap, true, 0, false);
    case kNumZero: return integer ? n.range.contains(0) : meets_abs(n.range, neg, 0, 1, false);
    case kNumInt: {
      // The value itself, or more digits: [v*10^j, (v+1)*10^j) for j digits more.
      long double scale = 1;
      for (int j = 0; int_digits(a) + j <= kMaxIntDigits; ++j, scale *= 10) {
        if (integer) {
          if (j == 0 ? n.range.contains(neg ? -v : v)
                     : meets_abs(n.range, neg, v * scale, (v + 1) * scale - 1, true))
            return true;
        } else if (meets_abs(n.range, neg, v * scale, (v + 1) * scale, false)) {
          return true;
        }
      }
      return false;
    }
    case kNumDot: return meets_abs(n.range, neg, v, v + 1, false);
    case kNumFrac: return meets_abs(n.range, neg, v, v + std::pow(10.0L, -frac_digits(a)), false);
    default: return true;  // exponents only without a range
  }
}

bool number_endable(const Node& n, const Frame& f) {
  if (f.phase != kNumZero && f.phase != kNumInt && f.phase != kNumFrac && f.phase != kNumExpDigits) return false;
  if (!n.range.bounded() || n.kind == NodeKind::Any) return true;
  const double v = value_of(f.c);
  return n.range.contains(negative(f.a) ? -static_cast<long double>(v) : v);
}

// Feeds a byte that continues the number; false when it does not.
bool number_byte(const Node& n, Frame& f, uint8_t c) {
  const bool any = n.kind == NodeKind::Any, integer = n.kind == NodeKind::Integer;
  const bool bounded = !any && n.range.bounded();
  double v = value_of(f.c);
  int32_t a = f.a;
  uint8_t phase = f.phase;
  const int d = c - '0';
  switch (f.phase) {
    case kNumSign:
      if (!is_digit(c)) return false;
      phase = d == 0 ? kNumZero : kNumInt;
      v = d;
      a |= 1;
      break;
    case kNumZero:
    case kNumInt:
      if (is_digit(c) && f.phase == kNumInt) {
        if (int_digits(a) >= kMaxIntDigits) return false;
        v = v * 10 + d;
        ++a;
      } else if (c == '.' && !integer) {
        phase = kNumDot;
      } else if ((c == 'e' || c == 'E') && !integer && !bounded) {
        phase = kNumExp;
      } else {
        return false;
      }
      break;
    case kNumDot:
    case kNumFrac:
      if (is_digit(c)) {
        if (frac_digits(a) >= kMaxFracDigits) return false;
        a += 1 << 8;
        v += d * std::pow(10.0, -frac_digits(a));
        phase = kNumFrac;
      } else if ((c == 'e' || c == 'E') && f.phase == kNumFrac && !bounded) {
        phase = kNumExp;
      } else {
        return false;
      }
      break;
    case kNumExp:
      if (c == '+' || c == '-') {
        phase = kNumExpSign;
        break;
      }
      [[fallthrough]];
    case kNumExpSign:
    case kNumExpDigits:
      if (!is_digit(c) || exp_digits(a) >= kMaxExpDigits) return false;
      a += 1 << 16;
      phase = kNumExpDigits;
      break;
    default: return false;
  }
  if (bounded && !number_feasible(n, phase, a, v)) return false;
  f.phase = phase;
  f.a = a;
  f.c = bounded ? bits_of(v) : 0;  // unbounded: the value does not matter, and equal states share masks
  return true;
}

// ---- literals (enum, const, true/false/null): a..b the candidate range, c the position ----
bool literal_complete(const Node& n, const Frame& f) {
  return f.a < f.b && n.literals[f.a].size() == f.c;
}

class Feeder {
 public:
  Feeder(const Schema& s, std::vector<Stack>& out) : s_(s), out_(out) {}

  void feed(Stack& st, uint8_t c) {
    Frame& f = st.back();
    switch (f.kind) {
      case kRoot: return;  // done: nothing may follow
      case kValue: return value(st, c);
      case kObject: return object(st, c);
      case kKey: return key(st, c);
      case kArray: return array(st, c);
      case kString: return string(st, c);
      case kNumber: return number(st, c);
      case kLiteral: return literal(st, c);
      default: return;
    }
  }

 private:
  void emit(const Stack& st) { out_.push_back(st); }

  static bool whitespace(Frame& f, uint8_t c) {
    if (!is_ws(c)) return false;
    if (f.ws < kMaxWhitespace) ++f.ws;
    else f.ws = kMaxWhitespace + 1;  // over the cap: this stack dies
    return true;
  }

  // The frame on top finished: pop it and move the frame below on.
  static void complete(Stack& st) {
    st.pop_back();
    Frame& p = st.back();
    p.ws = 0;
    if (p.kind == kRoot) p.phase = 1;
    else if (p.kind == kObject) p.phase = kObjAfterValue;
    else if (p.kind == kArray) p.phase = kArrAfterItem, ++p.a;
  }

  void push_value(Stack& st, int32_t node, uint8_t c, bool feed_now) {
    if (st.size() >= kMaxDepth) return;
    st.push_back(frame_of(node, kValue));
    if (feed_now) feed(st, c);
    else emit(st);
  }

  void value(Stack& st, uint8_t c) {
    if (whitespace(st.back(), c)) {
      if (st.back().ws <= kMaxWhitespace) emit(st);
      return;
    }
    const auto& leaves = s_.node(st.back().node).leaves;
    if (leaves.size() == 1) return begin(st, leaves[0], c);
    for (int32_t leaf : leaves) {
      Stack t = st;
      begin(t, leaf, c);
    }
  }

  // Starts a value of the (non-AnyOf) node `leaf` with its first byte `c`.
  void begin(Stack& st, int32_t leaf, uint8_t c) {
    const Node& n = s_.node(leaf);
    Frame& f = st.back();
    f = frame_of(leaf);
    switch (n.kind) {
      case NodeKind::Any:
        if (c == '{') return f.kind = kObject, f.phase = kObjOpen, emit(st);
        if (c == '[') return f.kind = kArray, f.phase = kArrOpen, emit(st);
        if (c == '"') return f.kind = kString, emit(st);
        if (c == '-' || is_digit(c)) return f.kind = kNumber, start_number(st, c);
        f.node = s_.any_literals();
        return start_literal(st, c);
      case NodeKind::Literals: return start_literal(st, c);
      case NodeKind::String:
        if (c == '"') f.kind = kString, emit(st);
        return;
      case NodeKind::Integer:
      case NodeKind::Number:
        if (c == '-' || is_digit(c)) f.kind = kNumber, start_number(st, c);
        return;
      case NodeKind::Object:
        if (c == '{') f.kind = kObject, f.phase = kObjOpen, emit(st);
        return;
      case NodeKind::Array:
        if (c == '[') f.kind = kArray, f.phase = kArrOpen, emit(st);
        return;
      default: return;
    }
  }

  void start_number(Stack& st, uint8_t c) {
    Frame& f = st.back();
    const Node& n = s_.node(f.node);
    if (c == '-') {
      f.phase = kNumSign;
      f.a = 1 << 24;
      if (n.kind == NodeKind::Any || number_feasible(n, kNumSign, f.a, 0)) emit(st);
      return;
    }
    f.phase = kNumSign;  // a digit continues an empty sign-less start the same way
    if (number_byte(n, f, c)) emit(st);
  }

  void number(Stack& st, uint8_t c) {
    Frame& f = st.back();
    const Node& n = s_.node(f.node);
    Frame next = f;
    if (number_byte(n, next, c)) {
      f = next;
      return emit(st);
    }
    if (!number_endable(n, f)) return;
    complete(st);
    feed(st, c);
  }

  void start_literal(Stack& st, uint8_t c) {
    Frame& f = st.back();
    f.kind = kLiteral;
    f.a = 0;
    f.b = static_cast<int32_t>(s_.node(f.node).literals.size());
    f.c = 0;
    literal(st, c);
  }

  void literal(Stack& st, uint8_t c) {
    Frame& f = st.back();
    const auto& lits = s_.node(f.node).literals;
    const size_t pos = f.c;
    int32_t lo = f.a;
    if (lo < f.b && lits[lo].size() == pos) ++lo;  // the complete candidate sorts first
    // Candidates with byte c at pos: one run, found by binary search (bytes compare unsigned).
    auto at = [&](int32_t i) { return static_cast<uint8_t>(lits[i][pos]); };
    int32_t first = lo, last = f.b;
    while (first < last) {
      const int32_t mid = (first + last) / 2;
      if (at(mid) < c) first = mid + 1;
      else last = mid;
    }
    int32_t end = first;
    while (end < f.b && at(end) == c) ++end;
    if (first < end) {
      f.a = first;
      f.b = end;
      f.c = pos + 1;
      if (end - first == 1 && lits[first].size() == pos + 1) complete(st);  // the one candidate, written out
      return emit(st);
    }
    if (!literal_complete(s_.node(f.node), f)) return;
    complete(st);
    feed(st, c);
  }

  void string(Stack& st, uint8_t c) {
    Frame& f = st.back();
    const Node& n = s_.node(f.node);
    const bool limited = n.kind == NodeKind::String && (n.min_length > 0 || n.max_length >= 0);
    if (n.kind == NodeKind::String && n.format != StringFormat::None) {
      if (c == '"') {
        if (format_complete(n.format, f.a, f.b)) complete(st), emit(st);
        return;
      }
      if (format_byte(n.format, f.a, f.b, c)) emit(st);
      return;
    }
    if (c == '"' && str_mode(f.b) == kStrNormal) {
      if (!limited || f.a >= n.min_length) complete(st), emit(st);
      return;
    }
    // A new character may start only below maxLength.
    if (limited && n.max_length >= 0 && f.a >= n.max_length && str_mode(f.b) == kStrNormal) return;
    bool char_done;
    if (!string_byte(f.b, c, char_done)) return;
    if (char_done && limited) {
      const int64_t cap = n.max_length >= 0 ? n.max_length : n.min_length;
      f.a = static_cast<int32_t>(std::min<int64_t>(f.a + 1, cap));
    }
    emit(st);
  }

  // ---- objects ----
  struct ObjectView {
    const Node* typed;  // null for any-value objects
    int32_t additional;
  };
  ObjectView view(const Frame& f) const {
    const Node& n = s_.node(f.node);
    if (n.kind == NodeKind::Any) return {nullptr, s_.any()};
    return {&n, n.additional};
  }
  bool can_add_key(const Frame& f) const {
    ObjectView v = view(f);
    if (v.additional >= 0) return true;
    return (v.typed->keys.nodes[0].below & ~f.c) != 0;
  }
  bool required_done(const Frame& f) const {
    ObjectView v = view(f);
    return !v.typed || (v.typed->required_mask & ~f.c) == 0;
  }

  void object(Stack& st, uint8_t c) {
    Frame& f = st.back();
    if (whitespace(f, c)) {
      if (f.ws <= kMaxWhitespace) emit(st);
      return;
    }
    switch (f.phase) {
      case kObjOpen:
      case kObjNeedKey:
        if (c == '"' && can_add_key(f) && st.size() < kMaxDepth) {
          f.phase = kObjKey;
          f.ws = 0;
          Frame k = frame_of(f.node, kKey);
          k.a = view(f).typed ? 0 : -1;
          st.push_back(k);
          return emit(st);
        }
        if (c == '}' && f.phase == kObjOpen && required_done(f)) return complete(st), emit(st);
        return;
      case kObjColon:
        if (c != ':') return;
        f.phase = kObjValue;
        f.ws = 0;
        {
          ObjectView v = view(f);
          const int32_t node = f.b >= 0 ? v.typed->properties[f.b].node : v.additional;
          push_value(st, node, c, false);
        }
        return;
      case kObjAfterValue:
        if (c == ',' && can_add_key(f)) {
          f.phase = kObjNeedKey;
          f.ws = 0;
          return emit(st);
        }
        if (c == '}' && required_done(f)) return complete(st), emit(st);
        return;
      default: return;
    }
  }

  void key(Stack& st, uint8_t c) {
    Frame& k = st.back();
    Frame& obj = st[st.size() - 2];
    ObjectView v = view(obj);
    if (c == '"') {
      if (str_mode(k.b) != kStrNormal) return;
      int32_t prop = -1;
      if (k.a >= 0) {
        const int32_t p = v.typed->keys.nodes[k.a].property;
        if (p >= 0) {
          if (obj.c >> p & 1) return;  // written already
          prop = p;
        }
      }
      if (prop < 0 && v.additional < 0) return;
      st.pop_back();
      Frame& o = st.back();
      o.phase = kObjColon;
      o.ws = 0;
      o.b = prop;
      if (prop >= 0) o.c |= uint64_t{1} << prop;
      return emit(st);
    }
    if (c == '\\') return;  // keys are written without escapes
    bool char_done;
    if (!string_byte(k.b, c, char_done)) return;
    if (k.a >= 0) {
      const int32_t next = v.typed->keys.child(k.a, c);
      // Stay on a name only while some unwritten property lies ahead on it.
      if (next >= 0 && (v.typed->keys.nodes[next].below & ~obj.c) != 0) k.a = next;
      else if (v.additional >= 0) k.a = -1;
      else return;
    }
    emit(st);
  }

  // ---- arrays ----
  void array(Stack& st, uint8_t c) {
    Frame& f = st.back();
    const Node& n = s_.node(f.node);
    const bool any = n.kind == NodeKind::Any;
    const int32_t items = any ? s_.any() : n.items;
    const int64_t min_items = any ? 0 : n.min_items, max_items = any ? -1 : n.max_items;
    const bool items_ok = s_.node(items).satisfiable;
    if (whitespace(f, c)) {
      if (f.ws <= kMaxWhitespace) emit(st);
      return;
    }
    switch (f.phase) {
      case kArrOpen:
        if (c == ']') {
          if (min_items == 0) complete(st), emit(st);
          return;
        }
        [[fallthrough]];
      case kArrNeedItem:
        if (!items_ok || (max_items >= 0 && f.a >= max_items)) return;
        f.phase = kArrItem;
        f.ws = 0;
        return push_value(st, items, c, true);
      case kArrAfterItem:
        if (c == ',' && (max_items < 0 || f.a < max_items)) {
          f.phase = kArrNeedItem;
          f.ws = 0;
          return emit(st);
        }
        if (c == ']' && f.a >= min_items) complete(st), emit(st);
        return;
      default: return;
    }
  }

  const Schema& s_;
  std::vector<Stack>& out_;
};

// Numbers and complete literals at the top of a stack end with the text.
bool stack_can_finish(const Schema& s, const Stack& st) {
  {
    const Frame& f = st.back();
    if (f.kind == kRoot) return f.phase == 1;
    const bool ends = (f.kind == kNumber && number_endable(s.node(f.node), f)) ||
                      (f.kind == kLiteral && literal_complete(s.node(f.node), f));
    return ends && st.size() == 2;  // the value is the root's
  }
}

}  // namespace

std::optional<int64_t> plain_string_room(const Schema& schema, const MatchState& state) {
  if (state.stacks.size() != 1) return std::nullopt;
  const Frame& f = state.stacks[0].back();
  if (str_mode(f.b) != kStrNormal) return std::nullopt;
  if (f.kind == kKey) {
    if (f.a >= 0) return std::nullopt;  // still on a property name
    return INT64_MAX;
  }
  if (f.kind != kString) return std::nullopt;
  const Node& n = schema.node(f.node);
  if (n.kind != NodeKind::String) return INT64_MAX;  // a string of an any-value
  if (n.format != StringFormat::None) return std::nullopt;
  return n.max_length < 0 ? INT64_MAX : n.max_length - f.a;
}

MatchState initial_state(const Schema& schema) {
  MatchState s;
  Stack st = {frame_of(0, kRoot), frame_of(schema.root(), kValue)};
  s.stacks.push_back(std::move(st));
  return s;
}

bool MatchState::can_finish(const Schema& schema) const {
  for (const Stack& st : stacks)
    if (stack_can_finish(schema, st)) return true;
  return false;
}

namespace {

// A count `a` between bounds [lo, hi] (hi < 0: none) as a mask sees it from `slack`
// bytes away: -1 far below lo, -2 at or past lo and far below hi, else itself.
int32_t far_count(int64_t a, int64_t lo, int64_t hi, int64_t slack) {
  if (hi >= 0 && hi - a <= slack) return static_cast<int32_t>(a);
  if (a < lo) return lo - a > slack ? -1 : static_cast<int32_t>(a);
  return -2;
}

}  // namespace

std::string MatchState::key(const Schema& schema, int64_t slack) const {
  std::string k;
  for (const Stack& st : stacks) {
    const uint32_t n = static_cast<uint32_t>(st.size());
    k.append(reinterpret_cast<const char*>(&n), sizeof n);
    for (Frame f : st) {
      const Node& node = schema.node(f.node);
      if (f.kind == kString && node.kind == NodeKind::String && node.format == StringFormat::None)
        f.a = far_count(f.a, node.min_length, node.max_length, slack);
      else if (f.kind == kArray && node.kind == NodeKind::Array)
        f.a = far_count(f.a, node.min_items, node.max_items, slack);
      k.append(reinterpret_cast<const char*>(&f.node), sizeof f.node);
      k.push_back(static_cast<char>(f.kind));
      k.push_back(static_cast<char>(f.phase));
      k.append(reinterpret_cast<const char*>(&f.ws), sizeof f.ws);
      k.append(reinterpret_cast<const char*>(&f.a), sizeof f.a);
      k.append(reinterpret_cast<const char*>(&f.b), sizeof f.b);
      k.append(reinterpret_cast<const char*>(&f.c), sizeof f.c);
    }
  }
  return k;
}

void advance(const Schema& schema, const MatchState& in, uint8_t byte, MatchState& out) {
  out.stacks.clear();
  Feeder feeder(schema, out.stacks);
  // One working copy per thread: most bytes are rejected, and a rejection then costs no allocation.
  thread_local Stack work;
  for (const Stack& st : in.stacks) {
    work = st;
    feeder.feed(work, byte);
  }
  if (out.stacks.size() > 1) {  // alternatives that converged are one
    std::sort(out.stacks.begin(), out.stacks.end());
    out.stacks.erase(std::unique(out.stacks.begin(), out.stacks.end()), out.stacks.end());
  }
}

bool advance(const Schema& schema, MatchState& state, std::string_view bytes) {
  MatchState cur = state, next;
  for (char ch : bytes) {
    advance(schema, cur, static_cast<uint8_t>(ch), next);
    if (next.dead()) return false;
    std::swap(cur, next);
  }
  state = std::move(cur);
  return true;
}

}  // namespace lorax::structured
