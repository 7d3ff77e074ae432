// Where the pages of one task (or shared memory object) go: a stream written
// front to back, never seeked, so that the same writer serves a local file,
// a socket to a page server or a pipe to a compressor (DESIGN.md, "Pages go
// to a sink"; CRIU's page_xfer is the idea).
//
// The stream is the pages file's layout (page_store.h): the header first,
// which says how many data bytes follow (the runs are known before any page
// is read), then the runs' data in page-map order. Writers put bytes in with
// write() or move them zero-copy into fd() (splice from the parasite's pipe);
// both advance the stream. commit() checks that exactly the announced bytes
// came and makes the result visible; a sink dropped without commit() leaves
// nothing a restore would take.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/dir.h"
#include "base/progress.h"
#include "base/result.h"
#include "image/image_dir.h"

namespace ckpt::image {

class PageSink {
 public:
  virtual ~PageSink() = default;
  // For errors: the file (or peer) the pages go to.
  virtual const std::string& name() const = 0;
  // Where bytes go, in order: write(2) and splice(2) with no offset.
  virtual int fd() const = 0;

  // The header: `data_bytes` of page data follow.
  Result<void> begin(uint64_t data_bytes);
  Result<void> write(const void* data, size_t n);
  // Bytes that went to fd() by other means (splice): counted, not moved
  // (those means show them in progress() as they go).
  void count(uint64_t n) { written_ += n; }
  // Where write() shows the data going (a terminal's progress line), if set.
  void show_progress(Progress* p) { progress_ = p; }
  Progress* progress() const { return progress_; }
  // Data bytes so far (the header not counted).
  uint64_t written() const { return written_; }
  // All announced bytes came: the pages are complete.
  Result<void> commit();

 protected:
  // Before the header: the stream will be `bytes` long (header included).
  virtual Result<void> start(uint64_t bytes) { (void)bytes; return {}; }
  virtual Result<void> finish() = 0;

 private:
  bool begun_ = false;
  uint64_t announced_ = 0;
  uint64_t written_ = 0;
  Progress* progress_ = nullptr;
};

// A pages file of an images directory, written under its temporary name.
// commit() renames it into place; or, with Publish::Held, checks it and
// leaves the rename to its taker: a dump renames the pages with the other
// images, so that a dump killed before then leaves only temporaries, which
// the next dump into the directory removes.
class FilePageSink final : public PageSink {
 public:
  enum class Publish { AtCommit, Held };
  static Result<std::unique_ptr<FilePageSink>> create(ImageDir& dir, const std::string& name,
                                                      Publish publish = Publish::AtCommit);
  const std::string& name() const override { return path_; }
  int fd() const override { return tmp_.fd(); }
  // Publish::Held, once committed: the complete file, for ImageDir::commit().
  TempFile take() { return std::move(tmp_); }

 private:
  FilePageSink(ImageDir& dir, TempFile tmp, Publish publish)
      : dir_(dir), tmp_(std::move(tmp)), path_(dir.file(tmp_.temp_name())), publish_(publish) {}
  Result<void> finish() override;
  ImageDir& dir_;
  TempFile tmp_;
  std::string path_;
  Publish publish_;
};

}  // namespace ckpt::image
