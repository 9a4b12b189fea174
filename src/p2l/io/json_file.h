// JSON files: reading with errors that name the file, writing atomically (temp + rename) so an
// interrupted run never leaves a half-written report.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace p2l::io {

nlohmann::json read_json(const std::string& path);  // throws p2l::Error naming the file
void write_json(const std::string& path, const nlohmann::json& j);
// Any text file, written the same atomic way (reports, tables, plots).
void write_text(const std::string& path, const std::string& text);
// Appends one compact line (JSON Lines) and flushes it to disk.
void append_json_line(const std::string& path, const nlohmann::json& j);

}  // namespace p2l::io
