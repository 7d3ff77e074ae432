#include "image/openssl.h"

#include <dlfcn.h>

namespace ckpt::image {

namespace {

// libssl's soname of the OpenSSL 3 ABI the headers describe; it brings
// libcrypto, whose calls dlsym finds through it.
constexpr char kLibrary[] = "libssl.so.3";

Result<OpenSsl> load() {
  void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return error(ENOENT, "open {} for --psk-file/--tls: {} (Debian's package libssl3 has it)", kLibrary, dlerror());
  OpenSsl o;
#define CKPT_OPENSSL_LOOKUP(f)                                                           \
  o.f = reinterpret_cast<decltype(o.f)>(dlsym(lib, #f));                                 \
  if (!o.f) return error(ENOENT, "{}: no {}: {}", kLibrary, #f, dlerror());
  CKPT_OPENSSL_CALLS(CKPT_OPENSSL_LOOKUP)
#undef CKPT_OPENSSL_LOOKUP
  return o;  // the library stays open: its calls are in use until exit
}

}  // namespace

Sha256 hmac_sha256(const OpenSsl& o, std::string_view key, std::string_view msg) {
  Sha256 out{};
  unsigned len = 0;
  o.HMAC(o.EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
         msg.size(), out.data(), &len);
  return out;
}

Result<const OpenSsl*> openssl() {
  static const Result<OpenSsl> lib = load();
  if (!lib) return std::unexpected(lib.error());
  return &*lib;
}

}  // namespace ckpt::image
