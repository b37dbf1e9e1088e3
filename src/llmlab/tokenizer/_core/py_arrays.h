// A C++ vector handed to Python without a copy: a one-dimensional numpy array or memoryview that owns it.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <vector>

namespace llmlab {

// `values` moved into a capsule that the array keeps alive (Framework: nb::numpy, or nb::memview where the
// caller must not need numpy).
template <class T, class Framework = nanobind::numpy>
nanobind::ndarray<Framework, T, nanobind::ndim<1>> owned_array(std::vector<T>&& values) {
    auto* owned = new std::vector<T>(std::move(values));
    nanobind::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
    return nanobind::ndarray<Framework, T, nanobind::ndim<1>>(owned->data(), {owned->size()}, owner);
}

}  // namespace llmlab
