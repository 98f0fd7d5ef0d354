// JsonValue: a small, strict JSON reader (RFC 8259) for config.json, generation_config.json,
// safetensors headers and index files. Parsing never throws; a malformed document gives an
// error message with the byte offset.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pagedllm/status.h"

namespace pagedllm {

class JsonValue {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  JsonValue() = default;
  static Result<JsonValue> parse(const std::string& text);  // kCorruptData on bad input

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_number() const { return kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  // Accessors; each CHECKs the kind (callers test the kind first when the input is untrusted).
  bool as_bool() const;
  double as_number() const;
  int64_t as_int() const;  // the number, which must be integral
  const std::string& as_string() const;
  const std::vector<JsonValue>& as_array() const;
  const std::map<std::string, JsonValue>& as_object() const;

  // Object member or nullptr (also nullptr when this is not an object).
  const JsonValue* find(const std::string& key) const;

 private:
  friend class JsonParser;
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  double number_ = 0.0;
  std::string string_;
  std::vector<JsonValue> array_;
  std::map<std::string, JsonValue> object_;
};

}  // namespace pagedllm
