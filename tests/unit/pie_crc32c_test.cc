// The blobs' CRC-32C (pie/crc32c.h: three chains joined by carry-less
// multiplication) against ckpt's (image/crc32c.h), at every length around its
// block size, from a running value and from 0, and on a known answer.
#include "pie/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "image/crc32c.h"

namespace {

TEST(PieCrc32c, KnownAnswer) {
  const char* s = "123456789";
  EXPECT_EQ(pie::crc32c(0, reinterpret_cast<const uint8_t*>(s), std::strlen(s)), 0xe3069283u);
}

TEST(PieCrc32c, ShiftIsMultiplicationByXPower) {
  EXPECT_EQ(pie::crc32c_shift(0), 1u << 31);  // x^0
  EXPECT_EQ(pie::crc32c_shift(1), 1u << 23);  // x^8
  EXPECT_EQ(pie::crc32c_mulmod(pie::crc32c_shift(3), pie::crc32c_shift(5)), pie::crc32c_shift(8));
}

TEST(PieCrc32c, MatchesCkptAtEveryBlockBoundary) {
  std::mt19937_64 rng(16);
  std::vector<uint8_t> buf(64 * 1024 + 64);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
  std::vector<size_t> lengths = {0, 1, 7, 8, 9, 4095, 4096, 4097, buf.size() - 64};
  for (size_t block = 6144; block < buf.size() - 64; block += 6144)
    for (long d : {-9L, -1L, 0L, 1L, 8L}) lengths.push_back(block + d);
  for (size_t len : lengths)
    for (size_t align : {0, 3})
      for (uint32_t init : {0u, 0xdeadbeefu}) {
        const uint8_t* p = buf.data() + align;
        ASSERT_EQ(pie::crc32c(init, p, len), ckpt::crc32c(init, p, len))
            << "length " << len << ", offset " << align << ", initial " << init;
      }
}

TEST(PieCrc32c, ChainsAcrossCalls) {
  std::vector<uint8_t> buf(100000);
  for (size_t i = 0; i < buf.size(); i++) buf[i] = static_cast<uint8_t>(i * 131);
  const uint32_t whole = pie::crc32c(0, buf.data(), buf.size());
  for (size_t cut : {1UL, 6144UL, 12289UL, 99999UL})
    EXPECT_EQ(pie::crc32c(pie::crc32c(0, buf.data(), cut), buf.data() + cut, buf.size() - cut), whole) << cut;
}

}  // namespace
