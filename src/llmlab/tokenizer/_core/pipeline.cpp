// One text through every stage; see pipeline.h. References: encoder.py, pipeline.py.
#include "pipeline.h"

namespace llmlab {

bool Pipeline::is_hard(const Input& in) const {
    return normalizer && (normalizer->hard(in.text) || (in.has_pair && normalizer->hard(in.pair)));
}

bool Pipeline::encode(const Input& in, bool add_special_tokens, bool pad_alone, Enc& out, Workspace& ws) {
    if (is_hard(in)) return false;
    Enc a, b;
    a.reserve(in.text.size() / 3 + 4);
    if (!encode_sequence(in.text, 0, a, ws)) return false;
    if (in.has_pair && !encode_sequence(in.pair, 1, b, ws)) return false;
    Enc* pair = in.has_pair ? &b : nullptr;
    if (truncate) {
        const int64_t added = add_special_tokens ? post.added_tokens(in.has_pair) : 0;
        if (!truncate_pair(a, pair, truncation, added)) return false;
    }
    out = post.process(a, pair, add_special_tokens, leads, trails, spaces_list);
    if (pad && pad_alone) pad_batch({&out}, padding);
    return true;
}

// encoder.py `SequenceEncoder.encode`: added tokens written as-is first, then each piece between them.
bool Pipeline::encode_sequence(View text, int32_t type_id, Enc& out, Workspace& ws) {
    if (!raw_added.split(text, ws.raw_pieces)) return encode_piece(text, 0, type_id, out, ws);
    const std::vector<Piece>& pieces = ws.raw_pieces;  // encode_piece leaves it alone
    for (const Piece& p : pieces) {
        if (p.token < 0) {
            if (!encode_piece(text.substr(p.start, p.end - p.start), p.start, type_id, out, ws)) return false;
            continue;
        }
        const AddedToken& tok = raw_added.token(p.token);
        View written = text.substr(p.start, p.end - p.start);
        out.push(tok.id, written == View(tok.content) ? tok.ref : out.custom(Str(written)), p.start, p.end, type_id);
    }
    return true;
}

namespace {

int32_t raw_position(int32_t i, const std::vector<int32_t>& align, int32_t n_raw) {
    if (align.empty()) return i;
    return i < static_cast<int32_t>(align.size()) ? align[i] : n_raw;
}

// encoder.py `_to_raw`: offsets [from, end) of normalized text as offsets of the raw text.
void to_raw(Enc& out, size_t from, const std::vector<int32_t>& align, int32_t n_raw, int32_t base) {
    const int32_t n = static_cast<int32_t>(align.size());
    for (size_t i = from; i < out.offsets.size(); ++i) {
        auto& [a, b] = out.offsets[i];
        if (align.empty()) {
            a += base;
            b += base;
        } else if (b > a) {
            const int32_t end = align[b - 1] + 1;
            a = base + align[a];
            b = base + end;
        } else {
            a = b = a < n ? base + align[a] : base + n_raw;
        }
    }
}

}  // namespace

// encoder.py `_encode_piece`: normalize, split off the added tokens matched in normalized text, map back.
bool Pipeline::encode_piece(View raw, int32_t base, int32_t type_id, Enc& out, Workspace& ws) {
    View text = raw;  // ws.normalized, ws.align and ws.normalized_pieces: encode_words leaves them alone
    if (normalizer) {
        normalizer->normalize(raw, ws.normalized, ws.align);
        text = ws.normalized;
    } else {
        ws.align.clear();
    }
    const std::vector<int32_t>& align = ws.align;
    std::vector<Piece>& pieces = ws.normalized_pieces;
    const bool split = normalized_added.split(text, pieces);
    if (!split && align.empty()) return encode_words(text, base, base == 0, type_id, out, ws);
    if (!split) pieces.assign(1, {0, static_cast<int32_t>(text.size()), -1});
    const int32_t n_raw = static_cast<int32_t>(raw.size());
    for (const Piece& p : pieces) {
        const size_t from = out.size();
        if (p.token < 0) {
            const bool first = base + raw_position(p.start, align, n_raw) == 0;
            if (!encode_words(text.substr(p.start, p.end - p.start), p.start, first, type_id, out, ws)) return false;
        } else {
            const AddedToken& tok = normalized_added.token(p.token);
            View written = text.substr(p.start, p.end - p.start);
            out.push(tok.id, written == View(tok.content) ? tok.ref : out.custom(Str(written)), p.start, p.end,
                     type_id);
        }
        to_raw(out, from, align, n_raw, base);
    }
    return true;
}

// encoder.py `_encode_words`: pre-tokenize, split each word (cached), offsets = word span + token span.
bool Pipeline::encode_words(View text, int32_t shift, bool first, int32_t type_id, Enc& out, Workspace& ws) {
    View buffer = text;
    std::vector<Word>& words = ws.words;
    if (pre_tokenizer) {
        buffer = pre_tokenizer->split(text, first, ws.full, words);
    } else {
        words.clear();
        if (!text.empty()) words.push_back({0, static_cast<uint32_t>(text.size()), 0, static_cast<int32_t>(text.size())});
    }
    for (const Word& w : words) {
        View word = buffer.substr(w.offset, w.length);
        WordCache::Hit hit;
        if (!split_word(word, ws, hit)) return false;
        const int32_t s = w.start + shift, len = w.end - w.start;
        const bool prepended = hit.n == len + 1;  // a character the pre-tokenizer put in front of the text
        if (hit.n != len && !prepended) return false;
        for (uint32_t k = 0; k < hit.count; ++k) {
            const Token& t = hit.tokens[k];
            int32_t ref = t.id;
            if (t.id == unk_as_text) ref = out.custom(Str(word.substr(t.start, t.end - t.start)));
            if (prepended)
                out.push(t.id, ref, s + std::max(t.start - 1, 0), s + std::max(t.end - 1, 1), type_id);
            else
                out.push(t.id, ref, s + t.start, s + t.end, type_id);
        }
    }
    return true;
}

// The model's split of one word with spans in characters of the word (byte level: bytes -> characters).
bool Pipeline::split_word(View word, Workspace& ws, WordCache::Hit& hit) {
    const bool cached = word.size() <= WordCache::kMaxWord;  // longer words (a Chinese clause) rarely repeat
    const WordCache::Key key(word);
    if (cached && cache.find(key, hit)) return true;
    if (cached && ws.writes && ws.writes->find(key, hit)) return true;
    ws.tokens.clear();
    View model_word = word;
    bool multibyte = false;
    if (byte_level) {
        std::string& bytes = ws.bytes;
        bytes.clear();
        for (char32_t c : word) append_utf8(bytes, c);
        ws.model_word.clear();
        for (unsigned char b : bytes) {
            ws.model_word += byte_chars[b];
            multibyte = multibyte || b >= 0x80;
        }
        model_word = ws.model_word;
        if (multibyte) {  // begun[i]: characters begun in the first i bytes (byte_level.py `char_spans`)
            ws.begun.assign(1, 0);
            for (unsigned char b : bytes) ws.begun.push_back(ws.begun.back() + ((b & 0xC0) != 0x80));
        }
    }
    if (!model->tokenize(model_word, ws.tokens)) return false;
    if (multibyte)
        for (Token& t : ws.tokens) {
            t.start = ws.begun[t.start + 1] - 1;
            t.end = ws.begun[t.end];
        }
    const int32_t n = static_cast<int32_t>(word.size());
    WordCache& target = ws.writes ? *ws.writes : cache;
    if (cached) target.insert(key, ws.tokens.data(), ws.tokens.size(), n);
    hit = {ws.tokens.data(), static_cast<uint32_t>(ws.tokens.size()), n};
    return true;
}

}  // namespace llmlab
