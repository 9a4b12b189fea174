// p2l's one exception type. Every message names the culprit (file, tensor, flag, step) so that
// the command-line tool can print it as a single line and exit non-zero.
#pragma once

#include <stdexcept>
#include <string>

namespace p2l {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace p2l
