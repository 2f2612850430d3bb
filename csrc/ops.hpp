// The numeric core of mtcnn-fast: plain C++17 on raw buffers, no Python, no torch.
// Every function here has a NumPy twin in src/mtcnn_fast/_reference.py that specifies it;
// the two are kept bit-identical (float32 arithmetic in the same order, built with
// -ffp-contract=off so the compiler fuses nothing). The area resizes' row loops (rows.hpp) also
// run as AVX2 code where the CPU has it, with the same arithmetic per value.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mtcnn {

// Overlap measure for non-maximum suppression.
enum class Overlap { Union, Min };

// Scales of the image pyramid: m = 12 / min_face, then m * factor^k while min(h, w) * scale >= 12.
std::vector<double> pyramid_scales(int64_t height, int64_t width, double min_face, double factor);

// Bilinearly resizes an 8-bit HxWx3 image to out_h x out_w (pixel centres aligned, edges
// clamped) and writes (x - 127.5) * 0.0078125 as float32 HWC into out (out_h * out_w * 3).
void resize_normalize(const uint8_t* img, int64_t height, int64_t width, int64_t out_h,
                      int64_t out_w, float* out);

// True when a resize from in_h x in_w to out_h x out_w grows neither side: then it averages the
// source over each output cell from a summed-area table of the image (entry (y, x) sums the
// pixels above and left of it, per channel, exactly: uint32 while it cannot overflow, else
// double); otherwise it is bilinear (resize_normalize).
inline bool shrinks(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w) {
  return out_h <= in_h && out_w <= in_w;
}

// The pyramid: level l, sizes[2l] x sizes[2l + 1], into out[l] (area averages when the level is
// smaller than the image, bilinear otherwise). The area averages come from the whole frame's
// summed-area table, which is never stored: its rows are made top to bottom and every level
// takes the ones it needs as they pass (extra memory: a few rows of the table and of each level
// per thread, not 12 or 24 bytes per pixel). With OpenMP, stripes of the frame's rows run on
// `threads` OpenMP threads (the runtime torch uses, so the same workers); the numbers do not
// depend on how many.
void pyramid(const uint8_t* img, int64_t height, int64_t width, const int64_t* sizes,
             int64_t levels, float* const* out, int threads);

// Cuts square windows (1-based inclusive pixel numbers, truncated toward zero) out of an
// HxWx3 image, zero-filling what lies outside it, resizes each to size x size (area averages
// when the window is at least size wide and high, bilinear otherwise) and normalises
// into out (n * size * size * 3), HWC per window. The area averages come from the summed-area
// table of the part of the image that those windows cover (its corner enters their last bits),
// stored whole, or swept a row at a time where it would pass 32 MB (crop_windows says why).
// With OpenMP the windows are shared out among `threads` OpenMP threads; the numbers do not
// depend on how many.
void crop_windows(const uint8_t* img, int64_t height, int64_t width, const float* boxes,
                  int64_t n, int64_t size, float* out, int threads);

// P-Net output cells with score >= threshold, row-major, mapped to their windows. scores is
// h x w, C-contiguous; reg's value (j, y, x) is reg[j * s[0] + y * s[1] + x * s[2]] with s =
// reg_strides in floats (P-Net's channels-last output is read where it lies). The maps may be a
// band of a larger one whose row first_row is their row 0: windows are placed by the row's
// number in the whole map, so the bands' windows together are the whole map's.
void generate_windows(const float* scores, const float* reg, const int64_t* reg_strides,
                      int64_t h, int64_t w, int64_t first_row, double scale, float threshold,
                      std::vector<float>& boxes, std::vector<float>& out_scores,
                      std::vector<float>& out_reg);

// Greedy NMS; returns kept indices, highest score first (ties: lower index first).
std::vector<int64_t> nms(const float* boxes, const float* scores, int64_t n, float threshold,
                         Overlap mode);

// Box regression: x1 += dx1 * w, ... with w = x2 - x1 (+ 1 when plus_one).
void calibrate(const float* boxes, const float* reg, int64_t n, bool plus_one, float* out);

// Squares boxes around their centres (side = max(w, h), w = x2 - x1) and truncates toward zero.
void square(const float* boxes, int64_t n, float* out);

}  // namespace mtcnn
