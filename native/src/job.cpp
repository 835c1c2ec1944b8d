// Reading job.json: every key the native runner uses is checked here, so later code can trust a Job.
#include "job.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "json.hpp"

namespace sweep {

const std::vector<std::string>& known_artifact_kinds() {
  static const std::vector<std::string> kinds{"torchscript", "torchscript-trt", "aoti"};
  return kinds;
}

namespace {

const std::vector<std::string> kPrecisions{"fp32", "fp16", "bf16", "fp32+fp16", "fp32+bf16"};
const std::vector<std::string> kTf32{"on", "off", ""};

std::string join(const std::vector<std::string>& items, bool quoted = false) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + (quoted ? "\"" + s + "\"" : s);
  return out;
}

/// A wrong type or a missing key below one top-level key; field() adds the file and the key.
class KeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void wrong_type(const char* want, const Json& got) {
  throw KeyError(std::string("expected ") + want + ", got " + got.type_name());
}

const Json& at(const Json& object, const std::string& key) {
  if (!object.is_object()) wrong_type("object", object);
  const auto it = object.find(key);
  if (it == object.end()) throw KeyError("missing key \"" + key + "\"");
  return *it;
}

/// Object member or nullptr when absent or null.
const Json* find(const Json& object, const std::string& key) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

const std::string& as_string(const Json& v) {
  if (!v.is_string()) wrong_type("string", v);
  return v.get_ref<const std::string&>();
}

bool as_bool(const Json& v) {
  if (!v.is_boolean()) wrong_type("boolean", v);
  return v.get<bool>();
}

double as_number(const Json& v) {
  if (!v.is_number()) wrong_type("number", v);
  return v.get<double>();
}

/// An integer: a number without fraction that fits in int64 (5.0 is accepted, 5.5 and 2^63 are not).
int64_t as_int(const Json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  const double d = as_number(v);
  // 2^63 is exactly representable; anything >= it does not fit in int64.
  if (v.is_number_unsigned() || !(d >= -9223372036854775808.0 && d < 9223372036854775808.0) ||
      std::trunc(d) != d) {
    throw KeyError("expected an integer, got " + v.dump());
  }
  return static_cast<int64_t>(d);
}

const Json& as_array(const Json& v) {
  if (!v.is_array()) wrong_type("array", v);
  return v;
}

/// Runs `get`, turning a KeyError into BadInput that names the file and the key.
template <typename F>
auto field(const std::string& path, const std::string& key, F&& get) -> decltype(get()) {
  try {
    return get();
  } catch (const KeyError& e) {
    throw BadInput(path + ": \"" + key + "\": " + e.what());
  }
}

/// "syntax error while parsing object key - unexpected ','; expected string literal at line 1 column 18":
/// nlohmann's message without its "[json.exception.parse_error.101] parse error at ...: " prefix, and the
/// place computed from the byte offset, 1-based.
std::string parse_error_message(const nlohmann::json::parse_error& e, const std::string& text) {
  std::string what = e.what();
  const auto colon = what.find(": ");
  if (colon != std::string::npos) what = what.substr(colon + 2);
  if (e.byte == 0) return what;
  size_t line = 1, col = 1;
  for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return what + " at line " + std::to_string(line) + " column " + std::to_string(col);
}

}  // namespace

Job load_job(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BadInput("cannot read job file " + path + ": " + std::strerror(errno));
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();

  Json doc;
  try {
    // Strict RFC 8259: no comments, no trailing commas, no NaN.
    doc = Json::parse(text, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const nlohmann::json::parse_error& e) {
    throw BadInput(path + ": invalid JSON: " + parse_error_message(e, text));
  }
  if (!doc.is_object()) throw BadInput(path + ": expected a JSON object at the top level");

  Job job;
  const auto str_or = [&](const char* key, const std::string& dflt) {
    return field(path, key, [&] {
      const Json* v = find(doc, key);
      return v == nullptr ? dflt : as_string(*v);
    });
  };
  job.job_key = str_or("job_key", "");
  job.runtime = str_or("runtime", "");
  job.device = field(path, "device", [&] { return as_string(at(doc, "device")); });
  job.model_precision = field(path, "model_precision", [&] { return as_string(at(doc, "model_precision")); });
  if (std::find(kPrecisions.begin(), kPrecisions.end(), job.model_precision) == kPrecisions.end()) {
    throw BadInput(path + ": \"model_precision\": unknown value \"" + job.model_precision +
                   "\" (allowed: " + join(kPrecisions) + ")");
  }
  job.warmup = field(path, "warmup", [&] { return as_int(at(doc, "warmup")); });
  job.iters = field(path, "iters", [&] { return as_int(at(doc, "iters")); });
  job.seed = field(path, "seed", [&] { return as_int(at(doc, "seed")); });
  if (job.warmup < 0) throw BadInput(path + ": \"warmup\" must be >= 0");
  if (job.iters < 1) throw BadInput(path + ": \"iters\" must be >= 1");

  const Json& inputs = field(path, "inputs", [&]() -> const Json& { return as_array(at(doc, "inputs")); });
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string key = "inputs[" + std::to_string(i) + "]";
    InputSpec spec;
    field(path, key, [&] {
      const Json& input = inputs[i];
      for (const Json& d : as_array(at(input, "shape"))) {
        const int64_t n = as_int(d);
        if (n < 0) throw KeyError("negative dimension " + std::to_string(n) + " in \"shape\"");
        spec.shape.push_back(n);
      }
      spec.low = as_number(at(input, "low"));
      spec.high = as_number(at(input, "high"));
      return 0;
    });
    job.inputs.push_back(std::move(spec));
  }

  const Json* artifact = find(doc, "artifact");
  if (artifact == nullptr) {
    throw BadInput(path + ": \"artifact\" is null: sweep-bench runs compiled artifacts (" +
                   join(known_artifact_kinds()) + ")");
  }
  field(path, "artifact", [&] {
    job.artifact.kind = as_string(at(*artifact, "kind"));
    job.artifact.file = as_string(at(*artifact, "file"));
    return 0;
  });
  const auto& kinds = known_artifact_kinds();
  if (std::find(kinds.begin(), kinds.end(), job.artifact.kind) == kinds.end()) {
    throw BadInput(path + ": \"artifact.kind\": unknown kind \"" + job.artifact.kind +
                   "\" (sweep-bench runs: " + join(kinds) + ")");
  }

  if (const Json* outputs = find(doc, "outputs_path")) {
    job.outputs_path = field(path, "outputs_path", [&] { return as_string(*outputs); });
  }

  // Added with CUDA graphs and the tf32 axis; absent (older parents) or null means the default.
  if (const Json* graphs = find(doc, "cuda_graphs")) {
    job.cuda_graphs = field(path, "cuda_graphs", [&] { return as_bool(*graphs); });
  }
  job.tf32 = str_or("tf32", "");
  if (std::find(kTf32.begin(), kTf32.end(), job.tf32) == kTf32.end()) {
    throw BadInput(path + ": \"tf32\": unknown value \"" + job.tf32 + "\" (allowed: " + join(kTf32, true) + ")");
  }
  return job;
}

}  // namespace sweep
