// Safetensors reader. Invariant: a SafetensorsFile exists only after its whole header was
// validated, so every TensorInfo it holds describes bytes inside the read-only mapping, of a
// supported dtype, at most Tensor::kMaxDims dims, not overlapping another tensor. The mapping
// lives until the SafetensorsFile is destroyed. A WeightSet maps each tensor name to exactly one
// file.
#include "weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "util/check.h"
#include "weights/json.h"

namespace pagedllm {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

struct SafetensorsDType {
  const char* name;
  uint64_t bits;                 // per element
  std::optional<DType> dtype;    // nullopt: a valid safetensors dtype pagedllm cannot load
};

const SafetensorsDType kDTypes[] = {
    {"F32", 32, DType::kFloat32}, {"BF16", 16, DType::kBFloat16}, {"F16", 16, DType::kFloat16},
    {"I32", 32, DType::kInt32},   {"I64", 64, DType::kInt64},     {"F64", 64, std::nullopt},
    {"C64", 64, std::nullopt},    {"I16", 16, std::nullopt},      {"I8", 8, std::nullopt},
    {"U64", 64, std::nullopt},    {"U32", 32, std::nullopt},      {"U16", 16, std::nullopt},
    {"U8", 8, std::nullopt},      {"BOOL", 8, std::nullopt},      {"F8_E4M3", 8, std::nullopt},
    {"F8_E5M2", 8, std::nullopt}, {"F8_E8M0", 8, std::nullopt},   {"F6_E2M3", 6, std::nullopt},
    {"F6_E3M2", 6, std::nullopt}, {"F4", 4, std::nullopt},
};

const SafetensorsDType* lookup_dtype(const std::string& name) {
  for (const SafetensorsDType& d : kDTypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}


bool json_to_uint(const JsonValue& v, uint64_t* out) {
  if (!v.is_number()) return false;
  double d = v.as_number();
  if (!(d >= 0.0 && d <= kMaxExactInteger) || std::trunc(d) != d) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

Status corrupt(const std::string& path, const std::string& what) {
  return Status(StatusCode::kCorruptData, "safetensors file " + path + ": " + what);
}

struct Span {
  uint64_t begin;
  uint64_t end;
  const std::string* name;
};

// Validates one header entry into *info and *span. A valid entry that pagedllm cannot load
// (dtype or rank) sets *unsupported instead of failing, so corruption elsewhere wins.
Status parse_entry(const std::string& path, const std::string& name, const JsonValue& entry,
                   const unsigned char* data, uint64_t data_bytes, TensorInfo* info, Span* span,
                   std::string* unsupported) {
  const std::string where = "tensor '" + name + "'";
  if (!entry.is_object()) return corrupt(path, where + " is not a JSON object");
  const JsonValue* dtype_v = entry.find("dtype");
  const JsonValue* shape_v = entry.find("shape");
  const JsonValue* offsets_v = entry.find("data_offsets");
  if (!dtype_v || !dtype_v->is_string()) return corrupt(path, where + " has no string 'dtype'");
  if (!shape_v || !shape_v->is_array()) return corrupt(path, where + " has no array 'shape'");
  if (!offsets_v || !offsets_v->is_array()) {
    return corrupt(path, where + " has no array 'data_offsets'");
  }
  const std::string& dtype_name = dtype_v->as_string();
  const SafetensorsDType* dtype = lookup_dtype(dtype_name);
  if (!dtype) return corrupt(path, where + " has unknown dtype '" + dtype_name + "'");

  uint64_t numel = 1;
  for (const JsonValue& dim_v : shape_v->as_array()) {
    uint64_t dim;
    if (!json_to_uint(dim_v, &dim)) {
      return corrupt(path, where + " has a shape entry that is not a non-negative integer");
    }
    if (__builtin_mul_overflow(numel, dim, &numel)) {
      return corrupt(path, where + " has a shape whose element count overflows");
    }
    info->shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t total_bits;
  if (__builtin_mul_overflow(numel, dtype->bits, &total_bits) || total_bits % 8 != 0) {
    return corrupt(path, where + " has a shape that is not a whole number of bytes");
  }
  const uint64_t nbytes = total_bits / 8;

  const auto& offsets = offsets_v->as_array();
  uint64_t begin, end;
  if (offsets.size() != 2 || !json_to_uint(offsets[0], &begin) ||
      !json_to_uint(offsets[1], &end)) {
    return corrupt(path, where + " data_offsets must be two non-negative integers");
  }
  if (begin > end) {
    return corrupt(path, where + " data_offsets begin " + std::to_string(begin) + " > end " +
                             std::to_string(end));
  }
  if (end > data_bytes) {
    return corrupt(path, where + " data_offsets end " + std::to_string(end) +
                             " is past the data section (" + std::to_string(data_bytes) +
                             " bytes)");
  }
  if (end - begin != nbytes) {
    return corrupt(path, where + " spans " + std::to_string(end - begin) + " bytes but its " +
                             dtype_name + " shape needs " + std::to_string(nbytes));
  }

  if (unsupported->empty() && !dtype->dtype) {
    *unsupported = where + " has dtype " + dtype_name + ", which pagedllm cannot load";
  } else if (unsupported->empty() && info->shape.size() > static_cast<size_t>(Tensor::kMaxDims)) {
    *unsupported = where + " has " + std::to_string(info->shape.size()) + " dims (at most " +
                   std::to_string(Tensor::kMaxDims) + " supported)";
  }
  info->name = name;
  info->dtype = dtype->dtype.value_or(DType::kFloat32);
  info->data = data + begin;
  info->nbytes = static_cast<size_t>(nbytes);
  *span = Span{begin, end, &info->name};
  return Status();
}

// Fills *tensors from the file bytes [size]; on failure *tensors is unspecified.
Status parse_file(const std::string& path, const unsigned char* bytes, uint64_t size,
                  std::map<std::string, TensorInfo>* tensors) {
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | bytes[i];
  if (header_bytes > size - 8) {
    return corrupt(path, "header length " + std::to_string(header_bytes) +
                             " exceeds the file size " + std::to_string(size));
  }
  if (header_bytes > kMaxHeaderBytes) {
    return corrupt(path, "header length " + std::to_string(header_bytes) + " exceeds the " +
                             std::to_string(kMaxHeaderBytes) + "-byte limit");
  }
  const std::string header_text(reinterpret_cast<const char*>(bytes) + 8, header_bytes);
  Result<JsonValue> header = JsonValue::parse(header_text);
  if (!header.ok()) return corrupt(path, "header: " + header.status().message());
  if (!header->is_object()) return corrupt(path, "header is not a JSON object");

  const unsigned char* data = bytes + 8 + header_bytes;
  const uint64_t data_bytes = size - 8 - header_bytes;
  std::vector<Span> spans;
  std::string unsupported;
  for (const auto& [name, entry] : header->as_object()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return corrupt(path, "__metadata__ is not a JSON object");
      continue;
    }
    TensorInfo& info = (*tensors)[name];
    Span span{};
    Status s = parse_entry(path, name, entry, data, data_bytes, &info, &span, &unsupported);
    if (!s.ok()) return s;
    if (span.end > span.begin) spans.push_back(span);
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].begin < spans[i - 1].end) {
      return corrupt(path, "tensors '" + *spans[i - 1].name + "' and '" + *spans[i].name +
                               "' overlap");
    }
  }
  if (!unsupported.empty()) {
    return Status(StatusCode::kUnsupported, "safetensors file " + path + ": " + unsupported);
  }
  return Status();
}

Status read_text_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kNotFound, "cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status(StatusCode::kNotFound, "cannot read " + path);
  *out = ss.str();
  return Status();
}

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

// The shard file names of an index file, in first-mention order, with each tensor's file.
Status read_index(const std::string& index_path,
                  std::vector<std::string>* files,
                  std::map<std::string, std::string>* weight_map) {
  std::string text;
  Status s = read_text_file(index_path, &text);
  if (!s.ok()) return s;
  Result<JsonValue> index = JsonValue::parse(text);
  if (!index.ok()) {
    return Status(StatusCode::kCorruptData, index_path + ": " + index.status().message());
  }
  const JsonValue* map_v = index->find("weight_map");
  if (!map_v || !map_v->is_object()) {
    return Status(StatusCode::kCorruptData, index_path + ": no 'weight_map' object");
  }
  std::set<std::string> seen;
  for (const auto& [name, file_v] : map_v->as_object()) {
    if (!file_v.is_string() || !is_plain_file_name(file_v.as_string())) {
      return Status(StatusCode::kCorruptData,
                    index_path + ": weight_map entry '" + name + "' is not a file name");
    }
    const std::string& file = file_v.as_string();
    (*weight_map)[name] = file;
    if (seen.insert(file).second) files->push_back(file);
  }
  if (files->empty()) {
    return Status(StatusCode::kCorruptData, index_path + ": weight_map is empty");
  }
  return Status();
}

}  // namespace

Tensor TensorInfo::as_tensor() const {
  PAGEDLLM_CHECK(shape.size() <= static_cast<size_t>(Tensor::kMaxDims),
                 "tensor '" << name << "' has " << shape.size() << " dims");
  Tensor t;
  t.data = const_cast<void*>(data);  // the mapping is read-only: views must not be written
  t.dtype = dtype;
  t.ndim = static_cast<int>(shape.size());
  int64_t stride = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.shape[d] = shape[d];
    t.stride[d] = stride;
    stride *= shape[d];
  }
  PAGEDLLM_CHECK(static_cast<size_t>(stride) * dtype_size(dtype) == nbytes,
                 "tensor '" << name << "' shape disagrees with its byte size");
  return t;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status(StatusCode::kNotFound,
                  "cannot open safetensors file " + path + ": " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(StatusCode::kNotFound, "safetensors path " + path + " is not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return corrupt(path, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte "
                                                             "header length");
  }
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);
  if (mapping == MAP_FAILED) {
    return Status(StatusCode::kResourceExhausted,
                  "cannot mmap safetensors file " + path + ": " + std::strerror(map_errno));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = mapping;
  file->mapping_size_ = size;
  Status s = parse_file(path, static_cast<const unsigned char*>(mapping), size, &file->tensors_);
  if (!s.ok()) return s;
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_) ::munmap(mapping_, mapping_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Result<std::unique_ptr<WeightSet>> WeightSet::open_dir(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) {
    return Status(StatusCode::kNotFound,
                  "model directory " + model_dir + " does not exist or is not a directory");
  }
  const fs::path dir(model_dir);
  const fs::path index_path = dir / "model.safetensors.index.json";
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;
  if (fs::exists(index_path, ec)) {
    Status s = read_index(index_path.string(), &files, &weight_map);
    if (!s.ok()) return s;
    for (const std::string& file : files) {
      if (!fs::is_regular_file(dir / file, ec)) {
        return Status(StatusCode::kNotFound, "shard " + file + " named by " +
                                                 index_path.string() + " does not exist");
      }
    }
  } else {
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& p = it->path();
      if (p.extension() == ".safetensors" && it->is_regular_file(ec)) {
        files.push_back(p.filename().string());
      }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      return Status(StatusCode::kNotFound, "no *.safetensors file in " + model_dir);
    }
  }

  auto set = std::make_unique<WeightSet>();
  std::map<std::string, const SafetensorsFile*> by_file;
  for (const std::string& file : files) {
    Result<std::unique_ptr<SafetensorsFile>> opened = SafetensorsFile::open((dir / file).string());
    if (!opened.ok()) return opened.status();
    set->files_.push_back(std::move(opened).value());
    const SafetensorsFile* sf = set->files_.back().get();
    by_file[file] = sf;
    for (const auto& [name, info] : sf->tensors()) {
      if (!set->index_.emplace(name, &info).second) {
        std::string first;
        for (const auto& [other, other_sf] : by_file) {
          if (other_sf != sf && other_sf->find(name)) first = other;
        }
        return Status(StatusCode::kCorruptData,
                      "tensor '" + name + "' appears in both " + first + " and " + file);
      }
    }
  }
  for (const auto& [name, file] : weight_map) {
    if (!by_file.at(file)->find(name)) {
      return Status(StatusCode::kCorruptData, "tensor '" + name + "' is listed in " +
                                                  index_path.string() + " but missing from " +
                                                  file);
    }
  }
  return set;
}

const TensorInfo* WeightSet::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

std::vector<std::string> WeightSet::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& entry : index_) out.push_back(entry.first);
  return out;
}

void release_mapped_pages(const void* data, size_t nbytes) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + nbytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace pagedllm
