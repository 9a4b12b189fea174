#include "p2l/io/json_file.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "p2l/error.h"

namespace p2l::io {

void check_json_depth(std::string_view text, const std::string& source) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw Error(source + ": JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

int64_t json_to_int(const nlohmann::json& value, const std::string& source, const std::string& key) {
  if (value.is_number_unsigned()) {
    if (value.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) return value.get<int64_t>();
  } else if (value.is_number_integer()) {
    return value.get<int64_t>();
  } else if (value.is_number_float()) {
    // 2^63 is the first real above INT64_MAX; below -2^63 does not fit either.
    const double real = value.get<double>();
    if (std::isfinite(real) && real == std::trunc(real) && real >= -0x1p63 && real < 0x1p63)
      return static_cast<int64_t>(real);
  }
  std::string shown = value.dump();
  if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
  throw Error(source + ": " + key + " must be a whole number that fits 64 bits, got " + shown);
}

int64_t json_int(const nlohmann::json& object, const std::string& key, int64_t fallback,
                 const std::string& source) {
  if (!object.is_object()) throw Error(source + ": expected a JSON object");
  const auto it = object.find(key);
  return it == object.end() ? fallback : json_to_int(*it, source, key);
}

uint64_t json_to_uint(const nlohmann::json& value, const std::string& source,
                      const std::string& key) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_float()) {
    const double real = value.get<double>();
    if (std::isfinite(real) && real == std::trunc(real) && real >= 0 && real < 0x1p64)
      return static_cast<uint64_t>(real);
  }
  std::string shown = value.dump();
  if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
  throw Error(source + ": " + key + " must be a whole number from 0 to 2^64 - 1, got " + shown);
}

std::vector<int64_t> json_int_list(const nlohmann::json& value, const std::string& source,
                                   const std::string& key) {
  if (!value.is_array()) throw Error(source + ": " + key + " must be a list of whole numbers");
  std::vector<int64_t> list;
  for (const auto& item : value) list.push_back(json_to_int(item, source, key));
  return list;
}

nlohmann::json parse_json(std::string_view text, const std::string& source) {
  check_json_depth(text, source);
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_json(text.str(), path);
}

void write_text(const std::string& path, const std::string& text) {
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) throw Error(path + ": cannot make its folder (" + ec.message() + ")");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) throw Error(path + ": cannot write");
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error(path + ": cannot write (" + ec.message() + ")");
}

void check_writable(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::is_directory(parent)) {
    std::filesystem::create_directories(parent, ec);
    if (ec) throw Error(path + ": cannot make its folder (" + ec.message() + ")");
  }
  if (std::filesystem::is_directory(path)) throw Error(path + ": is a folder, not a file");
  const std::string probe = path + ".tmp";
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (f == nullptr) throw Error(path + ": cannot write (" + std::strerror(errno) + ")");
  std::fclose(f);
  std::remove(probe.c_str());
}

void write_json(const std::string& path, const nlohmann::json& j) {
  write_text(path, j.dump(2) + "\n");
}

void append_json_line(const std::string& path, const nlohmann::json& j) {
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) throw Error(path + ": cannot append");
  const std::string line = j.dump() + "\n";
  const bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
  const bool flushed = std::fflush(f) == 0;
  std::fclose(f);
  if (!ok || !flushed) throw Error(path + ": cannot append");
}

}  // namespace p2l::io
