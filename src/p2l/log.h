// Minimal leveled logging to stderr. The CLI sets the level (--verbose / --quiet); the
// environment variable P2L_LOG (debug|info|warn|error) sets the initial level.
#pragma once

#include <sstream>
#include <string>

namespace p2l::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3, Off = 4 };

void set_level(Level level);
Level level();
bool enabled(Level level);
void write(Level level, const std::string& message);

inline void debug(const std::string& m) { if (enabled(Level::Debug)) write(Level::Debug, m); }
inline void info(const std::string& m) { if (enabled(Level::Info)) write(Level::Info, m); }
inline void warn(const std::string& m) { if (enabled(Level::Warn)) write(Level::Warn, m); }

}  // namespace p2l::log
