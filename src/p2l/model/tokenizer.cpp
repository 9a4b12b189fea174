// CLIP tokenizer, following openai/CLIP clip/simple_tokenizer.py and transformers' CLIPTokenizer:
//   text = whitespace_clean(basic_clean(text)).lower()
//   for token in regex.findall(pat, text): byte-encode, bpe(), look up ids in vocab.json.
// Of ftfy.fix_text only the NFC normalisation is done; its other fixes (mojibake, curly quotes,
// ligatures, full-width forms) are not reproduced.
#include "p2l/model/tokenizer.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>
#include <utility>

#include "p2l/error.h"
#include "p2l/io/json_file.h"

namespace p2l::model {
namespace {

constexpr char kEndOfWord[] = "</w>";
constexpr char kStartOfText[] = "<|startoftext|>";
constexpr char kEndOfText[] = "<|endoftext|>";

// ---------------------------------------------------------------------------------------------
// UTF-8 / UTF-32 helpers (ICU does the decoding: invalid bytes become U+FFFD, as Python's
// errors="replace" would).

std::u32string to_utf32(const std::string& utf8) {
  icu::UnicodeString s = icu::UnicodeString::fromUTF8(utf8);
  std::u32string out;
  out.reserve(static_cast<size_t>(s.length()));
  for (int32_t i = 0; i < s.length(); i = s.moveIndex32(i, 1)) {
    out.push_back(static_cast<char32_t>(s.char32At(i)));
  }
  return out;
}

icu::UnicodeString to_icu(const std::u32string& text) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(text.data()),
                                       static_cast<int32_t>(text.size()));
}

std::u32string to_utf32(const icu::UnicodeString& s) {
  std::u32string out;
  out.reserve(static_cast<size_t>(s.length()));
  for (int32_t i = 0; i < s.length(); i = s.moveIndex32(i, 1)) {
    out.push_back(static_cast<char32_t>(s.char32At(i)));
  }
  return out;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string to_utf8(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(c, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// html.unescape (Python's html module), restricted to the named entities that occur in prompts.

// Names as Python's html5 table spells them. Only the legacy names may omit the ';'
// ("&amp" unescapes, "&apos" does not).
const std::vector<std::pair<std::string, char32_t>>& html_entities() {
  static const std::vector<std::pair<std::string, char32_t>> table = {
      {"amp;", U'&'}, {"amp", U'&'},    {"AMP;", U'&'},  {"AMP", U'&'},  {"lt;", U'<'},
      {"lt", U'<'},   {"LT;", U'<'},    {"LT", U'<'},    {"gt;", U'>'},  {"gt", U'>'},
      {"GT;", U'>'},  {"GT", U'>'},     {"quot;", U'"'}, {"quot", U'"'}, {"QUOT;", U'"'},
      {"QUOT", U'"'}, {"apos;", U'\''}, {"nbsp;", 0xA0}, {"nbsp", 0xA0},
  };
  return table;
}

bool lookup_entity(const std::u32string& name, char32_t& value) {
  for (const auto& [key, cp] : html_entities()) {
    if (key.size() == name.size() && std::equal(key.begin(), key.end(), name.begin())) {
      value = cp;
      return true;
    }
  }
  return false;
}

// Python's html._replace_charref for a numeric reference (already parsed, saturated).
std::u32string numeric_charref(uint64_t num) {
  // html._invalid_charrefs: C1 controls are read as windows-1252; 0x81, 0x8D, 0x8F, 0x90, 0x9D
  // map to themselves.
  static const char32_t kCp1252[32] = {
      0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  if (num == 0x00) return U"\uFFFD";
  if (num == 0x0D) return U"\r";
  if (num >= 0x80 && num <= 0x9F) return std::u32string(1, kCp1252[num - 0x80]);
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return U"\uFFFD";
  // html._invalid_codepoints are dropped.
  if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) ||
      (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) ||
      (num & 0xFFFE) == 0xFFFE) {
    return U"";
  }
  return std::u32string(1, static_cast<char32_t>(num));
}

bool is_ascii_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_ascii_hex(char32_t c) {
  return is_ascii_digit(c) || (c >= U'a' && c <= U'f') || (c >= U'A' && c <= U'F');
}
int hex_value(char32_t c) {
  if (is_ascii_digit(c)) return static_cast<int>(c - U'0');
  if (c >= U'a' && c <= U'f') return static_cast<int>(c - U'a' + 10);
  return static_cast<int>(c - U'A' + 10);
}

// One pass of html.unescape: re.sub(r'&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)').
std::u32string html_unescape(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < n && s[j] == U'#') {
      const bool hex = j + 1 < n && (s[j + 1] == U'x' || s[j + 1] == U'X');
      size_t k = hex ? j + 2 : j + 1;
      const size_t digits_begin = k;
      uint64_t num = 0;
      while (k < n && (hex ? is_ascii_hex(s[k]) : is_ascii_digit(s[k]))) {
        // Saturate: anything above 0x10FFFF is U+FFFD anyway.
        if (num <= 0x10FFFF) num = num * (hex ? 16 : 10) + hex_value(s[k]);
        ++k;
      }
      if (k == digits_begin) {  // "&#" or "&#x" without digits: no match, keep the '&'.
        out.push_back(s[i++]);
        continue;
      }
      if (k < n && s[k] == U';') ++k;
      out += numeric_charref(num);
      i = k;
      continue;
    }
    // Named reference: up to 32 name characters and an optional ';'.
    size_t k = j;
    while (k < n && k - j < 32 && s[k] != U'\t' && s[k] != U'\n' && s[k] != U'\f' && s[k] != U' ' &&
           s[k] != U'<' && s[k] != U'&' && s[k] != U'#' && s[k] != U';') {
      ++k;
    }
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    if (k < n && s[k] == U';') ++k;
    const std::u32string name = s.substr(j, k - j);
    char32_t value = 0;
    if (lookup_entity(name, value)) {
      out.push_back(value);
    } else {
      // The longest known prefix (of at least 2 characters) wins; the rest stays as text.
      size_t x = name.size() - 1;
      for (; x >= 2; --x) {
        if (lookup_entity(name.substr(0, x), value)) break;
      }
      if (x >= 2) {
        out.push_back(value);
        out += name.substr(x);
      } else {
        out.push_back(U'&');
        out += name;
      }
    }
    i = k;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Character classes of CLIP's pattern.

// Python's re '\s' (str.isspace): Unicode White_Space plus the separators U+001C..U+001F.
bool is_space(char32_t c) {
  return u_isUWhiteSpace(static_cast<UChar32>(c)) || (c >= 0x1C && c <= 0x1F);
}

bool is_letter(char32_t c) {  // \p{L}: Lu Ll Lt Lm Lo
  const int8_t t = u_charType(static_cast<UChar32>(c));
  return t == U_UPPERCASE_LETTER || t == U_LOWERCASE_LETTER || t == U_TITLECASE_LETTER ||
         t == U_MODIFIER_LETTER || t == U_OTHER_LETTER;
}

bool is_number(char32_t c) {  // \p{N}: Nd Nl No
  const int8_t t = u_charType(static_cast<UChar32>(c));
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

// ---------------------------------------------------------------------------------------------
// Cleaning: basic_clean (ftfy's NFC, html.unescape twice, strip), whitespace_clean, lower().

std::u32string clean(const std::string& text) {
  std::u32string s = html_unescape(html_unescape(to_utf32(text)));

  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) throw Error(std::string("tokenizer: ICU NFC: ") + u_errorName(status));
  icu::UnicodeString normalized = nfc->normalize(to_icu(s), status);
  if (U_FAILURE(status)) throw Error(std::string("tokenizer: ICU NFC: ") + u_errorName(status));
  s = to_utf32(normalized);

  // re.sub(r'\s+', ' ', text).strip()
  std::u32string collapsed;
  collapsed.reserve(s.size());
  bool pending_space = false;
  for (char32_t c : s) {
    if (is_space(c)) {
      pending_space = !collapsed.empty();
      continue;
    }
    if (pending_space) collapsed.push_back(U' ');
    pending_space = false;
    collapsed.push_back(c);
  }

  // str.lower(): full (SpecialCasing) lower-case mapping with final sigma, as ICU's root locale.
  icu::UnicodeString lower = to_icu(collapsed);
  lower.toLower(icu::Locale::getRoot());
  return to_utf32(lower);
}

// CLIP compiles its pattern with regex.IGNORECASE, under which U+0345 COMBINING GREEK
// YPOGEGRAMMENI (whose case fold is the letter iota) is in neither [\p{L}] nor [^\s\p{L}\p{N}]:
// like whitespace, it matches no alternative and is dropped.
bool is_unmatched(char32_t c) { return c == 0x345 || is_space(c); }

bool is_other(char32_t c) { return !is_unmatched(c) && !is_letter(c) && !is_number(c); }

// regex.findall of CLIP's pattern:
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// Alternatives are tried in order at each position.
std::vector<std::string> pre_tokenize(const std::u32string& s) {
  static const std::u32string kLiterals[] = {
      U"<|startoftext|>", U"<|endoftext|>", U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  std::vector<std::string> tokens;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (is_unmatched(s[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    for (const std::u32string& lit : kLiterals) {
      if (s.compare(i, lit.size(), lit) == 0) {
        end = i + lit.size();
        break;
      }
    }
    if (end == i) {
      if (is_letter(s[i])) {
        while (end < n && is_letter(s[end])) ++end;
      } else if (is_number(s[i])) {
        end = i + 1;  // each digit is its own token
      } else {
        while (end < n && is_other(s[end])) ++end;
      }
    }
    tokens.push_back(to_utf8(s.substr(i, end - i)));
    i = end;
  }
  return tokens;
}

// Inverse of clip_byte_symbols(), by code point.
const std::unordered_map<char32_t, unsigned char>& byte_decoder() {
  static const std::unordered_map<char32_t, unsigned char> table = [] {
    std::unordered_map<char32_t, unsigned char> t;
    for (int b = 0; b < 256; ++b) {
      t.emplace(to_utf32(clip_byte_symbols()[b]).at(0), static_cast<unsigned char>(b));
    }
    return t;
  }();
  return table;
}

std::string merge_key(const std::string& left, const std::string& right) {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key += left;
  key += '\x01';
  key += right;
  return key;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("tokenizer: cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("tokenizer: cannot read " + path);
  return ss.str();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

}  // namespace

std::vector<std::string> clip_pre_tokenize(const std::string& text) {
  return pre_tokenize(clean(text));
}

const std::vector<std::string>& clip_byte_symbols() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      append_utf8(cp, t[b]);
    }
    return t;
  }();
  return table;
}

ClipTokenizer ClipTokenizer::from_files(const std::string& vocab_json,
                                        const std::string& merges_txt) {
  ClipTokenizer tok;
  tok.vocab_path_ = vocab_json;

  // vocab.json: {"token": id, ...}
  const nlohmann::json vocab = io::parse_json(read_file(vocab_json), "tokenizer: " + vocab_json);
  if (!vocab.is_object() || vocab.empty()) {
    throw Error("tokenizer: " + vocab_json + ": expected a non-empty object of token -> id");
  }
  // Ids index token_of_; bound them so that a corrupt file cannot ask for a huge table.
  const int64_t max_id = static_cast<int64_t>(vocab.size()) * 16 + 1024;
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > max_id) {
      throw Error("tokenizer: " + vocab_json + ": token '" + token + "' has an invalid id " +
                  id.dump());
    }
    const int64_t value = id.get<int64_t>();
    if (static_cast<size_t>(value) >= tok.token_of_.size()) {
      tok.token_of_.resize(static_cast<size_t>(value) + 1);
      tok.has_token_.resize(static_cast<size_t>(value) + 1, false);
    }
    if (tok.has_token_[value]) {
      throw Error("tokenizer: " + vocab_json + ": id " + std::to_string(value) +
                  " is used twice ('" + tok.token_of_[value] + "' and '" + token + "')");
    }
    tok.has_token_[value] = true;
    tok.token_of_[value] = token;
    tok.id_of_.emplace(token, value);
  }
  // Every byte must be encodable on its own, mid-word and word-final, or bpe() could fail.
  for (const std::string& sym : clip_byte_symbols()) {
    for (const std::string& t : {sym, sym + kEndOfWord}) {
      if (tok.id_of_.count(t) == 0) {
        throw Error("tokenizer: " + vocab_json + ": byte token '" + t + "' is missing");
      }
    }
  }
  for (const auto& [name, dest] : {std::pair<const char*, int64_t*>{kStartOfText, &tok.bos_id_},
                                   std::pair<const char*, int64_t*>{kEndOfText, &tok.eos_id_}}) {
    auto it = tok.id_of_.find(name);
    if (it == tok.id_of_.end()) {
      throw Error("tokenizer: " + vocab_json + ": special token " + name + " is missing");
    }
    *dest = it->second;
  }

  // merges.txt: an optional "#version" line, then "left right" per line; the line index is the
  // merge rank (CLIP: bpe_ranks = dict(zip(merges, range(len(merges)))), so a repeated pair keeps
  // its last rank).
  std::istringstream merges(read_file(merges_txt));
  std::string line;
  int line_no = 0;
  int rank = 0;
  while (std::getline(merges, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos) {
      throw Error("tokenizer: " + merges_txt + ": line " + std::to_string(line_no) +
                  ": expected two tokens separated by one space, got '" + line + "'");
    }
    const std::string left = line.substr(0, space);
    const std::string right = line.substr(space + 1);
    for (const std::string& t : {left, right, left + right}) {
      if (tok.id_of_.count(t) == 0) {
        throw Error("tokenizer: " + merges_txt + ": line " + std::to_string(line_no) + ": token '" +
                    t + "' is not in " + vocab_json);
      }
    }
    tok.merge_rank_[merge_key(left, right)] = rank++;
  }
  if (rank == 0) throw Error("tokenizer: " + merges_txt + ": no merges");
  return tok;
}

ClipTokenizer ClipTokenizer::from_directory(const std::string& dir) {
  const std::string base = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  return from_files(base + "vocab.json", base + "merges.txt");
}

// CLIP's bpe(): split into byte symbols, mark the word end with '</w>', then repeatedly merge
// every occurrence (left to right) of the adjacent pair with the lowest rank.
std::vector<std::string> ClipTokenizer::bpe(const std::string& word) const {
  std::vector<std::string> symbols;
  for (unsigned char b : word) symbols.push_back(clip_byte_symbols()[b]);
  if (symbols.empty()) return symbols;
  symbols.back() += kEndOfWord;

  while (symbols.size() > 1) {
    int best_rank = INT_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_rank_.find(merge_key(symbols[i], symbols[i + 1]));
      if (it != merge_rank_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == INT_MAX) break;
    const std::string first = symbols[best];
    const std::string second = symbols[best + 1];
    std::vector<std::string> merged;
    merged.reserve(symbols.size());
    for (size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == first && symbols[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(std::move(symbols[i]));
        i += 1;
      }
    }
    symbols = std::move(merged);
  }
  return symbols;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  if (text.size() > kMaxPromptBytes)
    throw Error("tokenizer: the prompt is " + std::to_string(text.size()) + " bytes, more than " +
                std::to_string(kMaxPromptBytes) + " (the text encoder reads its first " +
                std::to_string(kMaxLength - 2) + " tokens)");
  std::vector<int64_t> ids;
  for (const std::string& word : clip_pre_tokenize(text)) {
    // CLIP's bpe cache is seeded with the two special tokens, so they come out whole.
    if (word == kStartOfText) {
      ids.push_back(bos_id_);
      continue;
    }
    if (word == kEndOfText) {
      ids.push_back(eos_id_);
      continue;
    }
    for (const std::string& piece : bpe(word)) {
      auto it = id_of_.find(piece);
      if (it == id_of_.end()) {
        throw Error("tokenizer: BPE token '" + piece + "' is not in " + vocab_path_);
      }
      ids.push_back(it->second);
    }
  }
  return ids;
}

std::vector<int64_t> ClipTokenizer::tokenize(const std::string& text, int max_length) const {
  if (max_length < 2) {
    throw Error("tokenizer: max_length must be at least 2 (BOS and EOS), got " +
                std::to_string(max_length));
  }
  const std::vector<int64_t> ids = encode(text);
  // SD v1 / CLIPTokenizer(truncation=True): keep the first max_length - 2 BPE ids, then EOS;
  // pad with EOS (pad_token = <|endoftext|>).
  const size_t keep = std::min(ids.size(), static_cast<size_t>(max_length) - 2);
  std::vector<int64_t> row;
  row.reserve(static_cast<size_t>(max_length));
  row.push_back(bos_id_);
  row.insert(row.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep));
  row.resize(static_cast<size_t>(max_length), eos_id_);
  return row;
}

torch::Tensor ClipTokenizer::tokenize_batch(const std::vector<std::string>& texts,
                                            int max_length) const {
  if (max_length < 2) {
    throw Error("tokenizer: max_length must be at least 2 (BOS and EOS), got " +
                std::to_string(max_length));
  }
  torch::Tensor out = torch::empty({static_cast<int64_t>(texts.size()), max_length}, torch::kInt64);
  auto acc = out.accessor<int64_t, 2>();
  for (size_t b = 0; b < texts.size(); ++b) {
    const std::vector<int64_t> row = tokenize(texts[b], max_length);
    for (int i = 0; i < max_length; ++i) acc[static_cast<int64_t>(b)][i] = row[i];
  }
  return out;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids) const {
  // CLIPTokenizer.decode(ids, skip_special_tokens=True): join the tokens, map the byte symbols
  // back to bytes, decode UTF-8 with errors="replace", '</w>' -> ' ', strip, then
  // clean_up_tokenization (tokenizer_config.json: clean_up_tokenization_spaces = true).
  std::string bytes;
  for (int64_t id : ids) {
    if (id == bos_id_ || id == eos_id_) continue;
    if (id < 0 || static_cast<size_t>(id) >= token_of_.size() || !has_token_[id]) {
      throw Error("tokenizer: id " + std::to_string(id) + " is not in " + vocab_path_);
    }
    std::string token = token_of_[id];
    const bool word_end = ends_with(token, kEndOfWord);
    if (word_end) token.resize(token.size() - (sizeof(kEndOfWord) - 1));
    for (char32_t c : to_utf32(token)) {
      auto it = byte_decoder().find(c);
      if (it == byte_decoder().end()) {
        throw Error("tokenizer: token '" + token_of_[id] + "' of " + vocab_path_ +
                    " is not byte-encoded");
      }
      bytes.push_back(static_cast<char>(it->second));
    }
    if (word_end) bytes.push_back(' ');
  }
  std::string text;
  icu::UnicodeString::fromUTF8(bytes).toUTF8String(text);  // invalid UTF-8 -> U+FFFD

  const char* const kStrip = " \t\n\v\f\r";
  const size_t first = text.find_first_not_of(kStrip);
  text = first == std::string::npos ? std::string() : text.substr(first);
  text.erase(text.find_last_not_of(kStrip) + 1);

  for (const auto& [from, to] :
       std::initializer_list<std::pair<const char*, const char*>>{{" .", "."},
                                                                  {" ?", "?"},
                                                                  {" !", "!"},
                                                                  {" ,", ","},
                                                                  {" ' ", "'"},
                                                                  {" n't", "n't"},
                                                                  {" 'm", "'m"},
                                                                  {" 's", "'s"},
                                                                  {" 've", "'ve"},
                                                                  {" 're", "'re"}}) {
    replace_all(text, from, to);
  }
  return text;
}

}  // namespace p2l::model
