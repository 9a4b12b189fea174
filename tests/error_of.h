// The message of the p2l::Error a callable throws, for tests that check what an error names.
#pragma once

#include <string>

#include "p2l/error.h"

namespace p2l::test {

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no p2l::Error)";
}

}  // namespace p2l::test
