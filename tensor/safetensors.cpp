// Reading and writing safetensors files. The loader trusts nothing in the file: every length and
// offset is checked against the file size before a byte is read, so a corrupt or hostile file
// gives an IOError, never a crash or a huge allocation.
#include "tensor/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "tensor/atomic_file.h"
#include "tensor/kernels/kernels.h"

namespace spear {
namespace {

// Tensor bytes go to and from the file exactly as they sit in memory, which is the file's
// byte order only on a little-endian host (x86-64, AArch64, ...).
#if defined(__BYTE_ORDER__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O needs a little-endian host");
#endif

// ordered_json keeps the header's key order, so tensors written in one order come back in it.
using Json = nlohmann::ordered_json;

constexpr const char* kMetadataKey = "__metadata__";
// The reference implementation's cap: a corrupt length must not make us allocate gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const char* dtype_tag(DType t) {
  switch (t) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::i64:
      return "I64";
  }
  return "?";
}

bool parse_dtype_tag(const std::string& tag, DType& out) {
  for (DType t : {DType::f32, DType::f64, DType::i64}) {
    if (tag == dtype_tag(t)) {
      out = t;
      return true;
    }
  }
  return false;
}

// ---- Writing ----

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::vector<Tensor> blobs;  // each tensor's elements, row-major
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    SPEAR_CHECK_T(IOError, !name.empty(), "save_safetensors: ", path, ": empty tensor name");
    SPEAR_CHECK_T(IOError, name != kMetadataKey, "save_safetensors: ", path, ": '", kMetadataKey,
                  "' is reserved and cannot name a tensor");
    SPEAR_CHECK_T(IOError, names.insert(name).second, "save_safetensors: ", path,
                  ": duplicate tensor name '", name, "'");
    SPEAR_CHECK_T(IOError, t.defined(), "save_safetensors: ", path, ": tensor '", name,
                  "' is undefined");
    blobs.push_back(kernels::contiguous(t));
    uint64_t nbytes = static_cast<uint64_t>(t.numel()) * itemsize(t.dtype());
    Json& entry = header[name];
    entry["dtype"] = dtype_tag(t.dtype());
    entry["shape"] = t.shape();
    entry["data_offsets"] = {offset, offset + nbytes};
    offset += nbytes;
  }

  // Pad with spaces so the data starts 8-byte aligned, which lets readers map it in place.
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception&) {
    throw IOError(
        str_cat("save_safetensors: ", path, ": tensor names and metadata must be valid UTF-8"));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));

  write_file_atomically("save_safetensors", path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(length), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const Tensor& blob : blobs)
      out.write(static_cast<const char*>(blob.raw_data()),
                static_cast<std::streamsize>(blob.numel() * itemsize(blob.dtype())));
  });
}

// ---- Reading ----

namespace {

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // byte range in the data buffer
};

// A JSON value that is a non-negative integer fitting in int64 (nlohmann parses every
// non-negative integer literal as number_unsigned).
bool is_size(const Json& v) {
  return v.is_number_unsigned() &&
         v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

// `where` prefixes every message: "load_safetensors: FILE: tensor 'NAME': ".
Entry read_entry(const std::string& where, const std::string& name, const Json& j,
                 uint64_t data_size) {
  Entry e{name, DType::f32, {}, 0, 0};
  SPEAR_CHECK_T(IOError, j.is_object(), where, "entry is not a JSON object: ", j.dump());

  SPEAR_CHECK_T(IOError, j.contains("dtype") && j["dtype"].is_string(), where,
                "missing or non-string \"dtype\"");
  const std::string tag = j["dtype"].get<std::string>();
  SPEAR_CHECK_T(IOError, parse_dtype_tag(tag, e.dtype), where, "dtype '", tag,
                "' is not supported (spear reads F32, F64 and I64)");

  SPEAR_CHECK_T(IOError, j.contains("shape") && j["shape"].is_array(), where,
                "missing or non-list \"shape\"");
  const Json& shape = j["shape"];
  // The bytes the shape needs, with every partial product checked for overflow. Zero sizes are
  // skipped so that the strides of an empty tensor cannot overflow either.
  int64_t nbytes = static_cast<int64_t>(itemsize(e.dtype)), nonzero_bytes = nbytes;
  for (const Json& size : shape) {
    SPEAR_CHECK_T(IOError, !(size.is_number() && size.get<double>() < 0), where, "shape ",
                  shape.dump(), " has a negative size");
    SPEAR_CHECK_T(IOError, is_size(size), where, "shape ", shape.dump(),
                  " must be a list of non-negative integers");
    int64_t s = size.get<int64_t>();
    e.shape.push_back(s);
    if (s == 0) {
      nbytes = 0;
      continue;
    }
    SPEAR_CHECK_T(IOError, nonzero_bytes <= std::numeric_limits<int64_t>::max() / s, where,
                  "shape ", shape.dump(), " is too large: its byte count overflows 64 bits");
    nonzero_bytes *= s;
    nbytes *= s;
  }

  const Json* offsets = j.contains("data_offsets") ? &j["data_offsets"] : nullptr;
  SPEAR_CHECK_T(IOError,
                offsets && offsets->is_array() && offsets->size() == 2 &&
                    (*offsets)[0].is_number_unsigned() && (*offsets)[1].is_number_unsigned(),
                where, "\"data_offsets\" must be a list [BEGIN, END] of two non-negative integers");
  e.begin = (*offsets)[0].get<uint64_t>();
  e.end = (*offsets)[1].get<uint64_t>();
  SPEAR_CHECK_T(IOError, e.begin <= e.end, where, "data_offsets ", offsets->dump(),
                " end before they begin");
  SPEAR_CHECK_T(IOError, e.end <= data_size, where, "data_offsets ", offsets->dump(),
                " reach past the end of the data buffer (", data_size, " bytes)");
  SPEAR_CHECK_T(IOError, e.end - e.begin == static_cast<uint64_t>(nbytes), where, "shape ",
                shape.dump(), " of ", tag, " needs ", nbytes, " bytes but data_offsets ",
                offsets->dump(), " span ", e.end - e.begin);
  return e;
}

std::map<std::string, std::string> read_metadata(const std::string& file, const Json& j) {
  SPEAR_CHECK_T(IOError, j.is_object(), file, kMetadataKey,
                " must be a JSON object of strings, got ", j.dump());
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : j.items()) {
    SPEAR_CHECK_T(IOError, value.is_string(), file, kMetadataKey,
                  " must map strings to strings, but key '", key, "' holds ", value.dump());
    metadata[key] = value.get<std::string>();
  }
  return metadata;
}

// The format forbids duplicate keys but nlohmann silently keeps the last one, so the parser
// callback tracks the keys of every open object and reports the first repeat.
Json parse_header(const std::string& file, const std::string& text) {
  SPEAR_CHECK_T(IOError, !text.empty() && text[0] == '{', file,
                "header is not a JSON object (it must start with '{')");
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool duplicate_is_tensor = false;
  auto track_keys = [&](int, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == Json::parse_event_t::key && duplicate.empty() &&
               !open_objects.back().insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
      duplicate_is_tensor = open_objects.size() == 1;
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, track_keys);
  } catch (const Json::exception& err) {
    throw IOError(str_cat(file, "header is not valid JSON: ", err.what()));
  }
  SPEAR_CHECK_T(IOError, duplicate.empty(), file, "duplicate ",
                duplicate_is_tensor ? "tensor name '" : "key '", duplicate, "' in the header");
  return header;
}

// Sorted by position, the byte ranges must tile the data buffer exactly: the format allows no
// overlap (two tensors sharing bytes) and no hole (bytes that belong to no tensor).
void check_tiling(const std::string& file, std::vector<Entry>& entries, uint64_t data_size) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;  // the end of the ranges seen so far
  std::string previous;  // the tensor that ends at `covered`
  for (const Entry& e : entries) {
    const std::string range = str_cat("(data_offsets [", e.begin, ",", e.end, "])");
    SPEAR_CHECK_T(IOError, e.begin >= covered, file, "tensor '", e.name, "' ", range,
                  " overlaps tensor '", previous, "'");
    SPEAR_CHECK_T(IOError, e.begin == covered, file, "hole of ", e.begin - covered,
                  " bytes in the data buffer before tensor '", e.name, "' ", range);
    covered = e.end;
    previous = e.name;
  }
  SPEAR_CHECK_T(IOError, covered == data_size, file, "the last ", data_size - covered,
                " bytes of the data buffer belong to no tensor");
}

}  // namespace

SafetensorsFile load_safetensors(const std::string& path) {
  const std::string file = str_cat("load_safetensors: ", path, ": ");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  SPEAR_CHECK_T(IOError, in.is_open(), file, "cannot open: ", std::strerror(errno));
  const std::streamoff end = in.tellg();
  SPEAR_CHECK_T(IOError, end >= 0, file, "cannot read the file size");
  const auto file_size = static_cast<uint64_t>(end);
  SPEAR_CHECK_T(IOError, file_size >= 8, file, "file is ", file_size,
                " bytes, shorter than the 8-byte header length");

  in.seekg(0);
  unsigned char length[8];
  in.read(reinterpret_cast<char*>(length), 8);
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(length[i]) << (8 * i);
  SPEAR_CHECK_T(IOError, header_size <= kMaxHeaderBytes, file, "header length ", header_size,
                " exceeds the limit of ", kMaxHeaderBytes, " bytes (100 MB)");
  SPEAR_CHECK_T(IOError, header_size <= file_size - 8, file, "header length ", header_size,
                " is larger than the rest of the file (", file_size - 8, " bytes)");
  std::string text(header_size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_size));
  SPEAR_CHECK_T(IOError, in.good(), file, "reading the header failed");

  const uint64_t data_size = file_size - 8 - header_size;
  SafetensorsFile result;
  std::vector<Entry> entries;
  const Json header = parse_header(file, text);
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      result.metadata = read_metadata(file, value);
      continue;
    }
    SPEAR_CHECK_T(IOError, !name.empty(), file, "empty tensor name");
    entries.push_back(read_entry(str_cat(file, "tensor '", name, "': "), name, value, data_size));
  }
  check_tiling(file, entries, data_size);

  // The ranges tile the buffer in this order, so the tensors are simply read one after another.
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(e.end - e.begin));
    SPEAR_CHECK_T(IOError, in.good(), file, "reading tensor '", e.name, "' failed");
    result.tensors.emplace_back(e.name, std::move(t));
  }
  return result;
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  throw Error(str_cat("safetensors: no tensor named '", name, "'"));
}

}  // namespace spear
