#include "p2l/solvers/hyperparameters.h"

#include <cstdlib>
#include <sstream>

namespace p2l::solvers {

namespace {

std::string number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

}  // namespace

Hyperparameters::Hyperparameters(const Hyperparameters& other)
    : method_(other.method_), values_(other.values_ ? other.values_->clone() : nullptr) {}

Hyperparameters& Hyperparameters::operator=(const Hyperparameters& other) {
  if (this != &other) {
    method_ = other.method_;
    values_ = other.values_ ? other.values_->clone() : nullptr;
  }
  return *this;
}

size_t Hyperparameters::index(const std::string& name) const {
  const size_t n = values_ ? values_->size() : 0;
  for (size_t i = 0; i < n; ++i)
    if (values_->name(i) == name) return i;
  return n;
}

bool Hyperparameters::has(const std::string& name) const {
  return values_ && index(name) < values_->size();
}

void Hyperparameters::require(const std::string& name, const std::string& label) const {
  if (has(name)) return;
  std::string names;
  for (const auto& h : table()) names += (names.empty() ? "" : ", ") + h.name;
  throw Error(label + " is not a hyperparameter of " + method_ + " (its: " + names + ")");
}

double Hyperparameters::get(const std::string& name) const {
  const size_t i = index(name);
  if (!values_ || i == values_->size()) require(name, name);
  return values_->describe(i).value;
}

int64_t Hyperparameters::get_int(const std::string& name) const {
  return static_cast<int64_t>(get(name));
}

void Hyperparameters::check(size_t i, double value, const std::string& owner) const {
  const auto h = values_->describe(i);
  const auto& b = values_->bound(i);
  const std::string flag = owner + ": --" + h.name;
  if (std::isnan(value)) throw Error(flag + " is NaN");
  switch (h.kind) {
    case ParameterKind::kSwitch:
      if (value != 0 && value != 1) throw Error(flag + " is a switch: 1 (on) or 0 (off), got " +
                                                number(value));
      return;
    case ParameterKind::kCount:
      if (std::isinf(value) || value != std::floor(value) || value < b.min || value > b.max)
        throw Error(flag + " must be a whole number >= " + number(b.min) + ", got " +
                    number(value));
      return;
    case ParameterKind::kReal:
      if (std::isinf(value) && !(b.infinite && value > 0))
        throw Error(flag + " must be finite, got " + number(value));
      if (b.above ? !(value > b.min) : !(value >= b.min))
        throw Error(flag + " must be " + (b.above ? "> " : ">= ") + number(b.min) + ", got " +
                    number(value));
      if (!std::isinf(value) && value > b.max)
        throw Error(flag + " must be <= " + number(b.max) + ", got " + number(value));
      return;
  }
}

void Hyperparameters::set(const std::string& name, double value, const std::string& owner) {
  require(name, owner + ": --" + name);
  const size_t i = index(name);
  check(i, value, owner);
  values_->assign(i, value);
}

std::vector<Hyperparameter> Hyperparameters::table() const {
  std::vector<Hyperparameter> list;
  for (size_t i = 0; values_ && i < values_->size(); ++i) list.push_back(values_->describe(i));
  return list;
}

nlohmann::json Hyperparameters::to_json() const {
  auto j = nlohmann::json::object();
  for (const auto& h : table()) {
    if (std::isinf(h.value))
      j[h.name] = h.value > 0 ? "inf" : "-inf";
    else if (h.kind != ParameterKind::kReal)
      j[h.name] = static_cast<int64_t>(h.value);
    else
      j[h.name] = h.value;
  }
  return j;
}

double parse_hyperparameter_value(const std::string& text, const std::string& what) {
  if (text == "inf" || text == "infinity" || text == "Inf") return INFINITY;
  if (text == "true") return 1;
  if (text == "false") return 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || std::isnan(v))
    throw Error(what + ": '" + text + "' is not a number");
  return v;
}

}  // namespace p2l::solvers
