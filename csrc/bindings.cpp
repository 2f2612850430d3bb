// pybind11 boundary of the core: every argument is checked here (type, dtype, shape,
// finiteness) so that a wrong array raises TypeError/ValueError instead of reaching the
// raw-pointer code in ops.cpp. The work itself runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "ops.hpp"
#include "rows.hpp"

namespace py = pybind11;

namespace {

// Box coordinates beyond this are treated as corrupt input (keeps int64 arithmetic safe).
constexpr double kMaxCoord = 1e9;
// More pyramid levels than this means nonsensical settings (a scale factor next to 1).
constexpr double kMaxLevels = 1000.0;
// A first pyramid level larger than this (2^26 pixels) means settings that would exhaust memory
// (about 10 GB of working memory when it was set, about 2.2 GB now: _reference.py says more).
constexpr double kMaxLevelPixels = 67108864.0;

std::string type_name(const py::handle& obj) {
  return py::str(py::type::of(obj).attr("__name__")).cast<std::string>();
}

// Returns obj as an array, raising TypeError for a non-array or a dtype other than T's.
template <class T>
py::array checked(const py::object& obj, const char* name, const char* dtype_name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy array, got " + type_name(obj));
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<T>())) {
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name + ", got " +
                         py::str(arr.dtype()).cast<std::string>());
  }
  return arr;
}

// obj as a C-contiguous array of T (a copy when it is not one), checked as above.
template <class T>
py::array_t<T, py::array::c_style> require(const py::object& obj, const char* name,
                                           const char* dtype_name) {
  return py::array_t<T, py::array::c_style>::ensure(checked<T>(obj, name, dtype_name));
}

// Like require, but keeps any aligned layout whose strides are whole elements (no copy): a
// view such as P-Net's channels-last outputs is read where it lies.
template <class T>
py::array_t<T> require_strided(const py::object& obj, const char* name, const char* dtype_name) {
  auto arr = checked<T>(obj, name, dtype_name);
  if (reinterpret_cast<std::uintptr_t>(arr.data()) % alignof(T) != 0)
    return py::array_t<T, py::array::c_style>::ensure(arr);
  for (py::ssize_t d = 0; d < arr.ndim(); ++d)
    if (arr.strides(d) % static_cast<py::ssize_t>(sizeof(T)) != 0)
      return py::array_t<T, py::array::c_style>::ensure(arr);
  return py::array_t<T>::ensure(arr);
}

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

py::array_t<uint8_t, py::array::c_style> require_image(const py::object& obj) {
  auto img = require<uint8_t>(obj, "image", "uint8");
  if (img.ndim() != 3 || img.shape(2) != 3 || img.shape(0) < 1 || img.shape(1) < 1) {
    throw py::value_error("image must have shape (H, W, 3) with H, W >= 1, got " +
                          shape_str(img));
  }
  return img;
}

void require_finite(const float* p, py::ssize_t n, const char* name, double limit) {
  for (py::ssize_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i]) || std::fabs(p[i]) > limit) {
      throw py::value_error(std::string(name) + " must hold finite values of magnitude <= " +
                            std::to_string(limit));
    }
  }
}

py::array_t<float, py::array::c_style> require_boxes(const py::object& obj, const char* name) {
  auto b = require<float>(obj, name, "float32");
  if (b.ndim() != 2 || b.shape(1) != 4) {
    throw py::value_error(std::string(name) + " must have shape (N, 4), got " + shape_str(b));
  }
  require_finite(b.data(), b.size(), name, kMaxCoord);
  return b;
}

py::array_t<float> boxes_array(py::ssize_t n) {
  return py::array_t<float>({n, static_cast<py::ssize_t>(4)});
}

double require_unit(double v, const char* name) {
  if (!(v >= 0.0 && v <= 1.0)) {
    throw py::value_error(std::string(name) + " must lie in [0, 1], got " + std::to_string(v));
  }
  return v;
}

double require_positive(double v, const char* name) {
  if (!std::isfinite(v) || v <= 0.0) {
    throw py::value_error(std::string(name) + " must be a finite number > 0, got " +
                          std::to_string(v));
  }
  return v;
}

py::list pyramid_scales(int64_t height, int64_t width, double min_face, double factor) {
  if (height < 0 || width < 0) throw py::value_error("height and width must be >= 0");
  require_positive(min_face, "min_face_size");
  if (!(factor > 0.0 && factor < 1.0)) {
    throw py::value_error("scale_factor must lie strictly between 0 and 1, got " +
                          std::to_string(factor));
  }
  // Refuse settings that would make an absurd pyramid (or never end) before building it.
  const double top = static_cast<double>(std::min(height, width)) * (12.0 / min_face);
  if (!std::isfinite(top) || (top >= 12.0 && std::log(top / 12.0) / -std::log(factor) > kMaxLevels)) {
    throw py::value_error("min_face_size and scale_factor give more than " +
                          std::to_string(static_cast<int>(kMaxLevels)) + " pyramid levels");
  }
  const double m = 12.0 / min_face;
  if (top >= 12.0 && static_cast<double>(height) * m * static_cast<double>(width) * m > kMaxLevelPixels) {
    throw py::value_error(
        "min_face_size " + std::to_string(min_face) + " on a " + std::to_string(height) + " x " +
        std::to_string(width) + " frame makes a first pyramid level of more than " +
        std::to_string(static_cast<int64_t>(kMaxLevelPixels)) +
        " pixels (the frame scaled by 12 / min_face_size); use a larger min_face_size or a "
        "smaller frame");
  }
  py::list out;
  for (double s : mtcnn::pyramid_scales(height, width, min_face, factor)) out.append(s);
  return out;
}

// The core's OpenMP regions take exactly this many threads (see ops.cpp, parallel_for).
constexpr int64_t kMaxThreads = 1024;

int require_threads(int64_t threads) {
  if (threads < 1 || threads > kMaxThreads)
    throw py::value_error("threads must lie in [1, " + std::to_string(kMaxThreads) + "], got " +
                          std::to_string(threads));
  return static_cast<int>(threads);
}

// The caller's buffer for an output (`out`): a writeable, C-contiguous, one-dimensional float32
// array of at least `need` values that shares no byte with the image. The output is written
// there and returned as views of it, so a caller that keeps one buffer across calls spares the
// heap (and the system) a fresh allocation for every frame.
float* require_out(const py::object& obj, py::ssize_t need, const py::array& image) {
  auto arr = checked<float>(obj, "out", "float32");
  if (arr.ndim() != 1 || !(arr.flags() & py::array::c_style) || !arr.writeable()) {
    throw py::value_error("out must be a writeable, contiguous one-dimensional array, got shape " +
                          shape_str(arr));
  }
  if (arr.shape(0) < need) {
    throw py::value_error("out holds " + std::to_string(arr.shape(0)) + " values; this call needs " +
                          std::to_string(need));
  }
  const auto* a0 = static_cast<const char*>(arr.data());
  const auto* i0 = static_cast<const char*>(image.data());
  if (a0 < i0 + image.nbytes() && i0 < a0 + arr.nbytes())
    throw py::value_error("out must not share memory with the image");
  return static_cast<float*>(arr.mutable_data());
}

// Values from one level's start to the next one's: levels in a caller's buffer start on
// 64-byte boundaries (16 floats) from the buffer's start.
py::ssize_t padded(py::ssize_t values) { return (values + 15) / 16 * 16; }

// The levels' sizes for a frame of h x w pixels (checked), and the values a caller's buffer
// needs to hold them all.
py::ssize_t level_sizes(int64_t h, int64_t w, const std::vector<double>& scales,
                        std::vector<int64_t>& sizes) {
  py::ssize_t need = 0;
  for (double s : scales) {
    require_positive(s, "scale");
    const double lh = std::ceil(h * s), lw = std::ceil(w * s);
    if (lh > kMaxCoord || lw > kMaxCoord) throw py::value_error("pyramid level too large");
    sizes.push_back(static_cast<int64_t>(lh));
    sizes.push_back(static_cast<int64_t>(lw));
    need += padded(static_cast<py::ssize_t>(lh * lw * 3));
  }
  return need;
}

py::ssize_t pyramid_values(int64_t height, int64_t width, const std::vector<double>& scales) {
  if (height < 1 || width < 1) throw py::value_error("height and width must be >= 1");
  std::vector<int64_t> sizes;
  return level_sizes(height, width, scales, sizes);
}

py::list pyramid(const py::object& image, const std::vector<double>& scales, int64_t threads,
                 const py::object& out_obj) {
  const int nthreads = require_threads(threads);
  auto img = require_image(image);
  const int64_t h = img.shape(0), w = img.shape(1);
  std::vector<int64_t> sizes;
  const py::ssize_t need = level_sizes(h, w, scales, sizes);
  const size_t count = scales.size();
  std::vector<py::array_t<float>> levels;
  std::vector<float*> outs;
  float* buffer = out_obj.is_none() ? nullptr : require_out(out_obj, need, img);
  for (size_t l = 0; l < count; ++l) {
    const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(sizes[2 * l]),
                                         static_cast<py::ssize_t>(sizes[2 * l + 1]), 3};
    if (buffer) {
      const std::vector<py::ssize_t> strides{shape[1] * 3 * 4, 3 * 4, 4};
      levels.emplace_back(shape, strides, buffer, out_obj);
      buffer += padded(shape[0] * shape[1] * 3);
    } else {
      levels.emplace_back(shape);
    }
    outs.push_back(levels.back().mutable_data());
  }
  const uint8_t* src = img.data();
  {
    py::gil_scoped_release release;
    mtcnn::pyramid(src, h, w, sizes.data(), static_cast<int64_t>(outs.size()), outs.data(), nthreads);
  }
  py::list out;
  for (auto& level : levels) out.append(level);
  return out;
}

py::array_t<float> crop_windows(const py::object& image, const py::object& boxes_obj,
                                int64_t size, int64_t threads, const py::object& out_obj) {
  const int nthreads = require_threads(threads);
  auto img = require_image(image);
  auto boxes = require_boxes(boxes_obj, "boxes");
  if (size < 1 || size > 4096) throw py::value_error("size must lie in [1, 4096]");
  const py::ssize_t n = boxes.shape(0), side = static_cast<py::ssize_t>(size);
  const std::vector<py::ssize_t> shape{n, side, side, 3};
  py::array_t<float> out =
      out_obj.is_none()
          ? py::array_t<float>(shape)
          : py::array_t<float>(shape,
                               std::vector<py::ssize_t>{side * side * 3 * 4, side * 3 * 4, 3 * 4, 4},
                               require_out(out_obj, n * side * side * 3, img), out_obj);
  const uint8_t* src = img.data();
  const float* b = boxes.data();
  float* dst = out.mutable_data();
  const int64_t h = img.shape(0), w = img.shape(1);
  {
    py::gil_scoped_release release;
    mtcnn::crop_windows(src, h, w, b, n, size, dst, nthreads);
  }
  return out;
}

py::tuple generate_windows(const py::object& scores_obj, const py::object& reg_obj, double scale,
                           double threshold, int64_t first_row) {
  auto scores = require<float>(scores_obj, "scores", "float32");
  auto reg = require_strided<float>(reg_obj, "reg", "float32");
  if (scores.ndim() != 2) {
    throw py::value_error("scores must have shape (H, W), got " + shape_str(scores));
  }
  if (reg.ndim() != 3 || reg.shape(0) != 4 || reg.shape(1) != scores.shape(0) ||
      reg.shape(2) != scores.shape(1)) {
    throw py::value_error("reg must have shape (4, H, W) matching scores " +
                          shape_str(scores) + ", got " + shape_str(reg));
  }
  require_positive(scale, "scale");
  require_unit(threshold, "threshold");
  const int64_t h = scores.shape(0), w = scores.shape(1);
  if (first_row < 0 || static_cast<double>(first_row) + static_cast<double>(h) > kMaxCoord) {
    throw py::value_error("first_row must be >= 0 with first_row + H <= 1e9, got " +
                          std::to_string(first_row));
  }
  std::vector<float> boxes, out_scores, out_reg;
  const float* s = scores.data();
  const float* r = reg.data();
  int64_t strides[3];
  for (int d = 0; d < 3; ++d) strides[d] = reg.strides(d) / static_cast<py::ssize_t>(sizeof(float));
  {
    py::gil_scoped_release release;
    mtcnn::generate_windows(s, r, strides, h, w, first_row, scale, static_cast<float>(threshold),
                            boxes, out_scores, out_reg);
  }
  const py::ssize_t k = static_cast<py::ssize_t>(out_scores.size());
  auto b = boxes_array(k);
  auto sc = py::array_t<float>(k);
  auto rg = boxes_array(k);
  std::copy(boxes.begin(), boxes.end(), b.mutable_data());
  std::copy(out_scores.begin(), out_scores.end(), sc.mutable_data());
  std::copy(out_reg.begin(), out_reg.end(), rg.mutable_data());
  return py::make_tuple(b, sc, rg);
}

py::array_t<int64_t> nms(const py::object& boxes_obj, const py::object& scores_obj,
                         double threshold, const std::string& mode) {
  auto boxes = require_boxes(boxes_obj, "boxes");
  auto scores = require<float>(scores_obj, "scores", "float32");
  if (scores.ndim() != 1 || scores.shape(0) != boxes.shape(0)) {
    throw py::value_error("scores must have shape (N,) matching boxes " + shape_str(boxes) +
                          ", got " + shape_str(scores));
  }
  require_finite(scores.data(), scores.size(), "scores", 3.4e38);
  require_unit(threshold, "threshold");
  mtcnn::Overlap overlap;
  if (mode == "union") {
    overlap = mtcnn::Overlap::Union;
  } else if (mode == "min") {
    overlap = mtcnn::Overlap::Min;
  } else {
    throw py::value_error("mode must be 'union' or 'min', got '" + mode + "'");
  }
  std::vector<int64_t> keep;
  const float* b = boxes.data();
  const float* s = scores.data();
  const int64_t n = boxes.shape(0);
  {
    py::gil_scoped_release release;
    keep = mtcnn::nms(b, s, n, static_cast<float>(threshold), overlap);
  }
  py::array_t<int64_t> out(static_cast<py::ssize_t>(keep.size()));
  std::copy(keep.begin(), keep.end(), out.mutable_data());
  return out;
}

py::array_t<float> calibrate(const py::object& boxes_obj, const py::object& reg_obj,
                             bool plus_one) {
  auto boxes = require_boxes(boxes_obj, "boxes");
  auto reg = require<float>(reg_obj, "reg", "float32");
  if (reg.ndim() != 2 || reg.shape(1) != 4 || reg.shape(0) != boxes.shape(0)) {
    throw py::value_error("reg must have shape (N, 4) matching boxes " + shape_str(boxes) +
                          ", got " + shape_str(reg));
  }
  require_finite(reg.data(), reg.size(), "reg", kMaxCoord);
  const py::ssize_t n = boxes.shape(0);
  auto out = boxes_array(n);
  const float* b = boxes.data();
  const float* r = reg.data();
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    mtcnn::calibrate(b, r, n, plus_one, o);
  }
  return out;
}

py::array_t<float> square(const py::object& boxes_obj) {
  auto boxes = require_boxes(boxes_obj, "boxes");
  const py::ssize_t n = boxes.shape(0);
  auto out = boxes_array(n);
  const float* b = boxes.data();
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    mtcnn::square(b, n, o);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mtcnn-fast C++ core: pyramid, crops, window generation, NMS, box regression.";
  m.def("pyramid_scales", &pyramid_scales, py::arg("height"), py::arg("width"),
        py::arg("min_face_size"), py::arg("factor"),
        "Pyramid scales 12 / min_face_size * factor**k while min(height, width) * scale >= 12.");
  m.def("pyramid", &pyramid, py::arg("image"), py::arg("scales"), py::arg("threads") = 1,
        py::arg("out") = py::none(),
        "Each level: the uint8 (H, W, 3) image resized to ceil(H*s) x ceil(W*s) (area averages\n"
        "when the level is smaller than the image, bilinear when larger),\n"
        "normalised as (x - 127.5) * 0.0078125, float32 (h, w, 3); on `threads` threads.\n"
        "out: a one-dimensional float32 buffer the levels are written to (views of it, each\n"
        "starting on a multiple of 16 values: pyramid_values() says how many it needs); else\n"
        "new arrays.");
  m.def("pyramid_values", &pyramid_values, py::arg("height"), py::arg("width"), py::arg("scales"),
        "How many float32 values pyramid's `out` needs for a height x width frame.");
  m.def("crop_windows", &crop_windows, py::arg("image"), py::arg("boxes"), py::arg("size"),
        py::arg("threads") = 1, py::arg("out") = py::none(),
        "Windows (1-based inclusive pixel numbers, truncated), zero-filled outside the image,\n"
        "resized to size x size (area averages when the window is at least size wide and high,\n"
        "else bilinear) and normalised: float32 (N, size, size, 3); on `threads` threads.\n"
        "out: a one-dimensional float32 buffer of at least N * size * size * 3 values, the\n"
        "crops written to its start (a view of it is returned); else a new array.");
  m.def("generate_windows", &generate_windows, py::arg("scores"), py::arg("reg"),
        py::arg("scale"), py::arg("threshold"), py::arg("first_row") = 0,
        "P-Net cells with score >= threshold mapped to their windows: (boxes, scores, reg).\n"
        "first_row: the map's first row's number in the whole map it is a band of.");
  m.def("nms", &nms, py::arg("boxes"), py::arg("scores"), py::arg("threshold"),
        py::arg("mode") = "union",
        "Greedy NMS with +1 areas ('union' or 'min' overlap); kept indices, best first.");
  m.def("calibrate", &calibrate, py::arg("boxes"), py::arg("reg"), py::arg("plus_one"),
        "Box regression with w = x2 - x1 (+ 1 when plus_one).");
  m.def("square", &square, py::arg("boxes"),
        "Squares boxes about their centres (side = max(w, h)) and truncates toward zero.");
  m.def(
      "_vector_kernels",
      [](py::object enable) {
        if (!enable.is_none()) return mtcnn::rowops::set_vector_kernels(enable.cast<bool>());
        return mtcnn::rowops::vector_kernels();
      },
      py::arg("enable") = py::none(),
      "For tests: whether the area resizes' row loops run as AVX2 code (the CPU has it); with\n"
      "enable=False the plain loops run (same numbers), enable=True the CPU's best again.\n"
      "Process-wide: not for use while other threads run the core.");
}
