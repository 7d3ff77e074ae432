// fmt's compiled half, built into ckpt. Debian ships fmt only as a shared
// library, and libfmt.so pulls in libstdc++.so: loading and relocating the
// two cost every ckpt run about 0.4 ms of its ~2.3 ms start (bench/README.md,
// "Fixed costs"). With fmt's definitions here, ckpt links libstdc++
// statically. The templates fmt's headers declare but do not define are
// instantiated for char, the only character type ckpt formats.
#include <fmt/format-inl.h>

namespace fmt {
FMT_BEGIN_DETAIL_NAMESPACE
template FMT_API auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template FMT_API auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;
template FMT_API locale_ref::locale_ref(const std::locale& loc);
template FMT_API auto locale_ref::get<std::locale>() const -> std::locale;
template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl(locale_ref) -> char;
FMT_END_DETAIL_NAMESPACE
}  // namespace fmt
