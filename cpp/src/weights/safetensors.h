// Safetensors reading, bounds-checked, over mmap: tensors are views into the mapped file.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32"|"BF16"|"F16"|..., "shape": [...], "data_offsets": [begin, end]},
//  "__metadata__": {...}}, then the data section; offsets are relative to the data section.
// open() validates everything before returning: header length within the file, JSON well
// formed, each tensor's dtype known, shape non-negative, end - begin == numel * dtype size,
// offsets inside the data section and tensors not overlapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/tensor.h"
#include "pagedllm/status.h"

namespace pagedllm {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // into the mapping
  size_t nbytes = 0;

  // A host Tensor view (at most Tensor::kMaxDims dims; CHECKed).
  Tensor as_tensor() const;
};

class SafetensorsFile {
 public:
  // kNotFound if the file is missing, kCorruptData for any malformation, kUnsupported for a
  // dtype pagedllm cannot load (the message names the tensor and dtype).
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr when absent

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
};

// Drops this process's resident pages of a mapped tensor (only whole pages inside
// [data, data + nbytes), so neighbours are untouched); the data stays readable and is read from
// the file again if touched. For weights whose contents were copied elsewhere (packed).
void release_mapped_pages(const void* data, size_t nbytes);

// All tensors of a model directory: model.safetensors, the shards named by
// model.safetensors.index.json, or else every *.safetensors file in the directory.
class WeightSet {
 public:
  // kNotFound when the directory holds no safetensors file; errors of open() otherwise; a
  // tensor name appearing in two files is kCorruptData.
  static Result<std::unique_ptr<WeightSet>> open_dir(const std::string& model_dir);

  const TensorInfo* find(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> index_;
};

}  // namespace pagedllm
