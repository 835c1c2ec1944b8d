// Reading job.json: every key the native runner uses is checked here, so later code can trust a Job.
#include "job.hpp"

#include <algorithm>
#include <cerrno>
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

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

/// Wraps json access errors so the message says which key of which file was wrong.
template <typename F>
auto field(const std::string& path, const std::string& key, F&& get) -> decltype(get()) {
  try {
    return get();
  } catch (const json::Error& e) {
    throw BadInput(path + ": \"" + key + "\": " + e.what());
  }
}

}  // namespace

Job load_job(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BadInput("cannot read job file " + path + ": " + std::strerror(errno));
  std::stringstream buf;
  buf << in.rdbuf();

  json::Value doc;
  try {
    doc = json::parse(buf.str());
  } catch (const json::Error& e) {
    throw BadInput(path + ": invalid JSON: " + e.what());
  }
  if (!doc.is_object()) throw BadInput(path + ": expected a JSON object at the top level");

  Job job;
  const auto str_or = [&](const char* key, const std::string& dflt) {
    return field(path, key, [&] {
      const json::Value* v = doc.find(key);
      return v == nullptr || v->is_null() ? dflt : v->as_string();
    });
  };
  job.job_key = str_or("job_key", "");
  job.runtime = str_or("runtime", "");
  job.device = field(path, "device", [&] { return doc.at("device").as_string(); });
  job.model_precision =
      field(path, "model_precision", [&] { return doc.at("model_precision").as_string(); });
  if (std::find(kPrecisions.begin(), kPrecisions.end(), job.model_precision) == kPrecisions.end()) {
    throw BadInput(path + ": \"model_precision\": unknown value \"" + job.model_precision +
                   "\" (allowed: " + join(kPrecisions) + ")");
  }
  job.warmup = field(path, "warmup", [&] { return doc.at("warmup").as_int(); });
  job.iters = field(path, "iters", [&] { return doc.at("iters").as_int(); });
  job.seed = field(path, "seed", [&] { return doc.at("seed").as_int(); });
  if (job.warmup < 0) throw BadInput(path + ": \"warmup\" must be >= 0");
  if (job.iters < 1) throw BadInput(path + ": \"iters\" must be >= 1");

  const json::Array& inputs = *field(path, "inputs", [&] { return &doc.at("inputs").as_array(); });
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string key = "inputs[" + std::to_string(i) + "]";
    InputSpec spec;
    field(path, key, [&] {
      const json::Value& in = inputs[i];
      for (const json::Value& d : in.at("shape").as_array()) {
        const int64_t n = d.as_int();
        if (n < 0) throw json::Error("negative dimension " + std::to_string(n) + " in \"shape\"");
        spec.shape.push_back(n);
      }
      spec.low = in.at("low").as_number();
      spec.high = in.at("high").as_number();
      return 0;
    });
    job.inputs.push_back(std::move(spec));
  }

  const json::Value* artifact = doc.find("artifact");
  if (artifact == nullptr || artifact->is_null()) {
    throw BadInput(path + ": \"artifact\" is null: sweep-bench runs compiled artifacts (" +
                   join(known_artifact_kinds()) + ")");
  }
  field(path, "artifact", [&] {
    job.artifact.kind = artifact->at("kind").as_string();
    job.artifact.file = artifact->at("file").as_string();
    return 0;
  });
  const auto& kinds = known_artifact_kinds();
  if (std::find(kinds.begin(), kinds.end(), job.artifact.kind) == kinds.end()) {
    throw BadInput(path + ": \"artifact.kind\": unknown kind \"" + job.artifact.kind +
                   "\" (sweep-bench runs: " + join(kinds) + ")");
  }

  const json::Value* outputs = doc.find("outputs_path");
  if (outputs != nullptr && !outputs->is_null()) {
    job.outputs_path = field(path, "outputs_path", [&] { return outputs->as_string(); });
  }
  return job;
}

}  // namespace sweep
