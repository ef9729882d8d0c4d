// Numbers in error messages, written the way Python writes them, so that a message shows the value the
// caller passed (0.9, not 0.900000 or 0.90000000000000002). Header-only: the core and the framework shims
// (compiled separately, possibly with another libstdc++ ABI flag) share it without a C++ type crossing the
// C ABI.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace rmsprop_ops {

// repr(float(v)) in Python: the shortest digits that read back as v, in fixed notation for exponents in
// [-5, 16) and scientific ("1e-06", "1e+16") outside it, integral values with ".0".
inline std::string py_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[48];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string s(buf, res.ptr);  // e.g. "-1.2345e-05": shortest round-trip digits
  const size_t epos = s.find('e');
  const bool neg = s[0] == '-';
  std::string digits;
  for (size_t i = neg ? 1 : 0; i < epos; ++i)
    if (s[i] != '.') digits += s[i];
  const long exp = std::strtol(s.c_str() + epos + 1, nullptr, 10);
  std::string out;
  if (exp > -5 && exp < 16) {
    if (exp >= 0) {
      const size_t whole = static_cast<size_t>(exp) + 1;
      if (digits.size() <= whole)
        out = digits + std::string(whole - digits.size(), '0') + ".0";
      else
        out = digits.substr(0, whole) + "." + digits.substr(whole);
    } else {
      out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[32];  // a double's decimal exponent has at most 3 digits
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', static_cast<int>(exp < 0 ? -exp : exp));
    out += e;
  }
  return neg ? "-" + out : out;
}

// A bound or a count written by us rather than received: integral values without ".0" ("[0, 1]").
inline std::string short_repr(double v) {
  std::string s = py_repr(v);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

}  // namespace rmsprop_ops
