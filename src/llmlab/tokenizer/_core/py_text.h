// Python strs and code points, for the bindings (module.cpp, py_*.cpp, training.cpp).
#pragma once

#include <nanobind/nanobind.h>

#include "common.h"

namespace llmlab {

namespace nb = nanobind;  // (for the bindings' files)

// The code points of a str into `out` (reused); false for one holding a lone surrogate (it has no UTF-8 form:
// Python decides what to do with it). Needs no GIL: a str is immutable, and this only reads it (the caller
// keeps it alive).
bool read_chars(PyObject* o, Str& out);

// The same, false also for something that is not a str.
inline bool read_text(PyObject* o, Str& out) { return PyUnicode_Check(o) && read_chars(o, out); }

// A str's code points; TypeError for anything else, or a str holding a lone surrogate.
Str to_str(nb::handle o);

// Every code point of a str, lone surrogates included (tokens learnt from Python strs).
Str chars_of(nb::handle o);

// A new str (a new reference; null with the Python error set).
PyObject* new_str(View s);

// The same as an object (raises the Python error).
inline nb::object str_object(View s) {
    PyObject* o = new_str(s);
    if (!o) throw nb::python_error();
    return nb::steal(o);
}

}  // namespace llmlab
