// Named hyperparameters of a solver: every algorithmic constant lives in one table per method
// with its default, so that the CLI, sweeps and run reports all see the same names.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace p2l::solvers {

struct Hyperparameter {
  std::string name;  // kebab-case: the CLI flag (--name) and the report key
  double value = 0;
  std::string help;
  bool integer = false;  // counts (steps, iterations): must hold a whole number ≥ 0
};

class Hyperparameters {
 public:
  Hyperparameters() = default;
  explicit Hyperparameters(std::vector<Hyperparameter> table) : table_(std::move(table)) {}

  bool has(const std::string& name) const;
  double get(const std::string& name) const;  // throws p2l::Error for an unknown name
  int64_t get_int(const std::string& name) const;
  bool get_flag(const std::string& name) const { return get(name) != 0; }
  // Throws p2l::Error naming `owner` for an unknown name, a NaN, or a non-integral count.
  void set(const std::string& name, double value, const std::string& owner = "solver");
  const std::vector<Hyperparameter>& table() const { return table_; }
  nlohmann::json to_json() const;  // name → value (∞ as the string "inf")

 private:
  const Hyperparameter& find(const std::string& name) const;
  std::vector<Hyperparameter> table_;
};

// "inf" / "infinity" are accepted for ∞ (P2L's λ); throws p2l::Error naming `what`.
double parse_hyperparameter_value(const std::string& text, const std::string& what);

}  // namespace p2l::solvers
