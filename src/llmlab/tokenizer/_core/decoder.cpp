// Decoders; see decoder.h. Reference: src/llmlab/tokenizer/decoders.py.
#include "decoder.h"

#include <unordered_map>

namespace llmlab {

namespace {

void replace_all(Str& s, View from, View to) {
    if (from.empty()) return;
    Str out;
    size_t i = 0;
    while (true) {
        size_t j = s.find(from.data(), i, from.size());
        if (j == Str::npos) break;
        out.append(s, i, j - i);
        out.append(to);
        i = j + from.size();
    }
    if (i == 0) return;
    out.append(s, i, Str::npos);
    s.swap(out);
}

void cleanup(Str& s) {  // decoders.py `cleanup`, in its order
    static const std::pair<View, View> pairs[] = {
        {U" .", U"."},   {U" ?", U"?"},     {U" !", U"!"},   {U" ,", U","},   {U" ' ", U"'"},   {U" n't", U"n't"},
        {U" 'm", U"'m"}, {U" do not", U" don't"}, {U" 's", U"'s"}, {U" 've", U"'ve"}, {U" 're", U"'re"},
    };
    for (const auto& [from, to] : pairs) replace_all(s, from, to);
}

std::string utf8(View s) {
    std::string out;
    for (char32_t c : s) append_utf8(out, c);
    return out;
}

}  // namespace

std::string Decoder::decode(const std::vector<View>& tokens) const {
    std::string out;
    if (kind == kByteLevel) {
        std::unordered_map<char32_t, unsigned char> byte_of;
        for (int b = 0; b < 256; ++b) byte_of[byte_chars[b]] = static_cast<unsigned char>(b);
        for (View token : tokens) {
            std::string bytes;
            bool all = true;
            for (char32_t c : token) {
                auto it = byte_of.find(c);
                if (it == byte_of.end()) {
                    all = false;
                    break;
                }
                bytes += static_cast<char>(it->second);
            }
            out += all ? bytes : utf8(token);
        }
        return out;
    }
    for (size_t i = 0; i < tokens.size(); ++i) {
        Str token(tokens[i]);
        if (kind == kNone) {
            if (i) out += ' ';
        } else if (kind == kWordPiece) {
            if (i) {
                if (token.compare(0, prefix.size(), prefix) == 0)
                    token.erase(0, prefix.size());
                else
                    token.insert(token.begin(), U' ');
            }
            if (cleanup) llmlab::cleanup(token);
        } else if (kind == kMetaspace) {
            const View repl(&replacement, 1);
            replace_all(token, repl, i == 0 && !prepend_never ? View() : View(U" "));
        }
        out += utf8(token);
    }
    return out;
}

}  // namespace llmlab
