// Progress of long work (sampling, restoration, training): steps done, rate and time left,
// redrawn in place on a terminal and printed as plain lines otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace p2l {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  // Marks `done` steps as finished (absolute count); `extra` is appended (e.g. a loss).
  void update(int64_t done, const std::string& extra = "");
  void finish();
  double elapsed_seconds() const;

  // "1m05s" style durations.
  static std::string format_duration(double seconds);

 private:
  std::string label_;
  int64_t total_;
  bool enabled_;
  bool tty_;
  int64_t first_done_ = -1;  // steps already done before this process's first update
  int64_t last_percent_printed_ = -1;
  double last_print_seconds_ = 0;
  std::chrono::steady_clock::time_point start_;
  bool finished_ = false;
};

}  // namespace p2l
