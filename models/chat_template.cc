#include "models/chat_template.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pmpd::models {
namespace {

// FastChat's vicuna_v1.1 system message (fastchat/conversation.py), the PMPD reference's prompt.
constexpr char kVicunaSystem[] =
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions.";

// Python's str.strip() as the Llama-2 template calls it, over ASCII whitespace (\t \n \v \f \r,
// space, \x1c-\x1f); non-ASCII whitespace (U+00A0, ...) is kept.
std::string PyStrip(absl::string_view s) {
  auto space = [](char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

// The conversation split into its optional system message and user/assistant exchanges.
struct Conversation {
  const std::string* system = nullptr;  // null: none given
  struct Exchange {
    const std::string* user = nullptr;
    const std::string* assistant = nullptr;  // null: the answer is still to come
  };
  std::vector<Exchange> exchanges;
};

absl::StatusOr<Conversation> Split(const std::vector<ChatMessage>& messages) {
  Conversation c;
  size_t i = 0;
  if (!messages.empty() && messages[0].role == "system") c.system = &messages[i++].content;
  if (i == messages.size())
    return absl::InvalidArgumentError("chat: the conversation has no user message");
  for (bool user = true; i < messages.size(); ++i, user = !user) {
    const char* want = user ? "user" : "assistant";
    if (messages[i].role != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chat message ", i, ": expected role \"", want, "\", got \"", messages[i].role,
          "\" (roles: an optional system message first, then user and "
          "assistant alternating, starting with user)"));
    }
    if (user) {
      c.exchanges.push_back({&messages[i].content, nullptr});
    } else {
      c.exchanges.back().assistant = &messages[i].content;
    }
  }
  return c;
}

// Llama-2's text of exchange `k` without BOS/EOS: "[INST] {content} [/INST]", plus " {answer} "
// when answered. The system block joins the first user message before the strip, as in the
// template.
std::string Llama2Exchange(const Conversation& c, size_t k) {
  const auto& e = c.exchanges[k];
  std::string content = *e.user;
  if (k == 0 && c.system != nullptr)
    content = absl::StrCat("<<SYS>>\n", *c.system, "\n<</SYS>>\n\n", content);
  std::string s = absl::StrCat("[INST] ", PyStrip(content), " [/INST]");
  if (e.assistant != nullptr) absl::StrAppend(&s, " ", PyStrip(*e.assistant), " ");
  return s;
}

// Vicuna's text in pieces separated by EOS: piece j ends where answer j ends.
std::vector<std::string> VicunaPieces(const Conversation& c, const std::string& default_system,
                                      bool add_generation_prompt) {
  std::vector<std::string> pieces(1);
  absl::StrAppend(&pieces.back(), c.system != nullptr ? *c.system : default_system, " ");
  for (const auto& e : c.exchanges) {
    absl::StrAppend(&pieces.back(), "USER: ", *e.user, " ");
    if (e.assistant != nullptr) {
      absl::StrAppend(&pieces.back(), "ASSISTANT: ", *e.assistant);
      pieces.emplace_back();
    }
  }
  if (add_generation_prompt) absl::StrAppend(&pieces.back(), "ASSISTANT:");
  return pieces;
}

std::string ChatMLText(const Conversation& c, const std::string& default_system,
                       bool add_generation_prompt) {
  std::string s;
  auto turn = [&s](absl::string_view role, absl::string_view content) {
    absl::StrAppend(&s, "<|im_start|>", role, "\n", content, "<|im_end|>\n");
  };
  if (c.system != nullptr) {
    turn("system", *c.system);
  } else if (!default_system.empty()) {
    turn("system", default_system);
  }
  for (const auto& e : c.exchanges) {
    turn("user", *e.user);
    if (e.assistant != nullptr) turn("assistant", *e.assistant);
  }
  if (add_generation_prompt) s += "<|im_start|>assistant\n";
  return s;
}

// The default system message a ChatML template writes when the conversation has none: the text of
// a string literal "<|im_start|>system\n...<|im_end|>" (SmolLM2, Qwen2). Empty when the template
// only renders the caller's system message ("<|im_start|>system\n' + messages[0]['content']").
std::string ChatMLDefaultSystem(absl::string_view jinja) {
  constexpr absl::string_view kOpen = "<|im_start|>system", kEnd = "<|im_end|>";
  for (size_t at = jinja.find(kOpen); at != absl::string_view::npos;
       at = jinja.find(kOpen, at + 1)) {
    absl::string_view rest = jinja.substr(at + kOpen.size());
    // The role line ends with a real newline or the two characters \n of a Jinja literal.
    if (absl::StartsWith(rest, "\n")) {
      rest.remove_prefix(1);
    } else if (absl::StartsWith(rest, "\\n")) {
      rest.remove_prefix(2);
    } else {
      continue;
    }
    std::string text;
    bool literal = true;
    size_t i = 0;
    for (; i < rest.size() && !absl::StartsWith(rest.substr(i), kEnd); ++i) {
      const char ch = rest[i];
      if (ch == '\'' || ch == '"' || ch == '{' ||
          ch == '}') {  // the literal ends: an expression follows
        literal = false;
        break;
      }
      if (ch == '\\' && i + 1 < rest.size()) {
        const char e = rest[++i];
        text += e == 'n' ? '\n' : e == 't' ? '\t' : e;
        continue;
      }
      text += ch;
    }
    if (literal && i < rest.size()) return text;
  }
  return "";
}

}  // namespace

const std::vector<std::string>& ChatTemplate::Names() {
  static const auto* names = new std::vector<std::string>{"chatml", "llama2", "vicuna"};
  return *names;
}

const char* ChatTemplate::name() const {
  switch (format_) {
    case ChatFormat::kChatML:
      return "chatml";
    case ChatFormat::kLlama2:
      return "llama2";
    case ChatFormat::kVicuna:
      return "vicuna";
  }
  return "?";
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromName(absl::string_view name) {
  ChatTemplate t;
  if (name == "chatml") {
    t.format_ = ChatFormat::kChatML;
  } else if (name == "llama2") {
    t.format_ = ChatFormat::kLlama2;
  } else if (name == "vicuna") {
    t.format_ = ChatFormat::kVicuna;
    t.default_system_ = kVicunaSystem;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown chat template \"", name, "\"; supported: ", absl::StrJoin(Names(), ", ")));
  }
  return t;
}

absl::StatusOr<ChatTemplate> ChatTemplate::Recognize(absl::string_view jinja_text,
                                                     absl::string_view source) {
  if (absl::StrContains(jinja_text, "<|im_start|>")) {
    ChatTemplate t;
    t.format_ = ChatFormat::kChatML;
    t.default_system_ = ChatMLDefaultSystem(jinja_text);
    return t;
  }
  if (absl::StrContains(jinja_text, "[INST]")) return FromName("llama2");
  if (absl::StrContains(jinja_text, "USER:") && absl::StrContains(jinja_text, "ASSISTANT:"))
    return FromName("vicuna");
  return absl::InvalidArgumentError(absl::StrCat(
      source, ": chat template not recognised; supported: ", absl::StrJoin(Names(), ", "),
      " (use --chat-template NAME)"));
}

absl::StatusOr<ChatTemplate> ChatTemplate::ForModel(absl::string_view choice,
                                                    const Tokenizer& tok) {
  const std::string& jinja = tok.chat_template();
  if (choice == "auto") {
    if (jinja.empty()) {
      return absl::NotFoundError(
          absl::StrCat(tok.path(), ": the model has no chat template; pass --chat-template NAME (",
                       absl::StrJoin(Names(), ", "), ")"));
    }
    return Recognize(jinja, tok.path());
  }
  auto named = FromName(choice);
  if (!named.ok() || jinja.empty()) return named;
  // The model's own template of the same format carries its default system message.
  auto own = Recognize(jinja, tok.path());
  if (own.ok() && own->format() == named->format()) return own;
  return named;
}

absl::StatusOr<std::string> ChatTemplate::Render(const std::vector<ChatMessage>& messages,
                                                 bool add_generation_prompt) const {
  auto c = Split(messages);
  if (!c.ok()) return c.status();
  switch (format_) {
    case ChatFormat::kChatML:
      return ChatMLText(*c, default_system_, add_generation_prompt);
    case ChatFormat::kLlama2: {
      // The official template ignores add_generation_prompt: a user turn already ends with [/INST].
      std::string s;
      for (size_t k = 0; k < c->exchanges.size(); ++k) {
        absl::StrAppend(&s, "<s>", Llama2Exchange(*c, k),
                        c->exchanges[k].assistant != nullptr ? "</s>" : "");
      }
      return s;
    }
    case ChatFormat::kVicuna:
      return absl::StrJoin(VicunaPieces(*c, default_system_, add_generation_prompt), "</s>");
  }
  return absl::InternalError("unknown chat format");
}

absl::StatusOr<std::vector<int>> ChatTemplate::Encode(const Tokenizer& tok,
                                                      const std::vector<ChatMessage>& messages,
                                                      bool add_generation_prompt) const {
  auto c = Split(messages);
  if (!c.ok()) return c.status();
  std::vector<int> ids;
  auto append = [&ids](const std::vector<int>& more) {
    ids.insert(ids.end(), more.begin(), more.end());
  };
  switch (format_) {
    case ChatFormat::kChatML:
      // Byte-level BPE matches <|im_start|> and <|im_end|> as added tokens inside the text.
      return tok.Encode(ChatMLText(*c, default_system_, add_generation_prompt), /*add_bos=*/true);
    case ChatFormat::kLlama2:
      // sentencepiece does not parse "<s>" in text: BOS and EOS go in as ids, exchange by exchange
      // (the same ids as Hugging Face's tokenizer on the rendered text, and as Meta's
      // chat_completion).
      for (size_t k = 0; k < c->exchanges.size(); ++k) {
        if (tok.bos_id() >= 0) ids.push_back(tok.bos_id());
        append(tok.Encode(Llama2Exchange(*c, k), /*add_bos=*/false));
        if (c->exchanges[k].assistant != nullptr) ids.push_back(tok.eos_id());
      }
      return ids;
    case ChatFormat::kVicuna: {
      const std::vector<std::string> pieces =
          VicunaPieces(*c, default_system_, add_generation_prompt);
      for (size_t j = 0; j < pieces.size(); ++j) {
        if (j > 0) ids.push_back(tok.eos_id());
        if (!pieces[j].empty()) append(tok.Encode(pieces[j], /*add_bos=*/j == 0));
      }
      return ids;
    }
  }
  return absl::InternalError("unknown chat format");
}

std::vector<int> ChatTemplate::StopIds(const Tokenizer& tok) const {
  std::vector<int> ids;
  if (format_ == ChatFormat::kChatML) {
    if (const int end = tok.TokenId("<|im_end|>"); end >= 0) ids.push_back(end);
  }
  if (tok.eos_id() >= 0 && std::find(ids.begin(), ids.end(), tok.eos_id()) == ids.end())
    ids.push_back(tok.eos_id());
  return ids;
}

}  // namespace pmpd::models
