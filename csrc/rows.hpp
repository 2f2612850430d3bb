// Row kernels of the area-averaged resizes (the pyramid and the crops): the loops that touch every
// value of a summed-area table row or of an output row. Each has one arithmetic, written once as
// plain C++ (the specification, with _reference._area), and on x86-64 CPUs with AVX2 it runs as
// vector code doing the same operations in the same order on each value (mul, add, sub and the
// conversions are exact or correctly rounded lane by lane, and nothing is fused; the integer
// sums of the table rows are exact in any order, and accumulate_prefix's vector code adds pairs
// of pixels first), so the numbers are the same bits on every CPU. The double-sum variants
// (frames over 16.8 Mpx) stay plain but for corner_row. vector_kernels() says which runs; tests switch it.
#pragma once
#include <cstdint>

namespace mtcnn {

// The networks' input normalisation: (x - kMean) * kScale, in float32.
constexpr float kMean = 127.5f;
constexpr float kScale = 0.0078125f;

namespace rowops {

// Whether the AVX2 versions run: the CPU has AVX2 (checked once) and no test has turned them off.
bool vector_kernels();
// Tests only: force the plain versions (false) or the CPU's best (true); returns the new state.
bool set_vector_kernels(bool enable);

// A corner row of an area resize from two summed-area table rows (entries top[0 .. len) and
// bottom[0 .. len), 3 interleaved channels per column): for corner k with table column
// base[k] / 3 and weights g[k], f[k], each row is interpolated at the corner,
// t = double(top[base[k] + c]) * g[k] + double(top[base[k] + 3 + c]) * f[k] (b likewise from
// bottom), and d[3k + c] = t * gy + b * fy.
void corner_row(const uint32_t* top, const uint32_t* bottom, int64_t len, const int64_t* base,
                const double* g, const double* f, int64_t count, double gy, double fy, double* d);
void corner_row(const double* top, const double* bottom, int64_t len, const int64_t* base,
                const double* g, const double* f, int64_t count, double gy, double fy, double* d);

// Output values from two corner rows: o[j] = (float(((cur[j + 3] - cur[j]) - (prev[j + 3] -
// prev[j])) * inv_cell) - 127.5f) * 0.0078125f, j < m (the corner rows hold m + 3 values).
void cells(const double* prev, const double* cur, double inv_cell, int64_t m, float* o);

// sums[j] += src[j], j < n.
void accumulate(const uint8_t* src, int64_t n, uint32_t* sums);
void accumulate(const uint8_t* src, int64_t n, double* sums);

// A table row from the column sums of the rows above it (width pixels, interleaved):
// row[3 (x + 1) + c] = sum over x' <= x of sums[3 x' + c]; row[0 .. 3) are left as they are.
void prefix(const uint32_t* sums, int64_t width, uint32_t* row);
void prefix(const double* sums, int64_t width, double* row);

// Both at once, for a row of `width` pixels: sums[j] += src[j], then row from sums as prefix does.
void accumulate_prefix(const uint8_t* src, int64_t width, uint32_t* sums, uint32_t* row);
void accumulate_prefix(const uint8_t* src, int64_t width, double* sums, double* row);

}  // namespace rowops
}  // namespace mtcnn
