// The binary's JSON: nlohmann::ordered_json (keys stay in document order), and how result.json is written.
//
// The library comes from an installed nlohmann_json package when CMake finds one, else from the single
// header vendored in native/third_party (see native/third_party/README.md).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace sweep {

/// Objects keep their keys in insertion order, so written files read the way they were built.
using Json = nlohmann::ordered_json;

/// Two-space indented text. Floats stay floats (34.0, as Python writes them), non-finite floats become
/// null (JSON has no NaN), and invalid UTF-8 in strings becomes U+FFFD instead of an exception.
inline std::string dump(const Json& value) {
  return value.dump(2, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

}  // namespace sweep
