// Operators back from their JSON (Operator::to_json) and tensors (Operator::tensors), for
// measurement files and for hand-written restore configurations.
#pragma once

#include <memory>

#include "p2l/operators/operator.h"

namespace p2l::operators {

// Dispatches on j["kind"]; throws p2l::Error naming the kind and the field at fault.
std::unique_ptr<Operator> operator_from_json(const nlohmann::json& j,
                                             const NamedTensors& tensors = {});

}  // namespace p2l::operators
