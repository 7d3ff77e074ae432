// The fuzz targets: one per reader of untrusted input. tools/fuzz.sh builds
// each into a libFuzzer binary (fuzz_main.cc); unit_tests replays every file
// of tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/<target>/ through
// the same functions (fuzz_replay_test.cc), so a crash once found stays fixed.
//
// Input formats (tests/fuzz/make_corpus.sh writes real images in them):
//   unframe  byte 0 picks the ImageKind (1..6; others: the kind in the
//            header), bit 7 of it asks for the header's checksums to be
//            fixed up; the rest is the content of an image file
//   pages    u32 n, n bytes of a PageMap message, then a pages-PID.img file
//            (written to a memfd)
//   proc     byte 0 picks the parser (0 maps, 1 status, 2 stat, 3 fdinfo),
//            the rest is the text
//   verify   records of u32 length + bytes: Inventory, TaskCore, MmImage,
//            PageMap, Files messages (missing ones are empty)
#pragma once

#include <cstddef>
#include <cstdint>

namespace ckpt::fuzz {

int unframe(const uint8_t* data, size_t size);
int pages(const uint8_t* data, size_t size);
int proc(const uint8_t* data, size_t size);
int verify(const uint8_t* data, size_t size);

struct Target {
  const char* name;
  int (*run)(const uint8_t*, size_t);
};
inline constexpr Target kTargets[] = {{"unframe", unframe}, {"pages", pages}, {"proc", proc}, {"verify", verify}};

}  // namespace ckpt::fuzz
