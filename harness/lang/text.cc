// text.cc — parser and printer of the text trace form (docs/language.md).
//
// Theory of operation
// -------------------
// Parsing is two steps per line. `tokenize` cuts the line into bare words and quoted
// strings (decoding escapes) and drops the `#` comment. `LineParser` then reads the
// op keyword, one argument per slot of the op's row in the op table (op_table.h), the
// `key=value` options those slots own (`cpu=`, map's `prot= max= inherit=`), and the
// assertions `== DATA` and `=> RESULT` the row's `returns` allows; the first problem
// becomes the line's one error reason. Printing and `canonical_op` walk the same slots,
// so the parser and the printer agree by construction, and tests/harness_lang checks the
// round trip for every row.
#include "harness/lang/text.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>

#include "harness/lang/op_table.h"

namespace vmfuzz {

std::string ParseError::what() const { return file + ":" + std::to_string(line) + ": " + reason; }

namespace {

// ---------------------------------------------------------------------------------------
// Tokens.

struct Token {
  std::string text;
  bool quoted = false;  // a "..." string (text holds the decoded bytes)
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Decode the string starting at line[*i] == '"'; *i ends just past the closing quote.
bool read_string(std::string_view line, size_t* i, std::string* out, std::string* reason) {
  size_t p = *i + 1;
  out->clear();
  while (p < line.size()) {
    char c = line[p];
    if (c == '"') {
      *i = p + 1;
      return true;
    }
    if (c != '\\') {
      out->push_back(c);
      p++;
      continue;
    }
    if (p + 1 >= line.size()) break;
    char e = line[p + 1];
    switch (e) {
      case 'n': out->push_back('\n'); p += 2; continue;
      case 't': out->push_back('\t'); p += 2; continue;
      case 'r': out->push_back('\r'); p += 2; continue;
      case '0': out->push_back('\0'); p += 2; continue;
      case '\\': out->push_back('\\'); p += 2; continue;
      case '"': out->push_back('"'); p += 2; continue;
      case 'x': {
        int hi = p + 2 < line.size() ? hex_value(line[p + 2]) : -1;
        int lo = p + 3 < line.size() ? hex_value(line[p + 3]) : -1;
        if (hi < 0 || lo < 0) {
          *reason = "bad escape in string: \\x needs two hex digits";
          return false;
        }
        out->push_back(static_cast<char>(hi * 16 + lo));
        p += 4;
        continue;
      }
      default:
        *reason = std::string("unknown escape '\\") + e + "' in string";
        return false;
    }
  }
  *reason = "unterminated string";
  return false;
}

/// Cut one line into tokens; `#` outside a string ends the line.
bool tokenize(std::string_view line, std::vector<Token>* out, std::string* reason) {
  out->clear();
  size_t i = 0;
  while (true) {
    while (i < line.size() && is_space(line[i])) i++;
    if (i >= line.size() || line[i] == '#') return true;
    Token t;
    if (line[i] == '"') {
      t.quoted = true;
      if (!read_string(line, &i, &t.text, reason)) return false;
      if (i < line.size() && !is_space(line[i]) && line[i] != '#') {
        size_t j = i;
        while (j < line.size() && !is_space(line[j]) && line[j] != '#') j++;
        *reason = "trailing garbage '" + std::string(line.substr(i, j - i)) + "' after string";
        return false;
      }
    } else {
      size_t j = i;
      while (j < line.size() && !is_space(line[j]) && line[j] != '#') j++;
      t.text = std::string(line.substr(i, j - i));
      if (t.text.find('"') != std::string::npos) {
        *reason = "unexpected '\"' in '" + t.text + "'";
        return false;
      }
      i = j;
    }
    out->push_back(std::move(t));
  }
}

// ---------------------------------------------------------------------------------------
// Values.

/// Decimal or 0x-hex, unsigned 64-bit.
bool parse_number(const std::string& s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    for (size_t i = 2; i < s.size(); i++) {
      int d = hex_value(s[i]);
      if (d < 0 || v > (UINT64_MAX >> 4)) return false;
      v = (v << 4) | static_cast<uint64_t>(d);
    }
  } else {
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      uint64_t d = static_cast<uint64_t>(c - '0');
      if (v > (UINT64_MAX - d) / 10) return false;
      v = v * 10 + d;
    }
  }
  *out = v;
  return true;
}

bool looks_numeric(const std::string& s) { return !s.empty() && s[0] >= '0' && s[0] <= '9'; }

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

bool parse_prot(const std::string& s, vm_prot_t* out) {
  if (s.size() != 3) return false;
  vm_prot_t p = 0;
  static const char kLetters[3] = {'r', 'w', 'x'};
  static const vm_prot_t kBits[3] = {VM_PROT_READ, VM_PROT_WRITE, VM_PROT_EXECUTE};
  for (int i = 0; i < 3; i++) {
    if (s[i] == kLetters[i])
      p |= kBits[i];
    else if (s[i] != '-')
      return false;
  }
  *out = p;
  return true;
}

bool parse_inherit(const std::string& s, vm_inherit_t* out) {
  if (s == "share") *out = vm_inherit_t::Share;
  else if (s == "copy") *out = vm_inherit_t::Copy;
  else if (s == "none") *out = vm_inherit_t::None;
  else return false;
  return true;
}

const char* inherit_name(vm_inherit_t i) {
  switch (i) {
    case vm_inherit_t::Share: return "share";
    case vm_inherit_t::Copy: return "copy";
    case vm_inherit_t::None: return "none";
  }
  return "copy";
}

const char* strategy_name(CopyStrategy s) {
  switch (s) {
    case CopyStrategy::None: return "none";
    case CopyStrategy::Call: return "call";
    case CopyStrategy::Delay: return "delay";
  }
  return "delay";
}

const char* lock_how_name(uint8_t how) {
  if (how == (kLockReturn | kLockFlush)) return "both";
  return how == kLockFlush ? "flush" : "return";
}

const char* reply_how_name(ReplyHow h) {
  switch (h) {
    case ReplyHow::Supply: return "supply";
    case ReplyHow::Unavailable: return "unavailable";
    case ReplyHow::Error: return "error";
  }
  return "supply";
}

// ---------------------------------------------------------------------------------------
// One line.

class LineParser {
 public:
  explicit LineParser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  /// Parse an op line (the first token is the op keyword).
  bool op(Op* out);
  /// Parse a config line into *cfg (the first token is "config").
  bool config(SystemConfig* cfg);

  const std::string& reason() const { return reason_; }

 private:
  bool at_end() const { return pos_ >= toks_.size(); }
  const Token& peek() const { return toks_[pos_]; }
  bool fail(std::string r) {
    reason_ = std::move(r);
    return false;
  }
  /// The next token, or a "missing WHAT" failure.
  bool take(const char* what, const Token** t) {
    if (at_end()) return fail(std::string(op_name_) + ": missing " + what);
    *t = &toks_[pos_++];
    return true;
  }
  bool number(const char* what, uint64_t* v);
  bool name(char prefix, const char* kind, uint8_t* v);
  bool address_or_any(uint64_t* addr, bool* anywhere);
  bool data(const char* what, DataSpec* d);
  bool options(Op* op);
  bool assertions(Op* op);
  bool optional_data_follows() const;
  bool slot(Slot s, Op& op);
  bool result(Op* op);

  std::vector<Token> toks_;
  size_t pos_ = 0;
  const char* op_name_ = "";
  std::string reason_;
};

bool LineParser::number(const char* what, uint64_t* v) {
  const Token* t;
  if (!take(what, &t)) return false;
  if (t->quoted || !parse_number(t->text, v)) {
    if (!t->quoted && looks_numeric(t->text))
      return fail(std::string(op_name_) + ": bad number '" + t->text + "' for " + what +
                  " (decimal or 0x-hex, at most 2^64-1)");
    return fail(std::string(op_name_) + ": expected " + what + " (a number), got '" + t->text +
                "'");
  }
  return true;
}

bool LineParser::name(char prefix, const char* kind, uint8_t* v) {
  const Token* t;
  std::string what = std::string(kind) + " name";
  if (!take(what.c_str(), &t)) return false;
  const std::string& s = t->text;
  uint64_t n = 0;
  bool digits = s.size() >= 2 && s.size() <= 22 && !t->quoted && s[0] == prefix;
  for (size_t i = 1; digits && i < s.size(); i++) digits = s[i] >= '0' && s[i] <= '9';
  if (!digits || !parse_number(s.substr(1), &n))
    return fail(std::string(op_name_) + ": expected a " + kind + " name " + prefix + "0.." +
                prefix + "15, got '" + s + "'");
  if (n >= kMaxNames) return fail(s + ": " + kind + " name out of range (" + prefix + "0.." +
                                  prefix + "15)");
  *v = static_cast<uint8_t>(n);
  return true;
}

bool LineParser::address_or_any(uint64_t* addr, bool* anywhere) {
  if (!at_end() && !peek().quoted && peek().text == "any") {
    pos_++;
    *anywhere = true;
    *addr = 0;
    return true;
  }
  *anywhere = false;
  return number("address", addr);
}

bool LineParser::data(const char* what, DataSpec* d) {
  const Token* t;
  if (!take(what, &t)) return false;
  *d = DataSpec{};
  const std::string& s = t->text;
  if (t->quoted) {
    d->form = DataSpec::Form::Text;
    d->bytes.assign(s.begin(), s.end());
  } else if (s.rfind("hex:", 0) == 0) {
    d->form = DataSpec::Form::Hex;
    std::string digits = s.substr(4);
    if (digits.size() % 2 != 0) return fail(std::string(op_name_) + ": odd number of hex digits in '" + s + "'");
    for (size_t i = 0; i < digits.size(); i += 2) {
      int hi = hex_value(digits[i]), lo = hex_value(digits[i + 1]);
      if (hi < 0 || lo < 0) return fail(std::string(op_name_) + ": bad hex digit in '" + s + "'");
      d->bytes.push_back(static_cast<uint8_t>(hi * 16 + lo));
    }
  } else if (s.rfind("fill:", 0) == 0 || s.rfind("pat:", 0) == 0) {
    bool fill = s[0] == 'f';
    std::string body = s.substr(fill ? 5 : 4);
    size_t star = body.find('*');
    uint64_t value = 0, len = 0;
    if (star == std::string::npos || !parse_number(body.substr(0, star), &value) ||
        !parse_number(body.substr(star + 1), &len))
      return fail(std::string(op_name_) + ": bad data '" + s + "' (" +
                  (fill ? "fill:BYTE*LEN" : "pat:SEED*LEN") + ")");
    if (value > 0xff)
      return fail(std::string(op_name_) + ": " + (fill ? "fill byte" : "pat seed") + " '" +
                  body.substr(0, star) + "' larger than 0xff");
    d->form = fill ? DataSpec::Form::Fill : DataSpec::Form::Pat;
    d->value = static_cast<uint8_t>(value);
    d->length = len;
  } else {
    return fail(std::string(op_name_) + ": bad " + what + " '" + s +
                "' (\"text\", hex:.., fill:BYTE*LEN or pat:SEED*LEN)");
  }
  if (d->size() > kMaxTraceTransfer)
    return fail(std::string(op_name_) + ": data longer than the trace limit of 64 MiB");
  return true;
}

bool LineParser::options(Op* op) {
  const OpSpec& spec = op_spec(op->kind);
  bool cpu_ok = spec.has(Slot::TaskCpu), map_ok = spec.has(Slot::MapMode);
  bool seen_cpu = false, seen_prot = false, seen_max = false, seen_inherit = false;
  while (!at_end() && !peek().quoted && peek().text != "==" && peek().text != "=>") {
    const std::string& s = peek().text;
    size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0) return true;  // not an option: trailing garbage
    std::string key = s.substr(0, eq), value = s.substr(eq + 1);
    bool* seen = nullptr;
    if (key == "cpu" && cpu_ok) {
      seen = &seen_cpu;
      uint64_t n = 0;
      if (!parse_number(value, &n) || n > 255)
        return fail(std::string(op_name_) + ": bad cpu number '" + value + "'");
      op->cpu = static_cast<uint8_t>(n);
    } else if (map_ok && (key == "prot" || key == "max")) {
      seen = key == "prot" ? &seen_prot : &seen_max;
      vm_prot_t p;
      if (!parse_prot(value, &p))
        return fail(std::string(op_name_) + ": bad protection '" + value +
                    "' (three chars r w x or '-', e.g. rw-)");
      (key == "prot" ? op->prot : op->max_prot) = p;
    } else if (map_ok && key == "inherit") {
      seen = &seen_inherit;
      if (!parse_inherit(value, &op->inherit))
        return fail(std::string(op_name_) + ": bad inheritance '" + value + "' (share, copy or none)");
    } else {
      return fail(std::string(op_name_) + ": unknown option '" + s + "'");
    }
    if (*seen) return fail(std::string(op_name_) + ": option '" + key + "=' given twice");
    *seen = true;
    pos_++;
  }
  return true;
}

bool LineParser::result(Op* op) {
  const Token* t;
  if (!take("result after '=>'", &t)) return false;
  Expect& e = op->expect;
  if (!t->quoted && t->text == "fault") {
    if (!op_asserts_fault(op->kind))
      return fail(std::string(op_name_) + ": '=> fault' only follows read or write");
    if (!number("fault address", &e.addr)) return false;
    const Token* c;
    if (!take("fault code", &c)) return false;
    if (!kern_return_from_name(c->text, &e.code))
      return fail(std::string(op_name_) + ": unknown result code '" + c->text + "'");
    e.result = Expect::Result::Fault;
    return true;
  }
  if (!t->quoted && looks_numeric(t->text)) {
    if (!op_returns_address(*op))
      return fail(std::string(op_name_) +
                  ": '=> ADDRESS' only follows allocate any, map any or copyout");
    if (!parse_number(t->text, &e.addr))
      return fail(std::string(op_name_) + ": bad result address '" + t->text + "'");
    e.result = Expect::Result::Address;
    return true;
  }
  if (!kern_return_from_name(t->text, &e.code))
    return fail(std::string(op_name_) + ": unknown result code '" + t->text + "'");
  e.result = Expect::Result::Code;
  return true;
}

bool LineParser::assertions(Op* op) {
  if (!at_end() && !peek().quoted && peek().text == "==") {
    if (!op_asserts_bytes(op->kind))
      return fail(std::string(op_name_) + ": '== DATA' only follows read or file");
    pos_++;
    if (!data("data after '=='", &op->expect.bytes)) return false;
    op->expect.has_bytes = true;
  }
  if (!at_end() && !peek().quoted && peek().text == "=>") {
    pos_++;
    if (!result(op)) return false;
  }
  if (!at_end()) {
    const Token& t = peek();
    return fail("trailing garbage '" + (t.quoted ? "\"" + t.text + "\"" : t.text) + "'");
  }
  return true;
}

/// Is the next token an optional DATA (not an assertion)?
bool LineParser::optional_data_follows() const {
  return !at_end() && (peek().quoted || (peek().text != "==" && peek().text != "=>"));
}

bool LineParser::slot(Slot s, Op& op) {
  const Token* t;
  switch (s) {
    case Slot::Task:
    case Slot::NewTask:
    case Slot::EndTask:
    case Slot::TaskCpu:
      return name('t', "task", &op.task);
    case Slot::ChildTask:
      return name('t', "task", &op.task2);
    case Slot::Copy:
    case Slot::NewCopy:
      return name('c', "copy handle", &op.copy);
    case Slot::Object:
    case Slot::NewObject:
      return name('m', "memory object", &op.object);
    case Slot::AddrOrAny:
      return address_or_any(&op.addr, &op.anywhere);
    case Slot::Addr:
      return number("address", &op.addr);
    case Slot::SrcAddr:
      return number("source address", &op.addr);
    case Slot::DstAddr:
      return number("destination address", &op.addr2);
    case Slot::Size:
    case Slot::ObjSize:
    case Slot::DevSize:
      return number("size", &op.size);
    case Slot::Xfer:
      if (!number("size", &op.size)) return false;
      if (op.size > kMaxTraceTransfer)
        return fail(std::string(op_name_) + ": size larger than the trace limit of 64 MiB");
      return true;
    case Slot::Offset:
      return number("offset", &op.offset);
    case Slot::ProtMax:
      if (!at_end() && !peek().quoted && peek().text == "max") {
        op.set_max = true;
        pos_++;
      }
      if (!take("protection", &t)) return false;
      if (t->quoted || !parse_prot(t->text, &op.prot))
        return fail(std::string(op_name_) + ": bad protection '" + t->text +
                    "' (three chars r w x or '-', e.g. rw-)");
      return true;
    case Slot::Inheritance:
      if (!take("inheritance", &t)) return false;
      if (t->quoted || !parse_inherit(t->text, &op.inherit))
        return fail(std::string(op_name_) + ": bad inheritance '" + t->text + "' (share, copy or none)");
      return true;
    case Slot::Data:
      return data("data", &op.data);
    case Slot::ObjFlags:
      if (!take("copy strategy", &t)) return false;
      if (t->text == "none" && !t->quoted) op.strategy = CopyStrategy::None;
      else if (t->text == "call" && !t->quoted) op.strategy = CopyStrategy::Call;
      else if (t->text == "delay" && !t->quoted) op.strategy = CopyStrategy::Delay;
      else return fail(std::string(op_name_) + ": bad copy strategy '" + t->text + "' (none, call or delay)");
      if (!take("persistence", &t)) return false;
      if (t->text == "persist" && !t->quoted) op.persist = true;
      else if (t->text == "nopersist" && !t->quoted) op.persist = false;
      else return fail(std::string(op_name_) + ": bad persistence '" + t->text + "' (persist or nopersist)");
      [[fallthrough]];
    case Slot::DevData:
      if (optional_data_follows()) return data("initial contents", &op.data);
      return true;
    case Slot::MapMode:
      if (!take("share or copy", &t)) return false;
      if (t->text == "share" && !t->quoted) op.share = true;
      else if (t->text == "copy" && !t->quoted) op.share = false;
      else return fail(std::string(op_name_) + ": expected share or copy, got '" + t->text + "'");
      return true;
    case Slot::PageCount:
      if (!at_end() && !peek().quoted && peek().text == "all") {
        pos_++;
        op.all = true;
        return true;
      }
      return number("page count (or all)", &op.size);
    case Slot::Choice: {
      // `N`: that thread or request, which must exist when the op runs; `~N`: the N-th
      // (modulo) of what exists then (docs/concurrency.md §Schedule).
      if (!take("choice", &t)) return false;
      std::string v = t->text;
      op.choice_exact = true;
      if (!t->quoted && !v.empty() && v[0] == '~') {
        op.choice_exact = false;
        v.erase(0, 1);
      }
      uint64_t n = 0;
      if (t->quoted || !parse_number(v, &n) || n > 0xffff)
        return fail(std::string(op_name_) + ": bad choice '" + t->text + "' (N or ~N, N at most 65535)");
      op.choice = static_cast<uint16_t>(n);
      return true;
    }
    case Slot::ReplyHow:
      if (!take("reply", &t)) return false;
      if (t->text == "supply" && !t->quoted) op.how = ReplyHow::Supply;
      else if (t->text == "unavailable" && !t->quoted) op.how = ReplyHow::Unavailable;
      else if (t->text == "error" && !t->quoted) op.how = ReplyHow::Error;
      else return fail(std::string(op_name_) + ": bad reply '" + t->text + "' (supply, unavailable or error)");
      return true;
    case Slot::LockHow:
      if (!take("lock request", &t)) return false;
      if (t->text == "return" && !t->quoted) op.lock = kLockReturn;
      else if (t->text == "flush" && !t->quoted) op.lock = kLockFlush;
      else if (t->text == "both" && !t->quoted) op.lock = kLockReturn | kLockFlush;
      else return fail(std::string(op_name_) + ": bad lock request '" + t->text + "' (return, flush or both)");
      return true;
  }
  return fail("unknown argument slot");
}

bool LineParser::op(Op* out) {
  *out = Op{};
  Op& op = *out;
  const Token& kw = toks_[pos_++];
  if (kw.quoted || !op_kind_from_name(kw.text, &op.kind) || kw.text == "config")
    return fail("unknown op '" + kw.text + "'");
  op_name_ = op_kind_name(op.kind);
  for (Slot s : op_spec(op.kind).slots())
    if (!slot(s, op)) return false;
  return options(&op) && assertions(&op);
}

bool LineParser::config(SystemConfig* cfg) {
  op_name_ = "config";
  pos_ = 1;
  struct Key {
    const char* name;
    unsigned* field;
    uint64_t lo, hi;
    bool seen;
  } keys[] = {{"frames", &cfg->frames, 16, 1u << 20, false},
              {"cpus", &cfg->cpus, 1, 16, false},
              {"tlb", &cfg->tlb, 1, 4096, false},
              {"cache", &cfg->cache, 0, 4096, false}};
  for (; !at_end(); pos_++) {
    const std::string& s = peek().text;
    size_t eq = s.find('=');
    Key* k = nullptr;
    for (auto& key : keys)
      if (eq != std::string::npos && s.compare(0, eq, key.name) == 0 && eq == std::strlen(key.name)) k = &key;
    if (peek().quoted || k == nullptr)
      return fail("config: unknown key '" + s + "' (frames=, cpus=, tlb=, cache=)");
    if (k->seen) return fail(std::string("config: key '") + k->name + "=' given twice");
    k->seen = true;
    uint64_t v = 0;
    if (!parse_number(s.substr(eq + 1), &v) || v < k->lo || v > k->hi)
      return fail(std::string("config: ") + k->name + " must be a number in " +
                  std::to_string(k->lo) + ".." + std::to_string(k->hi) + ", got '" +
                  s.substr(eq + 1) + "'");
    *k->field = static_cast<unsigned>(v);
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Printing helpers.

std::string expect_suffix(const Op& op) {
  std::string s;
  const Expect& e = op.expect;
  if (e.has_bytes) s += " == " + format_data(e.bytes);
  switch (e.result) {
    case Expect::Result::None: break;
    case Expect::Result::Code: s += " => " + kern_return_name(e.code); break;
    case Expect::Result::Fault: s += " => fault " + hex(e.addr) + " " + kern_return_name(e.code); break;
    case Expect::Result::Address: s += " => " + hex(e.addr); break;
  }
  return s;
}

std::string tname(uint8_t t) { return "t" + std::to_string(t); }
std::string cname(uint8_t c) { return "c" + std::to_string(c); }
std::string mname(uint8_t m) { return "m" + std::to_string(m); }

}  // namespace

// ---------------------------------------------------------------------------------------
// Public routines.

bool parse_op_line(std::string_view line, Op* out, std::string* reason) {
  std::vector<Token> toks;
  if (!tokenize(line, &toks, reason)) return false;
  if (toks.empty()) {
    *reason = "empty line";
    return false;
  }
  LineParser lp(std::move(toks));
  if (lp.op(out)) return true;
  *reason = lp.reason();
  return false;
}

bool parse_trace(std::string_view text, const std::string& file, Program* out, ParseError* err) {
  *out = Program{};
  out->source = file;
  unsigned lineno = 0;
  size_t start = 0;
  std::vector<Token> toks;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string_view::npos ? text.size() : nl;
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    lineno++;
    auto failure = [&](std::string reason) {
      err->file = file;
      err->line = lineno;
      err->reason = std::move(reason);
      return false;
    };
    std::string reason;
    if (!tokenize(line, &toks, &reason)) return failure(reason);
    if (toks.empty()) continue;
    if (!toks[0].quoted && toks[0].text == "config") {
      if (!out->ops.empty()) return failure("config must come before the first op");
      if (out->has_config) return failure("config given twice");
      LineParser lp(std::move(toks));
      if (!lp.config(&out->config)) return failure(lp.reason());
      out->has_config = true;
      continue;
    }
    LineParser lp(std::move(toks));
    Op op;
    if (!lp.op(&op)) return failure(lp.reason());
    out->ops.push_back(std::move(op));
    out->lines.push_back(lineno);
  }
  return true;
}

std::string format_prot(vm_prot_t prot) {
  std::string s = "---";
  if (prot & VM_PROT_READ) s[0] = 'r';
  if (prot & VM_PROT_WRITE) s[1] = 'w';
  if (prot & VM_PROT_EXECUTE) s[2] = 'x';
  return s;
}

std::string format_data(const DataSpec& d) {
  switch (d.form) {
    case DataSpec::Form::Text: {
      std::string s = "\"";
      for (uint8_t b : d.bytes) {
        switch (b) {
          case '\n': s += "\\n"; break;
          case '\t': s += "\\t"; break;
          case '\r': s += "\\r"; break;
          case '\0': s += "\\0"; break;
          case '\\': s += "\\\\"; break;
          case '"': s += "\\\""; break;
          default:
            if (b >= 0x20 && b < 0x7f) {
              s.push_back(static_cast<char>(b));
            } else {
              char buf[8];
              std::snprintf(buf, sizeof buf, "\\x%02x", b);
              s += buf;
            }
        }
      }
      return s + "\"";
    }
    case DataSpec::Form::Hex: {
      std::string s = "hex:";
      static const char kDigits[] = "0123456789abcdef";
      for (uint8_t b : d.bytes) {
        s.push_back(kDigits[b >> 4]);
        s.push_back(kDigits[b & 15]);
      }
      return s;
    }
    case DataSpec::Form::Fill: return "fill:" + hex(d.value) + "*" + hex(d.length);
    case DataSpec::Form::Pat: return "pat:" + hex(d.value) + "*" + hex(d.length);
  }
  return "hex:";
}

std::string format_config(const SystemConfig& cfg) {
  const SystemConfig def;
  std::string s = "config";
  if (cfg.frames != def.frames) s += " frames=" + std::to_string(cfg.frames);
  if (cfg.cpus != def.cpus) s += " cpus=" + std::to_string(cfg.cpus);
  if (cfg.tlb != def.tlb) s += " tlb=" + std::to_string(cfg.tlb);
  if (cfg.cache != def.cache) s += " cache=" + std::to_string(cfg.cache);
  return s;
}

Op canonical_op(const Op& op) {
  Op c;
  c.kind = op.kind;
  for (Slot s : op_spec(op.kind).slots()) {
    switch (s) {
      case Slot::Task:
      case Slot::NewTask:
      case Slot::EndTask: c.task = op.task; break;
      case Slot::TaskCpu: c.task = op.task, c.cpu = op.cpu; break;
      case Slot::ChildTask: c.task2 = op.task2; break;
      case Slot::Copy:
      case Slot::NewCopy: c.copy = op.copy; break;
      case Slot::Object:
      case Slot::NewObject: c.object = op.object; break;
      case Slot::AddrOrAny: c.anywhere = op.anywhere, c.addr = op.anywhere ? 0 : op.addr; break;
      case Slot::Addr:
      case Slot::SrcAddr: c.addr = op.addr; break;
      case Slot::DstAddr: c.addr2 = op.addr2; break;
      case Slot::Size:
      case Slot::Xfer:
      case Slot::ObjSize:
      case Slot::DevSize: c.size = op.size; break;
      case Slot::Offset: c.offset = op.offset; break;
      case Slot::ProtMax: c.set_max = op.set_max, c.prot = op.prot & VM_PROT_ALL; break;
      case Slot::Inheritance: c.inherit = op.inherit; break;
      case Slot::Data:
      case Slot::DevData: c.data = op.data; break;
      case Slot::ObjFlags: c.strategy = op.strategy, c.persist = op.persist, c.data = op.data; break;
      case Slot::MapMode:
        c.share = op.share, c.prot = op.prot & VM_PROT_ALL, c.max_prot = op.max_prot & VM_PROT_ALL,
        c.inherit = op.inherit;
        break;
      case Slot::PageCount: c.all = op.all, c.size = op.all ? 0 : op.size; break;
      case Slot::Choice: c.choice = op.choice, c.choice_exact = op.choice_exact; break;
      case Slot::ReplyHow: c.how = op.how; break;
      case Slot::LockHow: c.lock = (op.lock & (kLockReturn | kLockFlush)) ? op.lock & (kLockReturn | kLockFlush) : kLockReturn; break;
    }
  }
  // Assertions, restricted to what the kind can assert.
  const Expect& e = op.expect;
  if (e.has_bytes && op_asserts_bytes(op.kind)) {
    c.expect.has_bytes = true;
    c.expect.bytes = e.bytes;
  }
  switch (e.result) {
    case Expect::Result::None: break;
    case Expect::Result::Code:
      c.expect.result = e.result, c.expect.code = e.code;
      break;
    case Expect::Result::Fault:
      if (op_asserts_fault(op.kind)) c.expect.result = e.result, c.expect.code = e.code, c.expect.addr = e.addr;
      break;
    case Expect::Result::Address:
      if (op_returns_address(op)) c.expect.result = e.result, c.expect.addr = e.addr;
      break;
  }
  return c;
}

std::string print_op(const Op& op) {
  std::string s = op_kind_name(op.kind);
  std::string opts;  // key=value options, printed after the positional arguments
  auto arg = [&s](const std::string& a) { s += " " + a; };
  for (Slot sl : op_spec(op.kind).slots()) {
    switch (sl) {
      case Slot::Task:
      case Slot::NewTask:
      case Slot::EndTask: arg(tname(op.task)); break;
      case Slot::TaskCpu:
        arg(tname(op.task));
        if (op.cpu != 0) opts += " cpu=" + std::to_string(op.cpu);
        break;
      case Slot::ChildTask: arg(tname(op.task2)); break;
      case Slot::Copy:
      case Slot::NewCopy: arg(cname(op.copy)); break;
      case Slot::Object:
      case Slot::NewObject: arg(mname(op.object)); break;
      case Slot::AddrOrAny: arg(op.anywhere ? "any" : hex(op.addr)); break;
      case Slot::Addr:
      case Slot::SrcAddr: arg(hex(op.addr)); break;
      case Slot::DstAddr: arg(hex(op.addr2)); break;
      case Slot::Size:
      case Slot::Xfer:
      case Slot::ObjSize:
      case Slot::DevSize: arg(hex(op.size)); break;
      case Slot::Offset: arg(hex(op.offset)); break;
      case Slot::ProtMax:
        if (op.set_max) arg("max");
        arg(format_prot(op.prot));
        break;
      case Slot::Inheritance: arg(inherit_name(op.inherit)); break;
      case Slot::Data: arg(format_data(op.data)); break;
      case Slot::ObjFlags:
        arg(strategy_name(op.strategy)), arg(op.persist ? "persist" : "nopersist");
        [[fallthrough]];
      case Slot::DevData:
        if (!(op.data == DataSpec{})) arg(format_data(op.data));
        break;
      case Slot::MapMode:
        arg(op.share ? "share" : "copy");
        if (op.prot != VM_PROT_DEFAULT) opts += " prot=" + format_prot(op.prot);
        if (op.max_prot != VM_PROT_ALL) opts += " max=" + format_prot(op.max_prot);
        if (op.inherit != vm_inherit_t::Copy) opts += std::string(" inherit=") + inherit_name(op.inherit);
        break;
      case Slot::PageCount: arg(op.all ? "all" : std::to_string(op.size)); break;
      case Slot::Choice: arg((op.choice_exact ? "" : "~") + std::to_string(op.choice)); break;
      case Slot::ReplyHow: arg(reply_how_name(op.how)); break;
      case Slot::LockHow: arg(lock_how_name(op.lock)); break;
    }
  }
  return s + opts + expect_suffix(op);
}

std::string print_program(const Program& p) {
  std::string s;
  if (p.has_config) s += format_config(p.config) + "\n";
  for (const Op& op : p.ops) s += print_op(op) + "\n";
  return s;
}

}  // namespace vmfuzz
