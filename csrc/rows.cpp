#include "rows.hpp"

#include <algorithm>
#include <atomic>
#include <type_traits>
#include <climits>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define MTCNN_AVX2 1
#include <immintrin.h>
#endif

namespace mtcnn {
namespace rowops {

namespace {

// The plain versions: the arithmetic every version follows.

// Corners k0 .. k1 - 1 of a corner row: each table row interpolated at the corner's columns,
// then the two blended.
template <class T>
void corner_plain(const T* top, const T* bottom, const int64_t* base, const double* g,
                  const double* f, double gy, double fy, int64_t k0, int64_t k1, double* d) {
  for (int64_t k = k0; k < k1; ++k) {
    const T* p = top + base[k];
    const T* q = bottom + base[k];
    for (int c = 0; c < 3; ++c) {
      const double t = static_cast<double>(p[c]) * g[k] + static_cast<double>(p[c + 3]) * f[k];
      const double b = static_cast<double>(q[c]) * g[k] + static_cast<double>(q[c + 3]) * f[k];
      d[3 * k + c] = t * gy + b * fy;
    }
  }
}

void cells_plain(const double* prev, const double* cur, double inv_cell, int64_t j0, int64_t m,
                 float* o) {
  for (int64_t j = j0; j < m; ++j) {
    const double v = ((cur[j + 3] - cur[j]) - (prev[j + 3] - prev[j])) * inv_cell;
    o[j] = (static_cast<float>(v) - kMean) * kScale;
  }
}

template <class T>
void accumulate_plain(const uint8_t* src, int64_t j0, int64_t n, T* sums) {
  for (int64_t j = j0; j < n; ++j) sums[j] += static_cast<T>(src[j]);
}

// Pixels x0 .. width - 1 of a prefix, continuing from the running sums `run`.
template <class T>
void prefix_plain(const T* sums, int64_t x0, int64_t width, T* run, T* row) {
  for (int64_t x = x0; x < width; ++x) {
    for (int c = 0; c < 3; ++c) {
      run[c] += sums[3 * x + c];
      row[3 * (x + 1) + c] = run[c];
    }
  }
}

// Pixels x0 .. width - 1 of both: the column sums take the image row, then the prefix.
template <class T>
void accumulate_prefix_plain(const uint8_t* src, int64_t x0, int64_t width, T* sums, T* run,
                             T* row) {
  for (int64_t x = x0; x < width; ++x) {
    for (int c = 0; c < 3; ++c) {
      sums[3 * x + c] += static_cast<T>(src[3 * x + c]);
      run[c] += sums[3 * x + c];
      row[3 * (x + 1) + c] = run[c];
    }
  }
}

#ifdef MTCNN_AVX2

// The AVX2 versions. Per corner or pixel they work on four lanes, three channels and the next
// corner's (pixel's) first value, which the next step writes again; the last corner or pixel,
// and any whose four-lane loads would pass the end of their row, take the plain path.

template <bool Biased>
__attribute__((target("avx2"))) inline __m256d load_entries(const uint32_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (!Biased) return _mm256_cvtepi32_pd(v);
  // Entries of 2^31 and more: x - 2^31 as int32, converted, plus 2^31 (all exact).
  return _mm256_add_pd(_mm256_cvtepi32_pd(_mm_xor_si128(v, _mm_set1_epi32(INT_MIN))),
                       _mm256_set1_pd(2147483648.0));
}

__attribute__((target("avx2"))) inline __m256d load_entries(const double* p) {
  return _mm256_loadu_pd(p);
}

template <bool Biased, class T>
__attribute__((target("avx2"))) inline __m256d entries(const T* p) {
  if constexpr (std::is_same_v<T, uint32_t>)
    return load_entries<Biased>(p);
  else
    return load_entries(p);
}

template <bool Biased, class T>
__attribute__((target("avx2"))) int64_t corner_avx2(const T* top, const T* bottom, int64_t len,
                                                    const int64_t* base, const double* g,
                                                    const double* f, double gy, double fy,
                                                    int64_t count, double* d) {
  const __m256d vgy = _mm256_set1_pd(gy), vfy = _mm256_set1_pd(fy);
  int64_t k = 0;
  for (; k + 1 < count && base[k] + 7 <= len; ++k) {
    const T* p = top + base[k];
    const T* q = bottom + base[k];
    const __m256d vg = _mm256_set1_pd(g[k]), vf = _mm256_set1_pd(f[k]);
    const __m256d t = _mm256_add_pd(_mm256_mul_pd(entries<Biased>(p), vg),
                                    _mm256_mul_pd(entries<Biased>(p + 3), vf));
    const __m256d b = _mm256_add_pd(_mm256_mul_pd(entries<Biased>(q), vg),
                                    _mm256_mul_pd(entries<Biased>(q + 3), vf));
    _mm256_storeu_pd(d + 3 * k, _mm256_add_pd(_mm256_mul_pd(t, vgy), _mm256_mul_pd(b, vfy)));
  }
  return k;
}

__attribute__((target("avx2"))) int64_t cells_avx2(const double* prev, const double* cur,
                                                   double inv_cell, int64_t m, float* o) {
  const __m256d inv = _mm256_set1_pd(inv_cell);
  const __m128 mean = _mm_set1_ps(kMean), scale = _mm_set1_ps(kScale);
  int64_t j = 0;
  for (; j + 4 <= m; j += 4) {
    const __m256d c = _mm256_sub_pd(_mm256_loadu_pd(cur + j + 3), _mm256_loadu_pd(cur + j));
    const __m256d p = _mm256_sub_pd(_mm256_loadu_pd(prev + j + 3), _mm256_loadu_pd(prev + j));
    const __m128 v = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_sub_pd(c, p), inv));
    _mm_storeu_ps(o + j, _mm_mul_ps(_mm_sub_ps(v, mean), scale));
  }
  return j;
}

__attribute__((target("avx2"))) int64_t accumulate_avx2(const uint8_t* src, int64_t n,
                                                        uint32_t* sums) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256i px = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + j)));
    __m256i* s = reinterpret_cast<__m256i*>(sums + j);
    _mm256_storeu_si256(s, _mm256_add_epi32(_mm256_loadu_si256(s), px));
  }
  return j;
}

__attribute__((target("avx2"))) int64_t prefix_avx2(const uint32_t* sums, int64_t width,
                                                    uint32_t* run, uint32_t* row) {
  __m128i r = _mm_setzero_si128();
  int64_t x = 0;
  for (; x + 1 < width; ++x) {
    r = _mm_add_epi32(r, _mm_loadu_si128(reinterpret_cast<const __m128i*>(sums + 3 * x)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(row + 3 * (x + 1)), r);
  }
  uint32_t lanes[4];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), r);
  std::copy(lanes, lanes + 3, run);
  return x;
}

// Four pixels (12 values, three vectors) a step: the column sums take the 12 bytes and are
// stored back whole, then the four pixels' sums are taken out of the three vectors and added to
// the running sums, two additions in the dependency chain per four pixels (pairs first; integer
// sums are exact in any order). Each store's lane 3 is written over by the next one.
__attribute__((target("avx2"))) int64_t accumulate_prefix_avx2(const uint8_t* src, int64_t width,
                                                               uint32_t* sums, uint32_t* run,
                                                               uint32_t* row) {
  __m128i r = _mm_setzero_si128();
  int64_t x = 0;
  // The 16-byte load reads 4 bytes past the four pixels (pixel x + 4 and the first byte of
  // x + 5), and the last store writes lane 3 at row[3 (x + 5)]: both stay inside their rows
  // while two pixels follow the four.
  for (; x + 5 < width; x += 4) {
    const __m128i px = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 3 * x));
    __m128i* s = reinterpret_cast<__m128i*>(sums + 3 * x);
    const __m128i s0 = _mm_add_epi32(_mm_loadu_si128(s), _mm_cvtepu8_epi32(px));
    const __m128i s1 = _mm_add_epi32(_mm_loadu_si128(s + 1), _mm_cvtepu8_epi32(_mm_srli_si128(px, 4)));
    const __m128i s2 = _mm_add_epi32(_mm_loadu_si128(s + 2), _mm_cvtepu8_epi32(_mm_srli_si128(px, 8)));
    _mm_storeu_si128(s, s0);
    _mm_storeu_si128(s + 1, s1);
    _mm_storeu_si128(s + 2, s2);
    const __m128i p1 = _mm_alignr_epi8(s1, s0, 12);  // pixel x + 1: s0[3], s1[0], s1[1]
    const __m128i p2 = _mm_alignr_epi8(s2, s1, 8);   // pixel x + 2: s1[2], s1[3], s2[0]
    const __m128i p3 = _mm_srli_si128(s2, 4);        // pixel x + 3: s2[1], s2[2], s2[3]
    const __m128i r1 = _mm_add_epi32(r, s0);
    const __m128i r2 = _mm_add_epi32(r, _mm_add_epi32(s0, p1));
    const __m128i r3 = _mm_add_epi32(r2, p2);
    r = _mm_add_epi32(r2, _mm_add_epi32(p2, p3));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(row + 3 * (x + 1)), r1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(row + 3 * (x + 2)), r2);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(row + 3 * (x + 3)), r3);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(row + 3 * (x + 4)), r);
  }
  uint32_t lanes[4];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), r);
  std::copy(lanes, lanes + 3, run);
  return x;
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

#else

bool cpu_has_avx2() { return false; }

#endif

std::atomic<bool>& enabled() {
  static std::atomic<bool> on{cpu_has_avx2()};
  return on;
}

template <class T>
void corner_any(const T* top, const T* bottom, int64_t len, const int64_t* base, const double* g,
                const double* f, int64_t count, double gy, double fy, double* d) {
  int64_t k = 0;
#ifdef MTCNN_AVX2
  if (vector_kernels() && count > 0) {
    if constexpr (std::is_same_v<T, uint32_t>) {
      // Prefix sums grow along a row, so each row's last column holds its largest entries.
      auto largest = [len](const uint32_t* row) {
        return std::max({row[len - 3], row[len - 2], row[len - 1]});
      };
      const uint32_t most = len >= 3 ? std::max(largest(top), largest(bottom)) : 0;
      k = most <= static_cast<uint32_t>(INT_MAX)
              ? corner_avx2<false>(top, bottom, len, base, g, f, gy, fy, count, d)
              : corner_avx2<true>(top, bottom, len, base, g, f, gy, fy, count, d);
    } else {
      k = corner_avx2<false>(top, bottom, len, base, g, f, gy, fy, count, d);
    }
  }
#endif
  corner_plain(top, bottom, base, g, f, gy, fy, k, count, d);
}

}  // namespace

bool vector_kernels() { return enabled().load(std::memory_order_relaxed); }

bool set_vector_kernels(bool enable) {
  enabled().store(enable && cpu_has_avx2());
  return vector_kernels();
}

void corner_row(const uint32_t* top, const uint32_t* bottom, int64_t len, const int64_t* base,
                const double* g, const double* f, int64_t count, double gy, double fy, double* d) {
  corner_any(top, bottom, len, base, g, f, count, gy, fy, d);
}

void corner_row(const double* top, const double* bottom, int64_t len, const int64_t* base,
                const double* g, const double* f, int64_t count, double gy, double fy, double* d) {
  corner_any(top, bottom, len, base, g, f, count, gy, fy, d);
}

void cells(const double* prev, const double* cur, double inv_cell, int64_t m, float* o) {
  int64_t j = 0;
#ifdef MTCNN_AVX2
  if (vector_kernels()) j = cells_avx2(prev, cur, inv_cell, m, o);
#endif
  cells_plain(prev, cur, inv_cell, j, m, o);
}

void accumulate(const uint8_t* src, int64_t n, uint32_t* sums) {
  int64_t j = 0;
#ifdef MTCNN_AVX2
  if (vector_kernels()) j = accumulate_avx2(src, n, sums);
#endif
  accumulate_plain(src, j, n, sums);
}

void accumulate(const uint8_t* src, int64_t n, double* sums) { accumulate_plain(src, 0, n, sums); }

void prefix(const uint32_t* sums, int64_t width, uint32_t* row) {
  uint32_t run[3] = {0, 0, 0};
  int64_t x = 0;
#ifdef MTCNN_AVX2
  if (vector_kernels()) x = prefix_avx2(sums, width, run, row);
#endif
  prefix_plain(sums, x, width, run, row);
}

void prefix(const double* sums, int64_t width, double* row) {
  double run[3] = {0, 0, 0};
  prefix_plain(sums, 0, width, run, row);
}

void accumulate_prefix(const uint8_t* src, int64_t width, uint32_t* sums, uint32_t* row) {
  uint32_t run[3] = {0, 0, 0};
  int64_t x = 0;
#ifdef MTCNN_AVX2
  if (vector_kernels()) x = accumulate_prefix_avx2(src, width, sums, run, row);
#endif
  accumulate_prefix_plain(src, x, width, sums, run, row);
}

void accumulate_prefix(const uint8_t* src, int64_t width, double* sums, double* row) {
  double run[3] = {0, 0, 0};
  accumulate_prefix_plain(src, 0, width, sums, run, row);
}

}  // namespace rowops
}  // namespace mtcnn
