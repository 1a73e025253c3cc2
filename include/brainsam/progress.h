// Progress callbacks of the BrainSAM C++ API (see brainsam.hpp).
#ifndef BRAINSAM_PROGRESS_H
#define BRAINSAM_PROGRESS_H

#include <cstdint>
#include <functional>
#include <utility>

namespace brainsam {

// Progress of a long call such as Session::segment_all: called with (done, total) on the
// calling thread; return false to cancel (the call then throws rust::Error "operation
// cancelled"). A default-constructed callback reports nowhere and never cancels. The
// function must not throw: an exception escaping it terminates the program.
class ProgressCallback {
 public:
  ProgressCallback() = default;
  template <typename Function>
  explicit ProgressCallback(Function&& function) : function_(std::forward<Function>(function)) {}

  // Called by BrainSAM.
  bool report(std::uint64_t done, std::uint64_t total) const {
    return !function_ || function_(done, total);
  }

 private:
  std::function<bool(std::uint64_t, std::uint64_t)> function_;
};

}  // namespace brainsam

#endif  // BRAINSAM_PROGRESS_H
