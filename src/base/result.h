// Result<T>: what the user or the kernel can cause. Errors carry errno and a
// sentence that grows context as it travels outward:
//   "restore pid 4121: mmap 0x7f3a1000-0x7f3a5000 (/usr/lib/libc.so.6): EACCES"
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <expected>
#include <string>
#include <utility>

namespace ckpt {

struct Error {
  int err = 0;  // errno, 0 when the cause is not a system call
  std::string msg;

  // "what: strerror" when err is set, else just "what".
  std::string str() const;

  // Prefix with the context of an outer layer: "outer: inner".
  Error& context(std::string_view outer) {
    msg = fmt::format("{}: {}", outer, msg);
    return *this;
  }
};

// A class rather than an alias so that it can be [[nodiscard]]: a dropped
// Result is a dropped error, and the build (-Werror=unused-result) refuses it.
// Where dropping is right, say so: `(void)f();  // why`.
template <typename T>
class [[nodiscard]] Result : public std::expected<T, Error> {
 public:
  using std::expected<T, Error>::expected;
  Result(std::expected<T, Error> e) : std::expected<T, Error>(std::move(e)) {}
};

// An error from a failed system call; reads errno now.
template <typename... Args>
[[nodiscard]] std::unexpected<Error> sys_error(fmt::format_string<Args...> f, Args&&... args) {
  int e = errno;
  return std::unexpected(Error{e, fmt::format(f, std::forward<Args>(args)...)});
}

// An error with an explicit errno (0 for "not a system call").
template <typename... Args>
[[nodiscard]] std::unexpected<Error> error(int err, fmt::format_string<Args...> f, Args&&... args) {
  return std::unexpected(Error{err, fmt::format(f, std::forward<Args>(args)...)});
}

template <typename... Args>
[[nodiscard]] std::unexpected<Error> fail(fmt::format_string<Args...> f, Args&&... args) {
  return std::unexpected(Error{0, fmt::format(f, std::forward<Args>(args)...)});
}

// Name of an errno value ("EACCES"), falling back to the number.
std::string errno_name(int err);

}  // namespace ckpt

namespace ckpt::detail {
template <typename T>
T take(std::expected<T, Error>&& r) { return std::move(*r); }
inline void take(std::expected<void, Error>&&) {}
}  // namespace ckpt::detail

// TRY(expr): evaluate a Result; on error return it from the enclosing function,
// otherwise yield the value. TRY_CTX adds context on the way out.
// Not inside the braces of an aggregate after a member with a destructor:
// returning from the statement expression there skips the destructors of
// the members already made (GCC), a leak LeakSanitizer reports. Read into
// a local first.
#define CKPT_CAT2(a, b) a##b
#define CKPT_CAT(a, b) CKPT_CAT2(a, b)
#define TRY(expr)                                                           \
  ({                                                                        \
    auto CKPT_CAT(_r, __LINE__) = (expr);                                   \
    if (!CKPT_CAT(_r, __LINE__)) return std::unexpected(std::move(CKPT_CAT(_r, __LINE__).error())); \
    ::ckpt::detail::take(std::move(CKPT_CAT(_r, __LINE__)));                \
  })
#define TRY_CTX(expr, ...)                                                  \
  ({                                                                        \
    auto CKPT_CAT(_r, __LINE__) = (expr);                                   \
    if (!CKPT_CAT(_r, __LINE__))                                            \
      return std::unexpected(std::move(CKPT_CAT(_r, __LINE__).error().context(fmt::format(__VA_ARGS__)))); \
    ::ckpt::detail::take(std::move(CKPT_CAT(_r, __LINE__)));                \
  })
