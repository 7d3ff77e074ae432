// Independent items shared between this thread and one helper thread: the
// machine has two cores, and much of a dump is /proc reads and file writes
// that wait on neither ptrace nor each other.
#pragma once

#include <cstddef>
#include <functional>

namespace ckpt {

// Runs work(i) for every i in [0, n), each item once, on this thread and,
// when n is at least `helper_from` (below that a thread costs more than it
// saves), on a helper thread as well, each taking the next item. `first`
// runs on this thread before it joins in, while the helper already works:
// for what must stay on this thread (ptrace requests come from the tracer
// thread). Returns once every item is done.
void share_with_helper(size_t n, size_t helper_from, const std::function<void(size_t)>& work,
                       const std::function<void()>& first = {});

}  // namespace ckpt
