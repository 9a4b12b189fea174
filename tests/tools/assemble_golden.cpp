// Assembles one golden file from its recipe (scripts/pack_goldens.py wrote it): the byte ranges
// listed in <name>.parts.json, in order, each copied from a file of the golden set or taken from
// <name>.rest. The build checks the result's SHA-256 (assemble_golden.cmake).
//
//   assemble_golden GOLDENS_DIR NAME OUT
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

bool copy_range(std::ifstream& in, std::ofstream& out, std::streamoff offset, std::streamoff length) {
  std::vector<char> buffer(1 << 20);
  in.seekg(offset);
  while (length > 0 && in) {
    const std::streamoff chunk = std::min<std::streamoff>(length, buffer.size());
    in.read(buffer.data(), chunk);
    out.write(buffer.data(), in.gcount());
    length -= in.gcount();
  }
  return length == 0 && static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: assemble_golden GOLDENS_DIR NAME OUT\n";
    return 2;
  }
  const std::string dir = argv[1], name = argv[2], out_path = argv[3];
  std::ifstream recipe_file(dir + "/" + name + ".parts.json");
  const auto recipe = nlohmann::json::parse(recipe_file, nullptr, /*allow_exceptions=*/false);
  std::ifstream rest(dir + "/" + name + ".rest", std::ios::binary);
  std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
  if (recipe.is_discarded() || !rest || !out) {
    std::cerr << "assemble_golden: cannot read " << dir << "/" << name << ".parts.json / .rest or write "
              << out_path << "\n";
    return 1;
  }
  std::streamoff rest_at = 0;
  for (const auto& part : recipe.at("parts")) {
    bool ok;
    if (part.contains("rest")) {
      const auto length = part["rest"].get<std::streamoff>();
      ok = copy_range(rest, out, rest_at, length);
      rest_at += length;
    } else {
      std::ifstream from(dir + "/" + part.at("from").get<std::string>(), std::ios::binary);
      ok = copy_range(from, out, part.at("offset").get<std::streamoff>(),
                      part.at("length").get<std::streamoff>());
    }
    if (!ok) {
      std::cerr << "assemble_golden: " << name << ": a part could not be read: " << part.dump() << "\n";
      return 1;
    }
  }
  return 0;
}
