#include "p2l/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "p2l/log.h"

namespace p2l {

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      // -q (log level error) silences progress too.
      enabled_(enabled && log::enabled(log::Level::Info)),
      tty_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>((s / 60) % 60));
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  return buf;
}

void Progress::update(int64_t done, const std::string& extra) {
  if (!enabled_ || total_ <= 0) return;
  const double elapsed = elapsed_seconds();
  // A resumed run starts past 0: its rate counts only the steps done in this process.
  if (first_done_ < 0) first_done_ = std::max<int64_t>(0, done - 1);
  const double rate = elapsed > 0 ? (done - first_done_) / elapsed : 0;
  const double left = rate > 0 ? (total_ - done) / rate : -1;
  const int64_t percent = 100 * done / total_;
  // Off a terminal, print every 10%, at least once a minute, and the last step, so logs stay
  // short but still show a long step's progress.
  if (!tty_ && done != total_ && percent / 10 == last_percent_printed_ / 10 &&
      elapsed - last_print_seconds_ < 60)
    return;
  last_percent_printed_ = percent;
  last_print_seconds_ = elapsed;
  std::ostringstream line;
  line << label_ << " " << done << "/" << total_ << " (" << percent << "%) ";
  if (rate >= 1)
    line.precision(2), line << std::fixed << rate << " it/s";
  else if (rate > 0)
    line.precision(2), line << std::fixed << 1 / rate << " s/it";
  line << ", elapsed " << format_duration(elapsed) << ", left " << format_duration(left);
  if (!extra.empty()) line << ", " << extra;
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s", line.str().c_str());
  else
    std::fprintf(stderr, "%s\n", line.str().c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_ && tty_) std::fprintf(stderr, "\n");
}

}  // namespace p2l
