// Image framing (image_file.h), CRC-32C (crc32c.h) and the pages file header
// (page_store.h). Every way a framed image can be damaged must come back as an
// error that names the file and says what is wrong, and where.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "image/crc32c.h"
#include "image/image_file.h"
#include "image/page_store.h"

namespace ckpt::image {

// A parameter as gtest prints it (else "4-byte object <...>").
void PrintTo(ImageKind k, std::ostream* os) { *os << kind_name(k); }

namespace {

// ---------------------------------------------------------------------------
// CRC-32C

// Bit-at-a-time reference (reflected, polynomial 0x82F63B78), independent of
// both the table and the SSE4.2 code paths.
uint32_t crc_reference(const void* data, size_t len) {
  auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~0u;
  while (len--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

struct CrcCase {
  const char* name;
  std::string bytes;
  uint32_t want;
};

std::string bytes_of(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return s;
}
std::string ascending(int n) {
  std::string s;
  for (int i = 0; i < n; i++) s.push_back(static_cast<char>(i));
  return s;
}
std::string descending(int n) {
  std::string s;
  for (int i = n - 1; i >= 0; i--) s.push_back(static_cast<char>(i));
  return s;
}

void PrintTo(const CrcCase& c, std::ostream* os) { *os << c.name; }

class Crc32cKnownAnswer : public testing::TestWithParam<CrcCase> {};

TEST_P(Crc32cKnownAnswer, Matches) {
  const CrcCase& tc = GetParam();
  EXPECT_EQ(crc32c(tc.bytes.data(), tc.bytes.size()), tc.want)
      << fmt::format("got {:#010x}, want {:#010x}", crc32c(tc.bytes.data(), tc.bytes.size()), tc.want);
  EXPECT_EQ(crc_reference(tc.bytes.data(), tc.bytes.size()), tc.want) << "reference implementation disagrees";
}

// "123456789" is the check value of the CRC catalogue; the 32-byte vectors
// are those of RFC 3720 (iSCSI), appendix B.4.
INSTANTIATE_TEST_SUITE_P(
    Image, Crc32cKnownAnswer,
    testing::Values(CrcCase{"Empty", "", 0x00000000u}, CrcCase{"Check123456789", "123456789", 0xE3069283u},
                    CrcCase{"ThirtyTwoZeros", std::string(32, '\0'), 0x8A9136AAu},
                    CrcCase{"ThirtyTwoOnes", std::string(32, '\xff'), 0x62A8AB43u},
                    CrcCase{"Ascending", ascending(32), 0x46DD794Eu},
                    CrcCase{"Descending", descending(32), 0x113FDB5Cu},
                    CrcCase{"IscsiReadPdu",
                            bytes_of({0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                                      0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}),
                            0xD9963A56u}),
    [](const testing::TestParamInfo<CrcCase>& i) { return i.param.name; });

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// Whatever path crc32c() takes on this CPU (SSE4.2 8 bytes at a time, then a
// byte tail), it agrees with the reference for every length and alignment.
TEST(Crc32c, MatchesReferenceAtEveryLengthAndAlignment) {
  auto buf = random_bytes(300, 1);
  for (size_t off = 0; off < 8; off++)
    for (size_t len = 0; len + off <= buf.size(); len++)
      ASSERT_EQ(crc32c(buf.data() + off, len), crc_reference(buf.data() + off, len)) << "off " << off << " len " << len;
}

// crc32c(crc32c(a), b) == crc32c(a + b), wherever the buffer is split, so that
// a checksum can be computed chunk by chunk.
TEST(Crc32c, ChainedHalvesEqualWhole) {
  for (size_t n : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 65u, 4096u, 4099u}) {
    auto buf = random_bytes(n, static_cast<uint32_t>(n) + 7);
    const uint32_t whole = crc32c(buf.data(), n);
    for (size_t split = 0; split <= n; split += (n > 100 ? 37 : 1)) {
      uint32_t first = crc32c(buf.data(), split);
      ASSERT_EQ(crc32c(first, buf.data() + split, n - split), whole) << "n " << n << " split " << split;
    }
    // Also three pieces.
    if (n >= 3) {
      uint32_t c = crc32c(buf.data(), n / 3);
      c = crc32c(c, buf.data() + n / 3, n / 3);
      c = crc32c(c, buf.data() + 2 * (n / 3), n - 2 * (n / 3));
      EXPECT_EQ(c, whole) << "n " << n;
    }
  }
}

TEST(Crc32c, DetectsSingleBitFlips) {
  auto buf = random_bytes(64, 3);
  const uint32_t good = crc32c(buf.data(), buf.size());
  for (size_t i = 0; i < buf.size() * 8; i++) {
    buf[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    EXPECT_NE(crc32c(buf.data(), buf.size()), good) << "bit " << i;
    buf[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
  }
}

// ---------------------------------------------------------------------------
// frame / unframe

img::TaskCore sample_core() {
  img::TaskCore c;
  c.set_pid(4121);
  c.set_comm("sleeper");
  c.set_umask(022);
  c.set_cwd("/home/user/a dir with spaces");
  return c;
}

template <typename T>
T get(const std::string& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}
template <typename T>
void put(std::string& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}
// Recomputes the header checksum (bytes 28..31 over 0..27) after an edit.
void reseal_header(std::string& b) { put<uint32_t>(b, 28, crc32c(b.data(), 28)); }
// Recomputes the payload checksum (and length) for whatever follows the header.
void reseal_payload(std::string& b) {
  put<uint64_t>(b, 16, b.size() - kHeaderSize);
  put<uint32_t>(b, 24, crc32c(b.data() + kHeaderSize, b.size() - kHeaderSize));
  reseal_header(b);
}

TEST(ImageFile, RoundTrip) {
  const img::TaskCore in = sample_core();
  const std::string bytes = frame(ImageKind::Core, in);
  img::TaskCore out;
  auto r = unframe("core-4121.img", bytes, ImageKind::Core, &out);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(out.SerializeAsString(), in.SerializeAsString());
  EXPECT_EQ(out.pid(), 4121);
  EXPECT_EQ(out.comm(), "sleeper");
  EXPECT_EQ(out.umask(), 022u);
  EXPECT_EQ(out.cwd(), "/home/user/a dir with spaces");
}

TEST(ImageFile, RoundTripEmptyMessage) {
  const std::string bytes = frame(ImageKind::Core, img::TaskCore{});
  EXPECT_EQ(bytes.size(), kHeaderSize);
  img::TaskCore out;
  out.set_pid(99);  // must be cleared by the parse
  auto r = unframe("core.img", bytes, ImageKind::Core, &out);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(out.pid(), 0);
}

// The header is laid out as image_file.h documents it.
TEST(ImageFile, HeaderLayout) {
  const img::TaskCore in = sample_core();
  const std::string payload = in.SerializeAsString();
  const std::string b = frame(ImageKind::Core, in);
  ASSERT_EQ(b.size(), kHeaderSize + payload.size());
  EXPECT_EQ(std::memcmp(b.data(), "CKPTIMG\0", 8), 0);
  EXPECT_EQ(get<uint32_t>(b, 8), kFormatVersion);
  EXPECT_EQ(get<uint32_t>(b, 12), static_cast<uint32_t>(ImageKind::Core));
  EXPECT_EQ(get<uint64_t>(b, 16), payload.size());
  EXPECT_EQ(get<uint32_t>(b, 24), crc32c(payload.data(), payload.size()));
  EXPECT_EQ(get<uint32_t>(b, 28), crc32c(b.data(), 28));
  EXPECT_EQ(b.substr(kHeaderSize), payload);
}

struct UnframeErrorCase {
  const char* name;
  std::function<std::string(std::string)> damage;  // framed core image in, damaged bytes out
  ImageKind expect_kind;
  std::vector<std::string> msg_has;
};
void PrintTo(const UnframeErrorCase& c, std::ostream* os) { *os << c.name; }

std::vector<UnframeErrorCase> unframe_error_cases() {
  const size_t payload_len = sample_core().SerializeAsString().size();
  return {
      {"Empty", [](std::string) { return std::string(); }, ImageKind::Core,
       {"core-1.img: ", "truncated", "offset 0", "0 bytes", "32"}},
      {"BelowHeaderSize", [](std::string b) { return b.substr(0, 31); }, ImageKind::Core,
       {"core-1.img: ", "truncated", "offset 31", "31 bytes", "needs 32"}},
      {"TruncatedPayload", [](std::string b) { return b.substr(0, b.size() - 3); }, ImageKind::Core,
       {"core-1.img: ", "truncated", fmt::format("offset {}", kHeaderSize + payload_len - 3),
        fmt::format("header says {} payload bytes", payload_len), fmt::format("file has {}", payload_len - 3)}},
      {"HeaderOnly", [](std::string b) { return b.substr(0, kHeaderSize); }, ImageKind::Core,
       {"core-1.img: ", "truncated", "offset 32"}},
      {"TrailingBytes", [](std::string b) { return b + "xyz"; }, ImageKind::Core,
       {"core-1.img: ", "trailing bytes", fmt::format("offset {}", kHeaderSize + payload_len),
        fmt::format("file has {}", payload_len + 3)}},
      {"BadMagic",
       [](std::string b) {
         b[0] = 'X';
         return b;
       },
       ImageKind::Core, {"core-1.img: ", "not a ckpt image", "bad magic", "offset 0"}},
      {"BadMagicEvenWithResealedHeader",
       [](std::string b) {
         std::memcpy(b.data(), "CRIUIMG\0", 8);
         reseal_header(b);
         return b;
       },
       ImageKind::Core, {"bad magic"}},
      {"HeaderChecksum",
       [](std::string b) {
         put<uint32_t>(b, 28, get<uint32_t>(b, 28) ^ 1);
         return b;
       },
       ImageKind::Core, {"core-1.img: ", "header checksum mismatch", "offset 0"}},
      {"HeaderFieldChangedWithoutReseal",
       [](std::string b) {
         put<uint32_t>(b, 12, static_cast<uint32_t>(ImageKind::Mm));
         return b;
       },
       ImageKind::Mm, {"header checksum mismatch"}},
      {"FutureVersion",
       [](std::string b) {
         put<uint32_t>(b, 8, 99);
         reseal_header(b);
         return b;
       },
       ImageKind::Core, {"core-1.img: ", "version 99", "newer", fmt::format("({})", kFormatVersion)}},
      {"VersionZero",
       [](std::string b) {
         put<uint32_t>(b, 8, 0);
         reseal_header(b);
         return b;
       },
       ImageKind::Core, {"core-1.img: ", "version 0", "offset 8", "invalid"}},
      {"WrongKind", [](std::string b) { return b; }, ImageKind::Mm,
       {"core-1.img: ", "holds a core image", "kind 2", "offset 12", "expected mm"}},
      {"UnknownKind",
       [](std::string b) {
         put<uint32_t>(b, 12, 77);
         reseal_header(b);
         return b;
       },
       ImageKind::Core, {"core-1.img: ", "kind 77", "expected core"}},
      {"PayloadChecksum",
       [](std::string b) {
         b[kHeaderSize + 2] ^= 0x40;
         return b;
       },
       ImageKind::Core, {"core-1.img: ", "checksum mismatch in payload", "offset 32", fmt::format("{} bytes", payload_len)}},
      {"PayloadChecksumField",
       [](std::string b) {
         put<uint32_t>(b, 24, get<uint32_t>(b, 24) + 1);
         reseal_header(b);
         return b;
       },
       ImageKind::Core, {"checksum mismatch in payload"}},
      // Valid checksums over bytes that are not a TaskCore.
      {"UndecodableInvalidWireType",
       [](std::string b) {
         b.resize(kHeaderSize);
         b += "\x0f\x01\x02\x03";  // field 1, wire type 7
         reseal_payload(b);
         return b;
       },
       ImageKind::Core, {"core-1.img: ", "offset 32", "does not decode", "core image"}},
      {"UndecodableShortString",
       [](std::string b) {
         b.resize(kHeaderSize);
         b += "\x12\x10sle";  // comm: 16 bytes announced, 3 present
         reseal_payload(b);
         return b;
       },
       ImageKind::Core, {"does not decode as a core image"}},
      {"UndecodableOverlongVarint",
       [](std::string b) {
         b.resize(kHeaderSize);
         b += "\x08" + std::string(11, '\xff');  // pid: an 11-byte varint
         reseal_payload(b);
         return b;
       },
       ImageKind::Core, {"does not decode as a core image"}},
  };
}

class UnframeError : public testing::TestWithParam<UnframeErrorCase> {};

TEST_P(UnframeError, NamesTheProblem) {
  const UnframeErrorCase& tc = GetParam();
  const std::string bytes = tc.damage(frame(ImageKind::Core, sample_core()));
  img::TaskCore out;
  auto r = unframe("core-1.img", bytes, tc.expect_kind, &out);
  ASSERT_FALSE(r) << "accepted damaged image";
  const std::string msg = r.error().str();
  EXPECT_EQ(r.error().err, EINVAL) << msg;
  EXPECT_TRUE(msg.starts_with("core-1.img: ")) << msg;
  for (const std::string& s : tc.msg_has) EXPECT_NE(msg.find(s), std::string::npos) << "no '" << s << "' in: " << msg;
}

INSTANTIATE_TEST_SUITE_P(Image, UnframeError, testing::ValuesIn(unframe_error_cases()),
                         [](const testing::TestParamInfo<UnframeErrorCase>& i) { return i.param.name; });

// An older image (version 1 of a future ckpt reading it is fine) and every
// kind round-trip; peek_kind reports the kind without decoding.
class EveryKind : public testing::TestWithParam<ImageKind> {};

TEST_P(EveryKind, FrameUnframePeek) {
  const ImageKind k = GetParam();
  img::TaskCore in = sample_core();  // the payload type does not matter to framing
  const std::string b = frame(k, in);
  auto kind = peek_kind("x.img", b);
  ASSERT_TRUE(kind) << kind.error().str();
  EXPECT_EQ(*kind, k);
  img::TaskCore out;
  auto r = unframe("x.img", b, k, &out);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(out.pid(), 4121);
  EXPECT_STRNE(kind_name(k), "unknown");
}

INSTANTIATE_TEST_SUITE_P(Image, EveryKind,
                         testing::Values(ImageKind::Inventory, ImageKind::Core, ImageKind::Mm, ImageKind::PageMap,
                                         ImageKind::Files, ImageKind::Stats),
                         [](const testing::TestParamInfo<ImageKind>& i) { return kind_name(i.param); });

TEST(ImageFile, KindNames) {
  EXPECT_STREQ(kind_name(ImageKind::Inventory), "inventory");
  EXPECT_STREQ(kind_name(ImageKind::Core), "core");
  EXPECT_STREQ(kind_name(ImageKind::Mm), "mm");
  EXPECT_STREQ(kind_name(ImageKind::PageMap), "pagemap");
  EXPECT_STREQ(kind_name(ImageKind::Files), "files");
  EXPECT_STREQ(kind_name(ImageKind::Stats), "stats");
  EXPECT_STREQ(kind_name(static_cast<ImageKind>(77)), "unknown");
}

// peek_kind checks the header (but not the payload) as unframe does.
TEST(ImageFile, PeekKindChecksHeader) {
  std::string b = frame(ImageKind::Mm, sample_core());
  b += "trailing";  // payload problems are not peek_kind's business
  auto ok = peek_kind("mm.img", b);
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(*ok, ImageKind::Mm);

  auto short_ = peek_kind("mm.img", b.substr(0, 5));
  ASSERT_FALSE(short_);
  EXPECT_NE(short_.error().msg.find("truncated"), std::string::npos) << short_.error().msg;

  std::string bad = b;
  bad[3] = 'x';
  auto magic = peek_kind("mm.img", bad);
  ASSERT_FALSE(magic);
  EXPECT_NE(magic.error().msg.find("bad magic"), std::string::npos) << magic.error().msg;

  std::string crc = b;
  crc[13] ^= 1;
  auto hcrc = peek_kind("mm.img", crc);
  ASSERT_FALSE(hcrc);
  EXPECT_NE(hcrc.error().msg.find("header checksum mismatch"), std::string::npos) << hcrc.error().msg;

  std::string future = b;
  put<uint32_t>(future, 8, 99);
  reseal_header(future);
  auto ver = peek_kind("mm.img", future);
  ASSERT_FALSE(ver);
  EXPECT_NE(ver.error().msg.find("version 99"), std::string::npos) << ver.error().msg;
}

// Any single flipped bit anywhere in the file is caught by one check or another.
TEST(ImageFile, EveryBitFlipIsCaught) {
  const std::string good = frame(ImageKind::Core, sample_core());
  for (size_t i = 0; i < good.size() * 8; i++) {
    std::string b = good;
    b[i / 8] ^= static_cast<char>(1u << (i % 8));
    img::TaskCore out;
    EXPECT_FALSE(unframe("c.img", b, ImageKind::Core, &out)) << "bit " << i << " (byte " << i / 8 << ")";
  }
}

// ---------------------------------------------------------------------------
// pages-PID.img header

class TempFile {
 public:
  TempFile() {
    path_ = fmt::format("{}/ckpt_pages_XXXXXX", testing::TempDir());
    int fd = mkstemp(path_.data());
    EXPECT_GE(fd, 0) << path_;
    fd_.reset(fd);
  }
  ~TempFile() { unlink(path_.c_str()); }
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  void write(const std::string& bytes) {
    ASSERT_EQ(ftruncate(fd(), 0), 0);
    auto r = write_all(fd(), bytes.data(), bytes.size());
    ASSERT_TRUE(r) << r.error().str();
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

std::string header_bytes(const PagesHeader& h) { return std::string(reinterpret_cast<const char*>(&h), sizeof h); }
// A whole pages file: header, padding to 4096, then `data_bytes` of data.
std::string pages_file(uint64_t data_bytes) {
  std::string b = header_bytes(make_pages_header(data_bytes));
  b.resize(kPagesDataOffset, '\0');
  for (uint64_t i = 0; i < data_bytes; i++) b.push_back(static_cast<char>(i * 7));
  return b;
}

TEST(PagesHeader, Layout) {
  PagesHeader h = make_pages_header(3 * 4096);
  EXPECT_EQ(std::memcmp(h.magic, "CKPTPAGE", 8), 0);
  EXPECT_EQ(h.version, kFormatVersion);
  EXPECT_EQ(h.page_size, 4096u);
  EXPECT_EQ(h.data_bytes, 3u * 4096);
  EXPECT_EQ(h.crc, crc32c(&h, offsetof(PagesHeader, crc)));
  EXPECT_LE(sizeof(PagesHeader), kPagesDataOffset);
}

struct PagesCase {
  const char* name;
  std::string bytes;
  bool ok;
  uint64_t data_bytes;               // when ok
  std::vector<std::string> msg_has;  // when not
};
void PrintTo(const PagesCase& c, std::ostream* os) { *os << c.name; }

std::vector<PagesCase> pages_cases() {
  std::vector<PagesCase> v;
  v.push_back({"NoData", pages_file(0), true, 0, {}});
  v.push_back({"ThreePages", pages_file(3 * 4096), true, 3 * 4096, {}});
  {
    std::string b = pages_file(2 * 4096);
    b += "extra";  // a longer file is allowed: data is located by the pagemap
    v.push_back({"LongerThanNeeded", b, true, 2 * 4096, {}});
  }
  v.push_back({"Empty", "", false, 0, {"pages-1.img: ", "truncated", "offset 0", "no page file header"}});
  v.push_back({"ShortHeader", pages_file(0).substr(0, 10), false, 0, {"pages-1.img: ", "truncated", "offset 10"}});
  v.push_back({"TruncatedData", pages_file(2 * 4096).substr(0, 4096 + 4096 + 100), false, 0,
               {"pages-1.img: ", "truncated", fmt::format("offset {}", 2 * 4096 + 100),
                fmt::format("end at {}", 3 * 4096)}});
  v.push_back({"HeaderPageOnly", pages_file(4096).substr(0, 4096), false, 0, {"truncated", "offset 4096", "end at 8192"}});
  {
    std::string b = pages_file(4096);
    b[0] = 'X';
    v.push_back({"BadMagic", b, false, 0, {"pages-1.img: ", "bad magic", "offset 0"}});
  }
  {
    std::string b = pages_file(4096);
    std::memcpy(b.data(), "CKPTIMG\0", 8);  // a metadata image is not a pages file
    v.push_back({"MetadataMagic", b, false, 0, {"bad magic"}});
  }
  {
    std::string b = pages_file(4096);
    b[16] ^= 1;  // data_bytes, without a new checksum
    v.push_back({"HeaderChecksum", b, false, 0, {"pages-1.img: ", "header checksum mismatch"}});
  }
  {
    PagesHeader h = make_pages_header(0);
    h.version = 99;
    h.crc = crc32c(&h, offsetof(PagesHeader, crc));
    std::string b = header_bytes(h);
    b.resize(kPagesDataOffset, '\0');
    v.push_back({"FutureVersion", b, false, 0, {"pages-1.img: ", "version 99", "newer"}});
  }
  // Headers with a valid checksum but values no writer produces.
  auto crafted = [](auto edit) {
    PagesHeader h = make_pages_header(4096);
    edit(h);
    h.crc = crc32c(&h, offsetof(PagesHeader, crc));
    std::string b = header_bytes(h);
    b.resize(kPagesDataOffset + 3 * 4096, '\0');
    return b;
  };
  v.push_back({"VersionZero", crafted([](PagesHeader& h) { h.version = 0; }), false, 0,
               {"pages-1.img: ", "version 0", "invalid"}});
  v.push_back({"PageSize8192", crafted([](PagesHeader& h) { h.page_size = 8192; }), false, 0,
               {"pages-1.img: ", "page size 8192"}});
  v.push_back({"PartialPage", crafted([](PagesHeader& h) { h.data_bytes = 4096 + 1; }), false, 0,
               {"pages-1.img: ", "4097", "whole number of pages"}});
  v.push_back({"DataSizeOverflows", crafted([](PagesHeader& h) { h.data_bytes = ~0ull & ~4095ull; }), false, 0,
               {"pages-1.img: ", "truncated"}});
  return v;
}

class PagesFile : public testing::TestWithParam<PagesCase> {};

TEST_P(PagesFile, Check) {
  const PagesCase& tc = GetParam();
  TempFile f;
  f.write(tc.bytes);
  auto r = check_pages_file("pages-1.img", f.fd());
  if (tc.ok) {
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(*r, tc.data_bytes);
    return;
  }
  ASSERT_FALSE(r) << "accepted, data_bytes " << *r;
  const std::string msg = r.error().str();
  for (const std::string& s : tc.msg_has) EXPECT_NE(msg.find(s), std::string::npos) << "no '" << s << "' in: " << msg;
}

INSTANTIATE_TEST_SUITE_P(Image, PagesFile, testing::ValuesIn(pages_cases()),
                         [](const testing::TestParamInfo<PagesCase>& i) { return i.param.name; });

TEST(PagesFile, UnreadableFdIsAnError) {
  TempFile f;
  f.write(pages_file(0));
  UniqueFd wr(open(f.path().c_str(), O_WRONLY));
  ASSERT_TRUE(wr);
  auto r = check_pages_file("pages-1.img", wr.get());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("pages-1.img"), std::string::npos) << r.error().str();
}

}  // namespace
}  // namespace ckpt::image
