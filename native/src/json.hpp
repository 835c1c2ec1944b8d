// A minimal JSON value, recursive-descent parser and writer: enough for job.json / result.json.
//
// Why not a library: libtorch ships no JSON library and the GPU machines cannot install one, so the
// binary carries its own. It follows RFC 8259 strictly (no comments, no trailing commas, no NaN),
// keeps object keys in document order, and writes only valid UTF-8.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sweep::json {

/// Raised for malformed JSON text (with line and column) and for type mismatches on access.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Value;
using Array = std::vector<Value>;
/// Document order is kept so that written files read the way they were built.
using Object = std::vector<std::pair<std::string, Value>>;

class Value {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : type_(Type::Bool), bool_(b) {}
  // Integers and floats are both JSON numbers, but they are written as Python writes them: 34 for
  // an int, 34.0 for a float, so the parent reads back the types it would have written itself.
  Value(double d) : type_(Type::Number), number_(d) {}
  Value(int i) : Value(static_cast<int64_t>(i)) {}
  Value(int64_t i) : type_(Type::Number), is_int_(true), int_(i), number_(static_cast<double>(i)) {}
  Value(const char* s) : type_(Type::String), string_(s) {}
  Value(std::string s) : type_(Type::String), string_(std::move(s)) {}
  Value(Array a) : type_(Type::Array), array_(std::make_shared<json::Array>(std::move(a))) {}
  Value(Object o) : type_(Type::Object), object_(std::make_shared<json::Object>(std::move(o))) {}

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  /// A number written without fraction or exponent (that fits in int64).
  bool is_integer() const { return type_ == Type::Number && is_int_; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  bool as_bool() const;
  double as_number() const;
  /// The number as an integer; throws if it has a fractional part or is out of range.
  int64_t as_int() const;
  const std::string& as_string() const;
  const json::Array& as_array() const;
  const json::Object& as_object() const;
  json::Array& as_array();
  json::Object& as_object();

  /// Object member or nullptr when absent (throws if this is not an object).
  const Value* find(std::string_view key) const;
  /// Object member; throws naming the key when absent.
  const Value& at(std::string_view key) const;
  /// Sets (or replaces) an object member, keeping first-insertion order.
  void set(std::string key, Value v);
  /// Appends to an array.
  void push_back(Value v);

  static const char* type_name(Type t);

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  bool is_int_ = false;
  int64_t int_ = 0;
  double number_ = 0.0;
  std::string string_;
  // Shared so that copies are cheap; the writer and readers never mutate through a shared copy.
  std::shared_ptr<json::Array> array_;
  std::shared_ptr<json::Object> object_;
};

/// Parses a complete JSON text; anything but whitespace after the value is an error.
Value parse(std::string_view text);

/// Serialises with two-space indentation (indent < 0: compact, one line).
std::string dump(const Value& v, int indent = 2);

/// A JSON string literal (quotes included) for `s`; invalid UTF-8 bytes become U+FFFD.
std::string quote(std::string_view s);

}  // namespace sweep::json
