// Every input kept for the fuzz targets (tests/fuzz/targets.h) runs through
// its target here, under whatever sanitizers this build has: the corpus of
// real images, and tests/fuzz/regressions/<target>/, where an input that once
// crashed a target is kept (named after what it broke) once the bug is fixed.
#include <dirent.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/fs.h"
#include "targets.h"

namespace ckpt::fuzz {

// A parameter as gtest prints it (else "16-byte object <...>").
void PrintTo(const Target& t, std::ostream* os) { *os << t.name; }

namespace {

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) return out;
  while (dirent* e = readdir(d.get()))
    if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
  std::sort(out.begin(), out.end());
  return out;
}

class FuzzReplay : public testing::TestWithParam<Target> {};

TEST_P(FuzzReplay, CorpusAndRegressions) {
  const Target& t = GetParam();
  std::vector<std::string> inputs = files_in(fmt::format("{}/corpus/{}", CKPT_FUZZ_DIR, t.name));
  EXPECT_FALSE(inputs.empty()) << "no corpus for " << t.name;
  for (const std::string& f : files_in(fmt::format("{}/regressions/{}", CKPT_FUZZ_DIR, t.name))) inputs.push_back(f);
  for (const std::string& f : inputs) {
    SCOPED_TRACE(f);
    auto bytes = read_file(f);
    ASSERT_TRUE(bytes) << bytes.error().str();
    EXPECT_EQ(t.run(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Fuzz, FuzzReplay, testing::ValuesIn(kTargets),
                         [](const testing::TestParamInfo<Target>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace ckpt::fuzz
