#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_harness.h"
#include "util/check.h"
#include "weights/safetensors.h"

using pagedllm::DType;
using pagedllm::SafetensorsFile;
using pagedllm::StatusCode;
using pagedllm::Tensor;
using pagedllm::TensorInfo;
using pagedllm::WeightSet;

namespace {

// A scratch directory removed with everything in it when the test ends.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/pagedllm_st_XXXXXX";
    const char* made = mkdtemp(tmpl);
    if (made) path = made;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

struct Spec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

void write_raw(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
}

std::string length_prefix(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

// A safetensors file: header text (padded with spaces to a multiple of 8) then data.
void write_safetensors(const std::string& path, std::string header, const std::string& data) {
  while (header.size() % 8 != 0) header += ' ';
  write_raw(path, length_prefix(header.size()) + header + data);
}

std::string shape_json(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// A valid file holding specs laid out back to back, in order.
void write_specs(const std::string& path, const std::vector<Spec>& specs) {
  std::string header = "{\"__metadata__\": {\"format\": \"pt\"}";
  std::string data;
  for (const Spec& s : specs) {
    header += ", \"" + s.name + "\": {\"dtype\": \"" + s.dtype + "\", \"shape\": " +
              shape_json(s.shape) + ", \"data_offsets\": [" + std::to_string(data.size()) + ", " +
              std::to_string(data.size() + s.bytes.size()) + "]}";
    data += s.bytes;
  }
  write_safetensors(path, header + "}", data);
}

template <typename T>
std::string bytes_of(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// Opens a file whose header has one tensor entry `entry` and `data_bytes` bytes of data.
pagedllm::Status open_one(const TempDir& dir, const std::string& entry, size_t data_bytes) {
  std::string path = dir.file("one.safetensors");
  write_safetensors(path, "{\"t\": " + entry + "}", std::string(data_bytes, '\x01'));
  auto r = SafetensorsFile::open(path);
  return r.ok() ? pagedllm::Status() : r.status();
}

int code(const pagedllm::Status& s) { return static_cast<int>(s.code()); }
int code(StatusCode c) { return static_cast<int>(c); }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST(Safetensors, RoundTripsDtypesShapesData) {
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  std::vector<float> f32 = {1.f, -2.f, 3.5f, 4.f, 5.f, 6.25f};
  std::vector<uint16_t> bf16 = {0x3F80, 0xC000, 0x4040, 0x0000};
  std::vector<uint16_t> f16 = {0x3C00, 0x4000, 0xC200, 0x7BFF};
  std::vector<int32_t> i32 = {7, -8, 9};
  std::vector<int64_t> i64 = {1LL << 40, -3};
  std::vector<float> scalar = {42.f};
  std::string path = dir.file("model.safetensors");
  write_specs(path, {{"w.f32", "F32", {2, 3}, bytes_of(f32)},
                     {"w.bf16", "BF16", {4}, bytes_of(bf16)},
                     {"w.f16", "F16", {2, 2}, bytes_of(f16)},
                     {"w.i32", "I32", {3}, bytes_of(i32)},
                     {"w.i64", "I64", {1, 1, 1, 2}, bytes_of(i64)},
                     {"w.scalar", "F32", {}, bytes_of(scalar)},
                     {"w.empty", "F32", {0, 5}, ""}});
  auto r = SafetensorsFile::open(path);
  ASSERT_TRUE(r.ok());
  const SafetensorsFile& file = *r.value();
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.tensors().size(), 7u);
  EXPECT_TRUE(file.find("__metadata__") == nullptr);
  EXPECT_TRUE(file.find("nope") == nullptr);

  const TensorInfo* w = file.find("w.f32");
  ASSERT_TRUE(w != nullptr);
  EXPECT_EQ(w->name, std::string("w.f32"));
  EXPECT_TRUE(w->dtype == DType::kFloat32);
  ASSERT_EQ(w->shape.size(), 2u);
  EXPECT_EQ(w->shape[0], 2);
  EXPECT_EQ(w->shape[1], 3);
  EXPECT_EQ(w->nbytes, 24u);
  EXPECT_EQ(std::memcmp(w->data, f32.data(), 24), 0);
  Tensor t = w->as_tensor();
  EXPECT_EQ(t.ndim, 2);
  EXPECT_EQ(t.shape[0], 2);
  EXPECT_EQ(t.shape[1], 3);
  EXPECT_EQ(t.stride[0], 3);
  EXPECT_EQ(t.stride[1], 1);
  EXPECT_TRUE(t.dtype == DType::kFloat32);
  EXPECT_EQ(static_cast<const float*>(t.data)[5], 6.25f);

  struct Expect { const char* name; DType dtype; size_t nbytes; const std::string bytes; };
  const Expect expects[] = {{"w.bf16", DType::kBFloat16, 8, bytes_of(bf16)},
                            {"w.f16", DType::kFloat16, 8, bytes_of(f16)},
                            {"w.i32", DType::kInt32, 12, bytes_of(i32)},
                            {"w.i64", DType::kInt64, 16, bytes_of(i64)},
                            {"w.scalar", DType::kFloat32, 4, bytes_of(scalar)}};
  for (const Expect& e : expects) {
    const TensorInfo* info = file.find(e.name);
    ASSERT_TRUE(info != nullptr);
    EXPECT_TRUE(info->dtype == e.dtype);
    EXPECT_EQ(info->nbytes, e.nbytes);
    EXPECT_EQ(std::memcmp(info->data, e.bytes.data(), e.nbytes), 0);
  }
  Tensor t4 = file.find("w.i64")->as_tensor();
  EXPECT_EQ(t4.ndim, 4);
  EXPECT_EQ(t4.stride[0], 2);
  EXPECT_EQ(t4.stride[3], 1);
  EXPECT_EQ(t4.shape[3], 2);
  EXPECT_EQ(file.find("w.scalar")->as_tensor().ndim, 0);
  const TensorInfo* empty = file.find("w.empty");
  EXPECT_EQ(empty->nbytes, 0u);
  EXPECT_EQ(empty->as_tensor().shape[1], 5);
}

TEST(Safetensors, AsTensorChecksRank) {
  TensorInfo info;
  info.name = "x";
  info.shape = {1, 1, 1, 1, 1};
  info.nbytes = 4;
  EXPECT_CHECK_FAILS(info.as_tensor());
}

TEST(Safetensors, MissingFileIsNotFound) {
  TempDir dir;
  auto r = SafetensorsFile::open(dir.file("absent.safetensors"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code(r.status()), code(StatusCode::kNotFound));
  EXPECT_EQ(code(SafetensorsFile::open(dir.path).status()), code(StatusCode::kNotFound));
}

TEST(Safetensors, TooShortFile) {
  TempDir dir;
  for (size_t n : {0, 1, 7}) {
    write_raw(dir.file("short.safetensors"), std::string(n, '\x02'));
    auto r = SafetensorsFile::open(dir.file("short.safetensors"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(code(r.status()), code(StatusCode::kCorruptData));
  }
}

TEST(Safetensors, HeaderLengthBeyondFile) {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  write_raw(path, length_prefix(100) + "{}");
  EXPECT_EQ(code(SafetensorsFile::open(path).status()), code(StatusCode::kCorruptData));
  write_raw(path, length_prefix(~0ull) + "{}");
  EXPECT_EQ(code(SafetensorsFile::open(path).status()), code(StatusCode::kCorruptData));
  write_raw(path, length_prefix(3) + "{}");
  EXPECT_EQ(code(SafetensorsFile::open(path).status()), code(StatusCode::kCorruptData));
}

TEST(Safetensors, HeaderNotJsonOrNotObject) {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  for (const char* header : {"{\"a\": ", "not json", "", "[1, 2]", "\"str\"", "{\"t\": 1}",
                             "{\"__metadata__\": [1]}"}) {
    write_safetensors(path, header, "");
    auto r = SafetensorsFile::open(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(code(r.status()), code(StatusCode::kCorruptData));
  }
  write_safetensors(path, "{}", "");
  auto empty = SafetensorsFile::open(path);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty.value()->tensors().empty());
}

TEST(Safetensors, UnknownDtypeIsCorrupt) {
  TempDir dir;
  auto s = open_one(dir, R"({"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]})", 8);
  EXPECT_EQ(code(s), code(StatusCode::kCorruptData));
  s = open_one(dir, R"({"dtype": 3, "shape": [2], "data_offsets": [0, 8]})", 8);
  EXPECT_EQ(code(s), code(StatusCode::kCorruptData));
}

TEST(Safetensors, UnsupportedDtypeNamesTensorAndDtype) {
  TempDir dir;
  for (const char* dtype : {"F64", "I8", "U8", "BOOL", "F8_E4M3"}) {
    size_t bytes = std::string(dtype) == "F64" ? 16 : 2;
    std::string entry = std::string("{\"dtype\": \"") + dtype +
                        "\", \"shape\": [2], \"data_offsets\": [0, " + std::to_string(bytes) + "]}";
    auto s = open_one(dir, entry, bytes);
    EXPECT_EQ(code(s), code(StatusCode::kUnsupported));
    EXPECT_TRUE(contains(s.message(), "'t'"));
    EXPECT_TRUE(contains(s.message(), dtype));
  }
}

TEST(Safetensors, TooManyDimsIsUnsupported) {
  TempDir dir;
  auto s = open_one(dir, R"({"dtype": "F32", "shape": [1,1,1,1,2], "data_offsets": [0, 8]})", 8);
  EXPECT_EQ(code(s), code(StatusCode::kUnsupported));
}

TEST(Safetensors, CorruptionWinsOverUnsupported) {
  TempDir dir;
  std::string path = dir.file("mixed.safetensors");
  write_safetensors(path,
                    R"({"a": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]},)"
                    R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
                    std::string(16, '\0'));
  EXPECT_EQ(code(SafetensorsFile::open(path).status()), code(StatusCode::kCorruptData));
}

TEST(Safetensors, BadShapes) {
  TempDir dir;
  const char* entries[] = {
      R"({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]})",
      R"({"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]})",
      R"({"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]})",
      R"({"dtype": "F32", "shape": 1, "data_offsets": [0, 4]})",
      R"({"dtype": "F32", "data_offsets": [0, 4]})",
      R"({"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]})",
      R"({"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]})",
  };
  for (const char* entry : entries) {
    EXPECT_EQ(code(open_one(dir, entry, 4)), code(StatusCode::kCorruptData));
  }
}

TEST(Safetensors, BadOffsets) {
  TempDir dir;
  const char* entries[] = {
      R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 12]})",   // past the data
      R"({"dtype": "F32", "shape": [2], "data_offsets": [4, 12]})",   // past the data
      R"({"dtype": "F32", "shape": [0], "data_offsets": [8, 4]})",    // begin > end
      R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 8]})",    // size != shape * 4
      R"({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]})",    // size != shape * 4
      R"({"dtype": "F32", "shape": [2], "data_offsets": [0]})",
      R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 8]})",
      R"({"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]})",
      R"({"dtype": "F32", "shape": [2], "data_offsets": [0.5, 8]})",
      R"({"dtype": "F32", "shape": [2]})",
      R"([1, 2])",
  };
  for (const char* entry : entries) {
    EXPECT_EQ(code(open_one(dir, entry, 8)), code(StatusCode::kCorruptData));
  }
  EXPECT_TRUE(open_one(dir, R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})", 8).ok());
}

TEST(Safetensors, OverlappingTensors) {
  TempDir dir;
  std::string path = dir.file("overlap.safetensors");
  write_safetensors(path,
                    R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                    R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                    std::string(12, '\0'));
  auto r = SafetensorsFile::open(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code(r.status()), code(StatusCode::kCorruptData));
  EXPECT_TRUE(contains(r.status().message(), "overlap"));
  write_safetensors(path,
                    R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                    R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
                    std::string(8, '\0'));
  EXPECT_EQ(code(SafetensorsFile::open(path).status()), code(StatusCode::kCorruptData));
  write_safetensors(path,
                    R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},)"
                    R"( "z": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},)"
                    R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                    std::string(12, '\0'));
  EXPECT_TRUE(SafetensorsFile::open(path).ok());
}

TEST(WeightSet, IndexWithTwoShards) {
  TempDir dir;
  std::vector<float> a = {1.f, 2.f}, b = {3.f}, c = {4.f, 5.f, 6.f};
  write_specs(dir.file("model-00001-of-00002.safetensors"),
              {{"layers.0.w", "F32", {2}, bytes_of(a)}, {"embed", "F32", {1}, bytes_of(b)}});
  write_specs(dir.file("model-00002-of-00002.safetensors"),
              {{"layers.1.w", "F32", {3}, bytes_of(c)}});
  write_raw(dir.file("stray.safetensors"), "garbage");
  write_raw(dir.file("model.safetensors.index.json"),
            R"({"metadata": {"total_size": 24}, "weight_map": {)"
            R"("embed": "model-00001-of-00002.safetensors",)"
            R"("layers.0.w": "model-00001-of-00002.safetensors",)"
            R"("layers.1.w": "model-00002-of-00002.safetensors"}})");
  auto r = WeightSet::open_dir(dir.path);
  ASSERT_TRUE(r.ok());
  const WeightSet& set = *r.value();
  std::vector<std::string> names = set.names();
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[0], std::string("embed"));
  EXPECT_EQ(names[1], std::string("layers.0.w"));
  EXPECT_EQ(names[2], std::string("layers.1.w"));
  const TensorInfo* w1 = set.find("layers.1.w");
  ASSERT_TRUE(w1 != nullptr);
  EXPECT_EQ(w1->shape[0], 3);
  EXPECT_EQ(static_cast<const float*>(w1->data)[2], 6.f);
  EXPECT_EQ(static_cast<const float*>(set.find("embed")->data)[0], 3.f);
  EXPECT_TRUE(set.find("missing") == nullptr);
}

TEST(WeightSet, GlobsSafetensorsWithoutIndex) {
  TempDir dir;
  std::vector<float> a = {1.f}, b = {2.f};
  write_specs(dir.file("b.safetensors"), {{"y", "F32", {1}, bytes_of(b)}});
  write_specs(dir.file("a.safetensors"), {{"x", "F32", {1}, bytes_of(a)}});
  write_raw(dir.file("config.json"), "{}");
  auto r = WeightSet::open_dir(dir.path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value()->names().size(), 2u);
  EXPECT_EQ(static_cast<const float*>(r.value()->find("y")->data)[0], 2.f);
}

TEST(WeightSet, DuplicateNamesAcrossFiles) {
  TempDir dir;
  std::vector<float> a = {1.f};
  write_specs(dir.file("a.safetensors"), {{"x", "F32", {1}, bytes_of(a)}});
  write_specs(dir.file("b.safetensors"), {{"x", "F32", {1}, bytes_of(a)}});
  auto r = WeightSet::open_dir(dir.path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code(r.status()), code(StatusCode::kCorruptData));
  EXPECT_TRUE(contains(r.status().message(), "a.safetensors"));
  EXPECT_TRUE(contains(r.status().message(), "b.safetensors"));
}

TEST(WeightSet, IndexNamesMissingShard) {
  TempDir dir;
  std::vector<float> a = {1.f};
  write_specs(dir.file("s1.safetensors"), {{"x", "F32", {1}, bytes_of(a)}});
  write_raw(dir.file("model.safetensors.index.json"),
            R"({"weight_map": {"x": "s1.safetensors", "y": "s2.safetensors"}})");
  auto r = WeightSet::open_dir(dir.path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code(r.status()), code(StatusCode::kNotFound));
  EXPECT_TRUE(contains(r.status().message(), "s2.safetensors"));
}

TEST(WeightSet, BadIndexes) {
  TempDir dir;
  std::vector<float> a = {1.f};
  write_specs(dir.file("s1.safetensors"), {{"x", "F32", {1}, bytes_of(a)}});
  const char* indexes[] = {
      R"({"weight_map": {"x": "s1.safetensors", "y": "s1.safetensors"}})",  // y not in s1
      R"({"weight_map": {"x": "../s1.safetensors"}})",
      R"({"weight_map": {"x": 1}})",
      R"({"weight_map": {}})",
      R"({"metadata": {}})",
      R"({"weight_map": )",
  };
  for (const char* index : indexes) {
    write_raw(dir.file("model.safetensors.index.json"), index);
    EXPECT_EQ(code(WeightSet::open_dir(dir.path).status()), code(StatusCode::kCorruptData));
  }
}

TEST(WeightSet, CorruptShardPropagates) {
  TempDir dir;
  write_raw(dir.file("model.safetensors"), "short");
  EXPECT_EQ(code(WeightSet::open_dir(dir.path).status()), code(StatusCode::kCorruptData));
}

TEST(WeightSet, NoFilesOrNoDirectory) {
  TempDir dir;
  auto r = WeightSet::open_dir(dir.path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code(r.status()), code(StatusCode::kNotFound));
  EXPECT_TRUE(contains(r.status().message(), dir.path));
  EXPECT_EQ(code(WeightSet::open_dir(dir.file("absent")).status()), code(StatusCode::kNotFound));
  write_raw(dir.file("plain"), "x");
  EXPECT_EQ(code(WeightSet::open_dir(dir.file("plain")).status()), code(StatusCode::kNotFound));
}
