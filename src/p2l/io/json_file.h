// JSON files: reading with errors that name the file, writing atomically (temp + rename) so an
// interrupted run never leaves a half-written report.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>

#include <string>
#include <string_view>
#include <vector>

namespace p2l::io {

// The deepest nesting p2l reads. Its own files need a handful of levels; the bound keeps a hostile
// file (100,000 nested arrays) from exhausting the stack in the parser or in the destructor.
constexpr int kMaxJsonDepth = 64;

// Throws p2l::Error "<source>: JSON nests deeper than 64 levels" before anything is parsed.
void check_json_depth(std::string_view text, const std::string& source);
// Parses JSON text after the depth check; errors start with `source` (a path, "path:line", …).
nlohmann::json parse_json(std::string_view text, const std::string& source);
nlohmann::json read_json(const std::string& path);  // throws p2l::Error naming the file

// Whole numbers in JSON files. nlohmann's get<int64_t>() converts a real with a plain cast, so
// 1e40 is undefined behaviour and 3.5 silently becomes 3. These take an integer, or a real with a
// whole value, that fits the type, and otherwise throw p2l::Error "<source>: <key> must be a
// whole number ...". json_int gives `fallback` when `object` has no `key`.
int64_t json_to_int(const nlohmann::json& value, const std::string& source,
                    const std::string& key);
int64_t json_int(const nlohmann::json& object, const std::string& key, int64_t fallback,
                 const std::string& source);
std::vector<int64_t> json_int_list(const nlohmann::json& value, const std::string& source,
                                   const std::string& key);
// From 0 to 2^64 - 1 (seeds).
uint64_t json_to_uint(const nlohmann::json& value, const std::string& source,
                      const std::string& key);

void write_json(const std::string& path, const nlohmann::json& j);
// Before a long run: makes the output's folder and tries to create its temporary file, so that an
// output that cannot be written ("/proc/x.png", a read-only folder) is one line naming the path
// and the reason at the start, not after the work. Throws p2l::Error.
void check_writable(const std::string& path);
// Any text file, written the same atomic way (reports, tables, plots).
void write_text(const std::string& path, const std::string& text);
// Appends one compact line (JSON Lines) and flushes it to disk.
void append_json_line(const std::string& path, const nlohmann::json& j);

}  // namespace p2l::io
