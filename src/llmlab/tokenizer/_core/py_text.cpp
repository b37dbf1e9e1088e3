// Python strs and code points; see py_text.h.
#include "py_text.h"

namespace llmlab {

bool read_chars(PyObject* o, Str& out) {
    const Py_ssize_t n = PyUnicode_GET_LENGTH(o);
    const int kind = PyUnicode_KIND(o);
    const void* data = PyUnicode_DATA(o);
    out.resize(n);
    char32_t* to = out.data();  // through a plain pointer the copies vectorize
    if (kind == PyUnicode_1BYTE_KIND) {
        const auto* p = static_cast<const Py_UCS1*>(data);
        for (Py_ssize_t i = 0; i < n; ++i) to[i] = p[i];
        return true;
    }
    char32_t surrogates = 0;  // a lone surrogate (no UTF-8 form): the text is left to Python
    if (kind == PyUnicode_2BYTE_KIND) {
        const auto* p = static_cast<const Py_UCS2*>(data);
        for (Py_ssize_t i = 0; i < n; ++i) surrogates |= (to[i] = p[i]) - 0xD800 < 0x800;
    } else {
        const auto* p = static_cast<const Py_UCS4*>(data);
        for (Py_ssize_t i = 0; i < n; ++i) surrogates |= (to[i] = p[i]) - 0xD800 < 0x800;
    }
    return !surrogates;
}

Str to_str(nb::handle o) {
    Str s;
    if (!read_text(o.ptr(), s)) throw nb::type_error("expected a str");
    return s;
}

Str chars_of(nb::handle o) {
    Py_UCS4* data = PyUnicode_AsUCS4Copy(o.ptr());
    if (!data) throw nb::python_error();
    Str s(data, data + PyUnicode_GET_LENGTH(o.ptr()));
    PyMem_Free(data);
    return s;
}

PyObject* new_str(View s) {
    return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, s.data(), static_cast<Py_ssize_t>(s.size()));
}

}  // namespace llmlab
