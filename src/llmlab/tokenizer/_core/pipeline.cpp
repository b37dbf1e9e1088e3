// One text through every stage; see pipeline.h. References: encoder.py, pipeline.py.
#include "pipeline.h"

namespace llmlab {

bool Pipeline::is_hard(const Input& in) const {
    return normalizer && (normalizer->hard(in.text) || (in.has_pair && normalizer->hard(in.pair)));
}

bool Pipeline::encode(const Input& in, bool add_special_tokens, bool pad_alone, Enc& out, Workspace& ws) {
    if (is_hard(in)) return false;
    Enc& a = out;  // encoded in place: an `out` reused for many texts allocates only while it grows
    Enc b;
    a.clear();
    a.reserve(in.text.size() / 3 + 4);
    if (!encode_sequence(in.text, 0, a, ws)) return false;
    if (in.has_pair && !encode_sequence(in.pair, 1, b, ws)) return false;
    Enc* pair = in.has_pair ? &b : nullptr;
    if (truncate) {
        const int64_t added = add_special_tokens ? post.added_tokens(in.has_pair) : 0;
        if (!truncate_pair(a, pair, truncation, added)) return false;
    }
    Enc processed = post.process(a, pair, add_special_tokens, space_ends, spaces_list);  // (`a`, moved, where
    out = std::move(processed);                                                          // it can be)
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
    if (normalizer && !normalizer->unchanged(raw)) {  // (unchanged: the text itself, not a copy)
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

// WordPiece knows the split of every one-character word that is a token (under BERT's split, each CJK character
// is such a word): cached from the start, the first pass over a text finds them like a later one, and a
// batch's workers never write them (a cell one worker writes is a cache miss for the other).
void Pipeline::cache_single_characters() {
    if (byte_level || !model) return;  // (byte level: the model's words are bytes)
    for (const auto& [c, id] : model->single_character_tokens()) cache.insert_single(c, id);
}

// A word seen before: its split from the cache (inlined in the loop over words, as most words were seen).
inline bool Pipeline::cached_split(const WordCache::Key& key, WordCache::Hit& hit) const {
    if (key.word().size() > WordCache::kMaxWord) return false;  // longer words (a Chinese clause) rarely repeat
    return cache.find(key, hit);
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
        const View word(buffer.data() + w.offset, w.length);  // (the pre-tokenizer's words lie in the buffer)
        const WordCache::Key key(word);  // (hashed once, if at all, for the lookup and the insert)
        WordCache::Hit hit;
        if (!cached_split(key, hit) && !split_word(key, ws, hit)) return false;
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

// Byte level: the word's UTF-8 bytes as GPT-2 characters, and ws.begun[i], how many characters begin in its
// first i bytes (byte_level.py `char_spans`). Written through pointers into buffers that only grow: a push per
// byte cost more than the rest of the conversion.
View Pipeline::byte_level_word(View word, Workspace& ws) const {
    const size_t most = 4 * word.size();
    if (ws.model_word.size() < most) ws.model_word.resize(most);
    if (ws.begun.size() < most + 1) ws.begun.resize(most + 1);
    char32_t* to = ws.model_word.data();
    int32_t* begun = ws.begun.data();
    size_t k = 0;
    int32_t chars = 0;
    begun[0] = 0;
    for (char32_t c : word) {
        unsigned char bytes[4];
        const int len = utf8_bytes(c, bytes);
        ++chars;
        for (int j = 0; j < len; ++j, ++k) {
            to[k] = byte_chars[bytes[j]];
            begun[k + 1] = chars;
        }
    }
    return View(to, k);
}

// The model's split of a word not in the cache, with spans in characters of the word (byte level: bytes ->
// characters); cached if short enough.
bool Pipeline::split_word(const WordCache::Key& key, Workspace& ws, WordCache::Hit& hit) {
    const View word = key.word();
    ws.tokens.clear();
    const View model_word = byte_level ? byte_level_word(word, ws) : word;
    if (!(byte_level ? model->tokenize_bytes(word, model_word, ws.tokens) : model->tokenize(word, ws.tokens)))
        return false;
    if (model_word.size() != word.size())  // some characters took several bytes: spans back to characters
        for (Token& t : ws.tokens) {
            t.start = ws.begun[t.start + 1] - 1;
            t.end = ws.begun[t.end];
        }
    const int32_t n = static_cast<int32_t>(word.size());
    cache.insert(key, ws.tokens.data(), ws.tokens.size(), n, ws.holds_cache ? nullptr : &ws.cache_share);
    hit = {ws.tokens.data(), static_cast<uint32_t>(ws.tokens.size()), n};
    return true;
}

}  // namespace llmlab
