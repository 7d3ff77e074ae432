// A flag for work an object owes on destruction (undo, cure) that a move
// hands over: the moved-from object owes nothing. Move-only RAII types keep
// one and default their move constructor.
#pragma once

#include <utility>

namespace ckpt {

class Owed {
 public:
  Owed(bool owed = false) : owed_(owed) {}
  Owed(Owed&& o) noexcept : owed_(std::exchange(o.owed_, false)) {}
  Owed& operator=(bool owed) {
    owed_ = owed;
    return *this;
  }
  explicit operator bool() const { return owed_; }

 private:
  bool owed_;
};

}  // namespace ckpt
