#include "p2l/solvers/hyperparameters.h"

#include <cmath>
#include <cstdlib>

#include "p2l/error.h"

namespace p2l::solvers {

namespace {
std::string unknown(const std::string& name, const std::vector<Hyperparameter>& table) {
  std::string names;
  for (const auto& h : table) names += (names.empty() ? "" : ", ") + h.name;
  return "unknown hyperparameter '" + name + "' (known: " + names + ")";
}
}  // namespace

const Hyperparameter& Hyperparameters::find(const std::string& name) const {
  for (const auto& h : table_)
    if (h.name == name) return h;
  throw Error(unknown(name, table_));
}

bool Hyperparameters::has(const std::string& name) const {
  for (const auto& h : table_)
    if (h.name == name) return true;
  return false;
}

double Hyperparameters::get(const std::string& name) const { return find(name).value; }

int64_t Hyperparameters::get_int(const std::string& name) const {
  return static_cast<int64_t>(find(name).value);
}

void Hyperparameters::set(const std::string& name, double value, const std::string& owner) {
  if (!has(name)) throw Error(owner + ": " + unknown(name, table_));
  for (auto& h : table_) {
    if (h.name != name) continue;
    if (std::isnan(value)) throw Error(owner + ": --" + name + " is NaN");
    if (h.integer && (value < 0 || value != std::floor(value) || std::isinf(value)))
      throw Error(owner + ": --" + name + " must be a whole number >= 0, got " +
                  std::to_string(value));
    h.value = value;
  }
}

nlohmann::json Hyperparameters::to_json() const {
  auto j = nlohmann::json::object();
  for (const auto& h : table_) {
    if (std::isinf(h.value))
      j[h.name] = h.value > 0 ? "inf" : "-inf";
    else if (h.integer)
      j[h.name] = static_cast<int64_t>(h.value);
    else
      j[h.name] = h.value;
  }
  return j;
}

double parse_hyperparameter_value(const std::string& text, const std::string& what) {
  if (text == "inf" || text == "infinity" || text == "Inf") return INFINITY;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || std::isnan(v))
    throw Error(what + ": '" + text + "' is not a number");
  return v;
}

}  // namespace p2l::solvers
