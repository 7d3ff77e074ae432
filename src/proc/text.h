// Small pieces every /proc parser uses: whole-token numbers, lines, fields.
#pragma once

#include <algorithm>
#include <charconv>
#include <string_view>

namespace ckpt::proc {

// A whole token as a number: no "0x", no trailing junk.
template <typename T>
bool parse_num(std::string_view s, int base, T& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && end == s.data() + s.size();
}

// Takes the next line (without its '\n') off the front of `text`.
inline bool next_line(std::string_view& text, std::string_view& line) {
  if (text.empty()) return false;
  size_t nl = std::min(text.find('\n'), text.size());
  line = text.substr(0, nl);
  text.remove_prefix(std::min(nl + 1, text.size()));
  return true;
}

// Takes the next space-separated field off the front of `rest`.
inline std::string_view next_field(std::string_view& rest) {
  size_t b = rest.find_first_not_of(' ');
  if (b == std::string_view::npos) b = rest.size();
  rest.remove_prefix(b);
  size_t e = std::min(rest.find(' '), rest.size());
  std::string_view field = rest.substr(0, e);
  rest.remove_prefix(e);
  return field;
}

}  // namespace ckpt::proc
