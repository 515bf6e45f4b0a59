// Chat templates without a Jinja engine: the three prompt formats PMPD is used with are recognised
// from the model's template text (GGUF tokenizer.chat_template, tokenizer_config.json
// chat_template) or named on the command line, and rendered by code:
//  - chatml   "<|im_start|>{role}\n{content}<|im_end|>\n" per message, "<|im_start|>assistant\n" to
//             answer (SmolLM2, Qwen); a default system message when the template has one and the
//             conversation starts without (SmolLM2: "You are a helpful AI assistant named SmolLM,
//             ...")
//  - llama2   "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]" (Llama-2-chat), each exchange
//             its own BOS ... EOS
//  - vicuna   "{system} USER: {user} ASSISTANT:" (Vicuna v1.1, the PMPD reference's model)
// An unrecognised template is an error naming the supported ones.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/tokenizer.h"

namespace pmpd::models {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class ChatFormat { kChatML, kLlama2, kVicuna };

class ChatTemplate {
 public:
  // "chatml", "llama2", "vicuna".
  static absl::StatusOr<ChatTemplate> FromName(absl::string_view name);
  // Recognises a Jinja template text (markers such as "<|im_start|>", "[INST]", "USER:"), taking
  // its default system message where it has one. Errors name `source` and list the supported ones.
  static absl::StatusOr<ChatTemplate> Recognize(absl::string_view jinja_text,
                                                absl::string_view source);
  // A --chat-template choice for a model: "auto" recognises the tokenizer's own template (NotFound
  // "... has no chat template; pass --chat-template NAME" when it has none); a name gives that
  // format, with the model's default system message when its own template is of that format.
  static absl::StatusOr<ChatTemplate> ForModel(absl::string_view choice, const Tokenizer& tok);
  static const std::vector<std::string>& Names();

  ChatFormat format() const { return format_; }
  const char* name() const;
  const std::string& default_system() const { return default_system_; }

  // Token ids of a conversation, ready to prefill: the template applied to `messages` (roles must
  // be system?, then user/assistant alternating, starting with user), with the tokenizer's BOS
  // handling; add_generation_prompt opens the assistant's turn (llama2 ignores it, as its official
  // template does: a user turn already ends with "[/INST]"). Errors: bad role order, no user
  // message. chatml: one Encode of the rendered text (the tokenizer matches <|im_start|>); llama2
  // and vicuna: text segments between BOS/EOS ids, since sentencepiece does not parse "<s>" in
  // text. chatml on a vocabulary without <|im_start|> spells the markers as plain text.
  absl::StatusOr<std::vector<int>> Encode(const Tokenizer& tok,
                                          const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt) const;
  // The text form of the same (for display and tests; llama2's BOS/EOS shown as <s>, </s>).
  absl::StatusOr<std::string> Render(const std::vector<ChatMessage>& messages,
                                     bool add_generation_prompt) const;
  // The tokens that end the assistant's turn: chatml "<|im_end|>" (when in the vocabulary) and EOS;
  // llama2, vicuna EOS. Generation stops there (inference::GenerationOptions::stop_ids).
  std::vector<int> StopIds(const Tokenizer& tok) const;

 private:
  ChatFormat format_ = ChatFormat::kChatML;
  std::string default_system_;
};

}  // namespace pmpd::models
