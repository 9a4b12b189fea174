// Upper bounds on configuration values, far above every released SD-family model: a config file
// that lies (a million layers) is refused before a module is built.
#pragma once

#include <cstdint>
#include <string>

#include "p2l/error.h"

namespace p2l::model {

// Throws p2l::Error "<config>: <name> <value> is beyond p2l's bound of <bound>".
inline void check_bound(int64_t value, int64_t bound, const std::string& config,
                        const std::string& name) {
  if (value > bound)
    throw Error(config + ": " + name + " " + std::to_string(value) + " is beyond p2l's bound of " +
                std::to_string(bound));
}

}  // namespace p2l::model
