// JsonParser: a recursive-descent reader of one RFC 8259 document. Invariant: pos_ never passes
// text_.size(), nesting never exceeds kMaxDepth, and every failure returns a Status naming the
// byte offset; nothing here throws on any input. Extensions beyond RFC 8259: a leading UTF-8
// byte order mark is skipped, and the bare tokens NaN, Infinity and -Infinity (written by
// Python's json module) are numbers.
#include "weights/json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>

#include "util/check.h"

namespace pagedllm {

namespace {

constexpr int kMaxDepth = 512;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string describe_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7F) return std::string("'") + c + "'";
  const char* digits = "0123456789abcdef";
  return std::string("byte 0x") + digits[u >> 4] + digits[u & 0xF];
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the well-formed UTF-8 sequence starting at s[0] (s has `avail` bytes), or 0 when it
// is malformed (overlong, surrogate, above U+10FFFF, truncated or a stray continuation byte).
size_t utf8_sequence_length(const unsigned char* s, size_t avail) {
  unsigned char b0 = s[0];
  if (b0 < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (avail < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
  if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return len;
}

}  // namespace

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : text_(text) {}

  Result<JsonValue> parse_document() {
    if (text_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;
    JsonValue root;
    skip_whitespace();
    if (!parse_value(&root, 0)) return error_status();
    skip_whitespace();
    if (pos_ != text_.size()) {
      fail("unexpected trailing characters after the document");
      return error_status();
    }
    return root;
  }

 private:
  bool fail(const std::string& message) {
    if (error_.empty()) error_ = message;
    return false;
  }

  Status error_status() const {
    return Status(StatusCode::kCorruptData,
                  "JSON parse error at byte " + std::to_string(pos_) + ": " + error_);
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }

  void skip_whitespace() {
    while (!at_end()) {
      char c = peek();
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  bool consume_literal(const char* literal) {
    size_t n = std::char_traits<char>::length(literal);
    if (text_.compare(pos_, n, literal) != 0) return false;
    pos_ += n;
    return true;
  }

  bool parse_value(JsonValue* out, int depth) {
    if (at_end()) return fail("unexpected end of input, expected a value");
    char c = peek();
    switch (c) {
      case '{':
        return parse_object(out, depth + 1);
      case '[':
        return parse_array(out, depth + 1);
      case '"':
        out->kind_ = JsonValue::Kind::kString;
        return parse_string(&out->string_);
      case 't':
        return parse_keyword("true", JsonValue::Kind::kBool, true, out);
      case 'f':
        return parse_keyword("false", JsonValue::Kind::kBool, false, out);
      case 'n':
        return parse_keyword("null", JsonValue::Kind::kNull, false, out);
      default:
        if (c == '-' || c == 'N' || c == 'I' || is_digit(c)) return parse_number(out);
        return fail("unexpected character " + describe_char(c) + ", expected a value");
    }
  }

  bool parse_keyword(const char* word, JsonValue::Kind kind, bool value, JsonValue* out) {
    if (!consume_literal(word)) return fail(std::string("invalid literal, expected ") + word);
    out->kind_ = kind;
    out->bool_ = value;
    return true;
  }

  bool parse_object(JsonValue* out, int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than " + std::to_string(kMaxDepth));
    out->kind_ = JsonValue::Kind::kObject;
    ++pos_;
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      skip_whitespace();
      if (at_end()) return fail("unexpected end of input inside an object");
      if (peek() != '"') return fail("expected a string key in an object");
      size_t key_pos = pos_;
      std::string key;
      if (!parse_string(&key)) return false;
      skip_whitespace();
      if (at_end() || peek() != ':') return fail("expected ':' after an object key");
      ++pos_;
      skip_whitespace();
      JsonValue member;
      if (!parse_value(&member, depth)) return false;
      if (!out->object_.emplace(std::move(key), std::move(member)).second) {
        pos_ = key_pos;
        return fail("duplicate object key");
      }
      skip_whitespace();
      if (at_end()) return fail("unexpected end of input inside an object");
      char c = peek();
      ++pos_;
      if (c == '}') return true;
      if (c != ',') {
        --pos_;
        return fail("expected ',' or '}' in an object");
      }
    }
  }

  bool parse_array(JsonValue* out, int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than " + std::to_string(kMaxDepth));
    out->kind_ = JsonValue::Kind::kArray;
    ++pos_;
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      skip_whitespace();
      out->array_.emplace_back();
      if (!parse_value(&out->array_.back(), depth)) return false;
      skip_whitespace();
      if (at_end()) return fail("unexpected end of input inside an array");
      char c = peek();
      ++pos_;
      if (c == ']') return true;
      if (c != ',') {
        --pos_;
        return fail("expected ',' or ']' in an array");
      }
    }
  }

  bool parse_hex4(uint32_t* out) {
    if (text_.size() - pos_ < 4) return fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex_value(text_[pos_ + i]);
      if (h < 0) return fail("invalid hex digit in \\u escape");
      v = (v << 4) | static_cast<uint32_t>(h);
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  bool parse_unicode_escape(std::string* out) {
    uint32_t cp;
    if (!parse_hex4(&cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("unpaired low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (text_.compare(pos_, 2, "\\u") != 0) return fail("unpaired high surrogate in \\u escape");
      pos_ += 2;
      uint32_t low;
      if (!parse_hex4(&low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) return fail("high surrogate not followed by a low one");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(cp, out);
    return true;
  }

  bool parse_string(std::string* out) {
    ++pos_;
    while (true) {
      if (at_end()) return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return fail("unescaped control character in a string");
      if (c == '\\') {
        ++pos_;
        if (at_end()) return fail("unterminated escape sequence");
        char e = peek();
        ++pos_;
        switch (e) {
          case '"': out->push_back('"'); break;
          case '\\': out->push_back('\\'); break;
          case '/': out->push_back('/'); break;
          case 'b': out->push_back('\b'); break;
          case 'f': out->push_back('\f'); break;
          case 'n': out->push_back('\n'); break;
          case 'r': out->push_back('\r'); break;
          case 't': out->push_back('\t'); break;
          case 'u':
            if (!parse_unicode_escape(out)) return false;
            break;
          default:
            --pos_;
            return fail("invalid escape character " + describe_char(e));
        }
        continue;
      }
      const auto* bytes = reinterpret_cast<const unsigned char*>(text_.data()) + pos_;
      size_t len = utf8_sequence_length(bytes, text_.size() - pos_);
      if (len == 0) return fail("invalid UTF-8 in a string");
      out->append(text_, pos_, len);
      pos_ += len;
    }
  }

  bool parse_number(JsonValue* out) {
    out->kind_ = JsonValue::Kind::kNumber;
    if (consume_literal("NaN")) {
      out->number_ = std::numeric_limits<double>::quiet_NaN();
      return true;
    }
    if (consume_literal("Infinity")) {
      out->number_ = std::numeric_limits<double>::infinity();
      return true;
    }
    if (consume_literal("-Infinity")) {
      out->number_ = -std::numeric_limits<double>::infinity();
      return true;
    }
    size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (at_end() || !is_digit(peek())) return fail("expected a digit in a number");
    if (peek() == '0') {
      ++pos_;
      if (!at_end() && is_digit(peek())) return fail("leading zero in a number");
    } else {
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (at_end() || !is_digit(peek())) return fail("expected a digit after the decimal point");
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (at_end() || !is_digit(peek())) return fail("expected a digit in an exponent");
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    auto [ptr, ec] = std::from_chars(first, last, out->number_);
    if (ec == std::errc::result_out_of_range) {
      std::string literal(first, last);
      out->number_ = std::strtod(literal.c_str(), nullptr);
    } else if (ec != std::errc() || ptr != last) {
      pos_ = start;
      return fail("malformed number");
    }
    return true;
  }

  const std::string& text_;
  size_t pos_ = 0;
  std::string error_;
};

Result<JsonValue> JsonValue::parse(const std::string& text) {
  JsonParser parser(text);
  return parser.parse_document();
}

bool JsonValue::as_bool() const {
  PAGEDLLM_CHECK(kind_ == Kind::kBool, "JSON value is not a bool");
  return bool_;
}

double JsonValue::as_number() const {
  PAGEDLLM_CHECK(kind_ == Kind::kNumber, "JSON value is not a number");
  return number_;
}

int64_t JsonValue::as_int() const {
  PAGEDLLM_CHECK(kind_ == Kind::kNumber, "JSON value is not a number");
  PAGEDLLM_CHECK(std::isfinite(number_) && std::trunc(number_) == number_,
                 "JSON number " << number_ << " is not an integer");
  PAGEDLLM_CHECK(number_ >= -9223372036854775808.0 && number_ < 9223372036854775808.0,
                 "JSON number " << number_ << " does not fit in int64");
  return static_cast<int64_t>(number_);
}

const std::string& JsonValue::as_string() const {
  PAGEDLLM_CHECK(kind_ == Kind::kString, "JSON value is not a string");
  return string_;
}

const std::vector<JsonValue>& JsonValue::as_array() const {
  PAGEDLLM_CHECK(kind_ == Kind::kArray, "JSON value is not an array");
  return array_;
}

const std::map<std::string, JsonValue>& JsonValue::as_object() const {
  PAGEDLLM_CHECK(kind_ == Kind::kObject, "JSON value is not an object");
  return object_;
}

const JsonValue* JsonValue::find(const std::string& key) const {
  if (kind_ != Kind::kObject) return nullptr;
  auto it = object_.find(key);
  return it == object_.end() ? nullptr : &it->second;
}

}  // namespace pagedllm
