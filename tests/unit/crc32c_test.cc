// CRC-32C (arch/x86_64/crc32c.h): the three chains of the crc32 instruction
// joined by carry-less multiplication, and the table for a CPU without
// SSE4.2, against each other and ckpt's (image/crc32c.h), at every length
// around the block size, from a running value and from 0, and on a known
// answer.
#include "arch/x86_64/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "image/crc32c.h"

namespace {

using ckpt::arch::crc32c;

const uint8_t* bytes(const char* s) { return reinterpret_cast<const uint8_t*>(s); }

TEST(Crc32c, KnownAnswerBothWays) {
  const char* s = "123456789";
  EXPECT_EQ(crc32c(0, bytes(s), std::strlen(s), true), 0xe3069283u);
  EXPECT_EQ(crc32c(0, bytes(s), std::strlen(s), false), 0xe3069283u);
  EXPECT_EQ(ckpt::crc32c(s, std::strlen(s)), 0xe3069283u);
}

TEST(Crc32c, ShiftIsMultiplicationByXPower) {
  using namespace ckpt::arch;
  EXPECT_EQ(crc32c_shift(0), 1u << 31);  // x^0
  EXPECT_EQ(crc32c_shift(1), 1u << 23);  // x^8
  EXPECT_EQ(crc32c_mulmod(crc32c_shift(3), crc32c_shift(5)), crc32c_shift(8));
}

TEST(Crc32c, TableAndInstructionAgreeAtEveryBlockBoundary) {
  ASSERT_TRUE(ckpt::crc32c_hw()) << "this test compares with the crc32 instruction";
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
        const uint32_t table = crc32c(init, p, len, false);
        ASSERT_EQ(crc32c(init, p, len, true), table) << "length " << len << ", offset " << align << ", initial " << init;
        ASSERT_EQ(ckpt::crc32c(init, p, len), table) << "length " << len;
      }
}

TEST(Crc32c, ChainsAcrossCalls) {
  std::vector<uint8_t> buf(100000);
  for (size_t i = 0; i < buf.size(); i++) buf[i] = static_cast<uint8_t>(i * 131);
  for (bool hw : {true, false}) {
    const uint32_t whole = crc32c(0, buf.data(), buf.size(), hw);
    for (size_t cut : {1UL, 6144UL, 12289UL, 99999UL})
      EXPECT_EQ(crc32c(crc32c(0, buf.data(), cut, hw), buf.data() + cut, buf.size() - cut, hw), whole) << cut;
  }
}

}  // namespace
