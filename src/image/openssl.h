// OpenSSL, opened the first time a wire needs it (--psk-file, --tls) instead
// of linked in: its static copy cost every ckpt run 0.27 ms at start
// (relocations of its tables, a CPUID probe in its constructor), and few runs
// speak to a peer. The headers give the types and constants; the calls go
// through the table below, named as OpenSSL names them.
#pragma once

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include <array>
#include <string_view>

#include "base/result.h"

namespace ckpt::image {

#define CKPT_OPENSSL_CALLS(X)                                                                              \
  X(HMAC) X(EVP_sha256) X(CRYPTO_memcmp) X(ERR_get_error) X(ERR_error_string_n) X(ERR_clear_error)       \
  X(TLS_server_method) X(TLS_client_method) X(SSL_CTX_new) X(SSL_CTX_free) X(SSL_CTX_ctrl)               \
  X(SSL_CTX_set_ciphersuites) X(SSL_CTX_set_num_tickets) X(SSL_CTX_set_default_read_buffer_len)          \
  X(SSL_new) X(SSL_free) X(SSL_set_fd) X(SSL_set_ex_data) X(SSL_get_ex_data)                            \
  X(SSL_set_psk_server_callback) X(SSL_set_psk_client_callback) X(SSL_accept) X(SSL_connect)            \
  X(SSL_read) X(SSL_write) X(SSL_get_error) X(SSL_shutdown)

struct OpenSsl {
#define CKPT_OPENSSL_MEMBER(f) decltype(&::f) f;
  CKPT_OPENSSL_CALLS(CKPT_OPENSSL_MEMBER)
#undef CKPT_OPENSSL_MEMBER
};

// Opened once a process, then kept; the error says which library or call
// is missing.
Result<const OpenSsl*> openssl();

// HMAC-SHA256 of `msg` under `key`: the key file's proofs (wire_auth.h) and
// the TLS key derived from it (wire_tls.h).
using Sha256 = std::array<unsigned char, 32>;
Sha256 hmac_sha256(const OpenSsl& o, std::string_view key, std::string_view msg);

}  // namespace ckpt::image
