// Model configurations: from a diffusers folder's config.json files, or for a single file from
// its original-layout YAML or its tensor shapes (config_from_shapes and config_from_original_yaml
// are public, checkpoint.h), and what a configuration claims checked against what the weights
// hold, before any module is built.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "p2l/model/checkpoint.h"

namespace p2l::model {

// Tensor name → shape, as a weight file's header lists them.
using Shapes = std::map<std::string, std::vector<int64_t>>;

const std::vector<int64_t>* find_shape(const Shapes& shapes, const std::string& key);
// Largest integer N with "<prefix>N." present in any key, plus one.
int count_indexed(const Shapes& shapes, const std::string& prefix);
// The text encoder's prefix in a single file (older transformers saved no text_model level).
std::string text_prefix(const Shapes& shapes);

// A diffusers folder's configuration, from its config.json files (each error names its file).
ModelConfig diffusers_config(const std::filesystem::path& dir);
// A single file's configuration: its YAML (--config, else <name>.yaml beside it) with the
// tensor shapes, else SD v1's head counts with the shapes.
ModelConfig single_file_config(const std::filesystem::path& path, const Shapes& shapes,
                               const LoadOptions& options);
// The sizes a diffusers folder's config.json files claim, checked against its weight files'
// headers: a config that lies (a million layers, a wider network) would otherwise allocate what
// the weights never held. A tensor that is absent or of another rank is left to the loader.
void check_config_against_weights(const ModelConfig& config, const std::filesystem::path& dir,
                                  const std::map<Component, Shapes>& shapes);

}  // namespace p2l::model
