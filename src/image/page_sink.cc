#include "image/page_sink.h"

#include <cstring>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "image/page_store.h"

namespace ckpt::image {

Result<void> PageSink::begin(uint64_t data_bytes) {
  if (begun_) return error(EINVAL, "{}: page stream begun twice", name());
  TRY(start(kPagesDataOffset + data_bytes));
  // The whole first page: the data start page-aligned (page_store.h).
  static_assert(kPagesDataOffset == arch::kPageSize);
  alignas(8) char page[kPagesDataOffset] = {};
  const PagesHeader h = make_pages_header(data_bytes);
  std::memcpy(page, &h, sizeof h);
  TRY_CTX(write_all(fd(), page, sizeof page), "header of {}", name());
  begun_ = true;
  announced_ = data_bytes;
  return {};
}

Result<void> PageSink::write(const void* data, size_t n) {
  TRY_CTX(write_all(fd(), data, n), "{}", name());
  written_ += n;
  if (progress_) progress_->add(n);
  return {};
}

Result<void> PageSink::commit() {
  if (!begun_) TRY(begin(0));
  if (written_ != announced_)
    return error(EIO, "{}: {} bytes of pages written, the header announced {}", name(), written_, announced_);
  return finish();
}

Result<std::unique_ptr<FilePageSink>> FilePageSink::create(ImageDir& dir, const std::string& name, Publish publish) {
  TempFile tmp = TRY(dir.create_temp(name));
  return std::unique_ptr<FilePageSink>(new FilePageSink(dir, std::move(tmp), publish));
}

Result<void> FilePageSink::finish() {
  if (publish_ == Publish::Held) return {};
  return dir_.commit(tmp_);
}

}  // namespace ckpt::image
