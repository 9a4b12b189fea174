#include "p2l/log.h"

#include <cstdlib>
#include <iostream>
#include <mutex>

namespace p2l::log {

namespace {
Level initial_level() {
  const char* env = std::getenv("P2L_LOG");
  if (!env) return Level::Info;
  const std::string v = env;
  if (v == "debug") return Level::Debug;
  if (v == "warn") return Level::Warn;
  if (v == "error") return Level::Error;
  if (v == "off") return Level::Off;
  return Level::Info;
}
Level& current() {
  static Level level = initial_level();
  return level;
}
std::mutex& output_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

void set_level(Level level) { current() = level; }
Level level() { return current(); }
bool enabled(Level l) { return static_cast<int>(l) >= static_cast<int>(current()); }

void write(Level l, const std::string& message) {
  static const char* const kNames[] = {"debug", "info", "warning", "error"};
  std::lock_guard<std::mutex> lock(output_mutex());
  std::cerr << "p2l: " << kNames[static_cast<int>(l)] << ": " << message << "\n";
}

}  // namespace p2l::log
