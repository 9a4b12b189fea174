// A method's hyperparameters: a plain struct per method, which its solver reads as typed members
// (counts as integers, switches as bools), and whose fields are listed once — name, member,
// help, bounds — for everything that sees them by name: CLI flags, `--grid`, `--variant`,
// reports. A value is checked when it is set, so a bad one is an error before any run starts.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <typeinfo>
#include <variant>
#include <vector>

#include "p2l/error.h"

namespace p2l::solvers {

enum class ParameterKind {
  kReal,    // a finite number (∞ only where the bound allows it)
  kCount,   // a whole number (iterations, steps, intervals)
  kSwitch,  // on or off: 1 or 0 on the command line and in reports
};

// What a value must satisfy besides its kind.
struct Bound {
  double min = 0;
  bool above = false;  // strictly greater than min
  double max = INFINITY;
  bool infinite = false;  // +∞ is a value (P2L's λ = ∞: the pure range projection)
};

// One field of a parameter struct P.
template <class P>
struct Field {
  std::string name;  // kebab-case: the CLI flag (--name) and the report key
  std::string help;
  std::variant<double P::*, int64_t P::*, bool P::*> member;
  Bound bound{};
};

// A field as the outside sees it, with its current value.
struct Hyperparameter {
  std::string name;
  std::string help;
  ParameterKind kind = ParameterKind::kReal;
  double value = 0;
};

// The hyperparameters of one method: its struct P (with `static std::vector<Field<P>> fields()`)
// behind a by-name interface.
class Hyperparameters {
 public:
  Hyperparameters() = default;
  template <class P>
  Hyperparameters(std::string method, P values)
      : method_(std::move(method)), values_(std::make_unique<Typed<P>>(std::move(values))) {
    for (size_t i = 0; i < values_->size(); ++i) check(i, values_->describe(i).value, method_);
  }
  Hyperparameters(const Hyperparameters& other);
  Hyperparameters& operator=(const Hyperparameters& other);
  Hyperparameters(Hyperparameters&&) = default;
  Hyperparameters& operator=(Hyperparameters&&) = default;

  const std::string& method() const { return method_; }
  bool has(const std::string& name) const;
  // Throws p2l::Error "<label> is not a hyperparameter of <method> (its: …)" for an unknown name.
  void require(const std::string& name, const std::string& label) const;
  double get(const std::string& name) const;  // a switch reads 0 or 1
  int64_t get_int(const std::string& name) const;
  // Throws p2l::Error naming `owner` for an unknown name or a value its field does not take.
  void set(const std::string& name, double value, const std::string& owner = "solver");
  std::vector<Hyperparameter> table() const;
  nlohmann::json to_json() const;  // name → value (∞ as "inf", switches as 0/1)

  // The struct itself, for the method's solver.
  template <class P>
  const P& as() const {
    auto* typed = dynamic_cast<const Typed<P>*>(values_.get());
    if (!typed) throw Error(method_ + ": hyperparameters of another method");
    return typed->values;
  }

 private:
  struct Erased {
    virtual ~Erased() = default;
    virtual std::unique_ptr<Erased> clone() const = 0;
    virtual size_t size() const = 0;
    virtual const std::string& name(size_t i) const = 0;
    virtual Hyperparameter describe(size_t i) const = 0;
    virtual const Bound& bound(size_t i) const = 0;
    virtual void assign(size_t i, double value) = 0;
  };
  template <class P>
  struct Typed final : Erased {
    explicit Typed(P v) : values(std::move(v)) {}
    static const std::vector<Field<P>>& fields() {
      static const std::vector<Field<P>> list = P::fields();
      return list;
    }
    std::unique_ptr<Erased> clone() const override { return std::make_unique<Typed>(values); }
    size_t size() const override { return fields().size(); }
    const std::string& name(size_t i) const override { return fields()[i].name; }
    const Bound& bound(size_t i) const override { return fields()[i].bound; }
    Hyperparameter describe(size_t i) const override {
      const auto& f = fields()[i];
      Hyperparameter h{f.name, f.help};
      if (auto* real = std::get_if<double P::*>(&f.member)) {
        h.kind = ParameterKind::kReal;
        h.value = values.*(*real);
      } else if (auto* count = std::get_if<int64_t P::*>(&f.member)) {
        h.kind = ParameterKind::kCount;
        h.value = static_cast<double>(values.*(*count));
      } else {
        h.kind = ParameterKind::kSwitch;
        h.value = values.*std::get<bool P::*>(f.member) ? 1 : 0;
      }
      return h;
    }
    void assign(size_t i, double value) override {
      const auto& f = fields()[i];
      if (auto* real = std::get_if<double P::*>(&f.member))
        values.*(*real) = value;
      else if (auto* count = std::get_if<int64_t P::*>(&f.member))
        values.*(*count) = static_cast<int64_t>(value);
      else
        values.*std::get<bool P::*>(f.member) = value != 0;
    }
    P values;
  };

  size_t index(const std::string& name) const;  // size() when unknown
  // Throws p2l::Error "<owner>: --<name> …" unless field i takes `value`.
  void check(size_t i, double value, const std::string& owner) const;

  std::string method_;
  std::unique_ptr<Erased> values_;
};

// A value as typed on the command line or in a grid: a number, "inf" / "infinity" for ∞ (P2L's
// λ), "true" / "false" for a switch. Throws p2l::Error naming `what`.
double parse_hyperparameter_value(const std::string& text, const std::string& what);

}  // namespace p2l::solvers
