// A C++ vector handed to Python without a copy: a one-dimensional numpy array or memoryview that owns it.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <memory>
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

// The same for `size` values in an array of the caller's (allocated as new T[size], never zeroed).
template <class T, class Framework = nanobind::numpy>
nanobind::ndarray<Framework, T, nanobind::ndim<1>> owned_array(std::unique_ptr<T[]> values, size_t size) {
    T* data = values.release();
    nanobind::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
    return nanobind::ndarray<Framework, T, nanobind::ndim<1>>(data, {size}, owner);
}

}  // namespace llmlab
