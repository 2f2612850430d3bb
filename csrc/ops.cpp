#include "ops.hpp"

#include "rows.hpp"

#include <algorithm>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <climits>
#include <cmath>
#include <exception>
#include <limits>
#include <memory>
#include <numeric>

namespace mtcnn {

namespace {

// Runs body(i) for i in [0, n) on `threads` OpenMP threads (exactly that many, whatever the
// calling thread's OpenMP default: a thread where torch never ran has the runtime's default,
// OMP_NUM_THREADS or every core), `chunk` indices at a time; serially without OpenMP, with one
// thread, or when there is a single chunk. No exception may leave an OpenMP region: the first
// one thrown is rethrown here, after the loop.
template <class Body>
void parallel_for(int64_t n, int64_t chunk, int threads, Body body) {
  std::exception_ptr error;
#pragma omp parallel for num_threads(threads) schedule(dynamic, chunk) if (n > chunk && threads > 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      body(i);
    } catch (...) {
#pragma omp critical(mtcnn_parallel_for_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// The calling thread's number in the OpenMP team running it (0 outside one, or without OpenMP).
int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Sampling positions of one axis for a resize from `in` to `out` pixels: half-pixel centres,
// the two neighbours clamped into [0, in - 1], and the weight of the second one.
struct Axis {
  std::vector<int64_t> lo, hi;
  std::vector<float> frac;
};

void make_axis(int64_t in, int64_t out, Axis& a) {
  a.lo.resize(out);
  a.hi.resize(out);
  a.frac.resize(out);
  const double step = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t d = 0; d < out; ++d) {
    const double s = (static_cast<double>(d) + 0.5) * step - 0.5;
    const double fl = std::floor(s);
    const int64_t i0 = static_cast<int64_t>(fl);
    a.frac[d] = static_cast<float>(s - fl);
    a.lo[d] = std::clamp<int64_t>(i0, 0, in - 1);
    a.hi[d] = std::clamp<int64_t>(i0 + 1, 0, in - 1);
  }
}

// Two computed rows of n values, kept by the source row they come from (consecutive output rows
// of a resize often need the same source rows). get(y, pinned, fill) returns row y, calling
// fill(y, dst) only when no slot holds it; the slot holding row `pinned` (still needed for the
// current output row) is never replaced.
template <class V>
class TwoRows {
 public:
  // Ready for rows of n values, none held yet (the slots keep their memory).
  void reset(int64_t n) {
    for (int k = 0; k < 2; ++k) {
      slot_[k].resize(n);
      row_[k] = -1;
    }
  }

  template <class Fill>
  const V* get(int64_t y, int64_t pinned, Fill fill) {
    for (int k = 0; k < 2; ++k)
      if (row_[k] == y) return slot_[k].data();
    int k = (row_[0] < row_[1]) ? 0 : 1;
    if (row_[k] == pinned) k = 1 - k;
    fill(y, slot_[k].data());
    row_[k] = y;
    return slot_[k].data();
  }

 private:
  std::vector<V> slot_[2];
  int64_t row_[2] = {-1, -1};
};

// The buffers of bilinear resizes (resample), kept from one to the next: a thread that cuts many
// windows allocates them once. `line` is for the caller's rows.
struct ResampleBuffers {
  Axis ax, ay;
  std::vector<int64_t> lo, hi;
  std::vector<float> fx, gx, xa, xb, line;
  TwoRows<float> cache;
};

// Bilinear resample of a virtual in_h x in_w x 3 source into a normalised, interleaved
// out_h x out_w x 3 float buffer (HWC: what torch calls channels-last, the fast layout for the
// networks). `row(y, lo, hi, xa, xb)` must write source row y's values at the interleaved
// positions lo[i] and hi[i] (i = 3 * x + c) into xa[i] and xb[i].
// Separable: every needed source row is interpolated horizontally once (top = a * gx + b * fx),
// then rows are blended vertically (v = top * gy + bottom * fy). The arithmetic and its order
// are the specification (see _reference.py) and must not change.
template <class Row>
void resample(Row row, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, float* out,
              ResampleBuffers& buf) {
  const Axis& ax = buf.ax;
  const Axis& ay = buf.ay;
  make_axis(in_w, out_w, buf.ax);
  make_axis(in_h, out_h, buf.ay);
  const int64_t n = 3 * out_w;
  // Per interleaved output position: source positions and horizontal weights.
  std::vector<int64_t>& lo = buf.lo;
  std::vector<int64_t>& hi = buf.hi;
  std::vector<float>& fx = buf.fx;
  std::vector<float>& gx = buf.gx;
  lo.resize(n);
  hi.resize(n);
  fx.resize(n);
  gx.resize(n);
  for (int64_t x = 0; x < out_w; ++x) {
    for (int c = 0; c < 3; ++c) {
      lo[3 * x + c] = 3 * ax.lo[x] + c;
      hi[3 * x + c] = 3 * ax.hi[x] + c;
      fx[3 * x + c] = ax.frac[x];
      gx[3 * x + c] = 1.0f - ax.frac[x];
    }
  }
  std::vector<float>& xa = buf.xa;
  std::vector<float>& xb = buf.xb;
  xa.resize(n);
  xb.resize(n);
  // Source row y interpolated horizontally.
  auto horizontal = [&](int64_t y, float* d) {
    row(y, lo.data(), hi.data(), xa.data(), xb.data());
    for (int64_t i = 0; i < n; ++i) d[i] = xa[i] * gx[i] + xb[i] * fx[i];
  };
  TwoRows<float>& cache = buf.cache;
  cache.reset(n);
  for (int64_t y = 0; y < out_h; ++y) {
    const float fy = ay.frac[y];
    const float gy = 1.0f - fy;
    const float* t = cache.get(ay.lo[y], -1, horizontal);
    const float* b = cache.get(ay.hi[y], ay.lo[y], horizontal);
    float* o = out + y * n;
    for (int64_t i = 0; i < n; ++i) {
      const float v = t[i] * gy + b[i] * fy;
      o[i] = (v - kMean) * kScale;
    }
  }
}

// Cell edges start + k * step (k = 0..n) clamped into [0, limit]: the table index at or left of
// each edge and the edge's fraction past it.
struct Corners {
  std::vector<int64_t> i;
  std::vector<double> f;
};

Corners make_corners(double start, double step, int64_t n, int64_t limit) {
  Corners c;
  c.i.resize(n + 1);
  c.f.resize(n + 1);
  for (int64_t k = 0; k <= n; ++k) {
    const double pos = std::clamp(start + static_cast<double>(k) * step, 0.0,
                                  static_cast<double>(limit));
    const double fl = std::min(std::floor(pos), static_cast<double>(limit - 1));
    c.i[k] = static_cast<int64_t>(fl);
    c.f[k] = pos - fl;
  }
  return c;
}

// The integral of the source up to a point is bilinear between the table's entries, so each
// output cell is four interpolated lookups: ((c11 - c10) - (c01 - c00)) / cell area. The
// arithmetic (double) and its order are the specification (see _reference._area). An output row
// y is made from the corner rows y and y + 1; corner row r is made from table rows cy.i[r] and
// cy.i[r] + 1 (each interpolated at the corner columns, then the two blended with weight
// cy.f[r]) in one pass (rowops::corner_row). cy.i never decreases with r, so the corner rows can
// be made from a stored table (area_from, the crops) or from table rows passing by in order
// (sweep_rows, the pyramid), with the same numbers.
struct AreaCells {
  AreaCells(int64_t rows, int64_t cols, double ox, double oy, int64_t in_h, int64_t in_w,
            int64_t out_h, int64_t out_w)
      : sx(static_cast<double>(in_w) / static_cast<double>(out_w)),
        sy(static_cast<double>(in_h) / static_cast<double>(out_h)),
        inv_cell(1.0 / (sx * sy)),
        cy(make_corners(oy, sy, out_h, rows)),
        corners(out_w + 1),
        n(corners * 3),
        m(out_w * 3),
        len((cols + 1) * 3),
        at(corners),
        gx(corners) {
    Corners cx = make_corners(ox, sx, out_w, cols);
    for (int64_t k = 0; k < corners; ++k) {
      at[k] = 3 * cx.i[k];
      gx[k] = 1.0 - cx.f[k];
    }
    fx = std::move(cx.f);
  }

  // Corner row r from its two table rows (each (cols + 1) x 3 entries) into dst (n values).
  template <class T>
  void corner(int64_t r, const T* top, const T* bottom, double* dst) const {
    const double fy = cy.f[r];
    rowops::corner_row(top, bottom, len, at.data(), gx.data(), fx.data(), corners, 1.0 - fy, fy,
                       dst);
  }

  // Output row y from corner rows y (prev) and y + 1 (cur), normalised.
  void emit(const double* prev, const double* cur, float* o) const {
    rowops::cells(prev, cur, inv_cell, m, o);
  }

  double sx, sy, inv_cell;
  Corners cy;
  int64_t corners, n, m;  // corner columns (out_w + 1), values per corner row and per output row
  int64_t len;            // entries per table row
  std::vector<int64_t> at;    // per corner column: its table column's first entry
  std::vector<double> fx, gx;  // per corner column: its fraction past that column, 1 - it
};

// Window k of boxes (x1, y1, x2, y2 per row) as 1-based inclusive pixel numbers, truncated
// toward zero.
void window_of(const float* boxes, int64_t k, int64_t* x1, int64_t* y1, int64_t* x2, int64_t* y2) {
  *x1 = static_cast<int64_t>(std::trunc(boxes[4 * k + 0]));
  *y1 = static_cast<int64_t>(std::trunc(boxes[4 * k + 1]));
  *x2 = static_cast<int64_t>(std::trunc(boxes[4 * k + 2]));
  *y2 = static_cast<int64_t>(std::trunc(boxes[4 * k + 3]));
}

// Asks the CPU to start loading bytes [p, p + bytes) into its cache.
inline void prefetch(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);
  if (bytes > 0) __builtin_prefetch(c + bytes - 1);
}

// The normalised value of a pixel outside the image (zero).
constexpr float kZero = (0.0f - kMean) * kScale;

// The largest entry of a table of rows x cols pixels is 255 * rows * cols: uint32 holds it
// exactly up to about 16.8 Mpx, double beyond (every entry is an integer below 2^53, so any order
// of the additions gives the same, exact entries).
bool sums_fit_uint32(int64_t rows, int64_t cols) {
  return 255.0 * static_cast<double>(rows) * static_cast<double>(cols) < 4294967295.0;
}

// The largest summed-area table the crops store whole (bytes); a larger one is swept. glibc's
// largest adaptive mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems): see
// crop_windows.
constexpr double kLargestStoredTable = 32.0 * 1024 * 1024;

// One area resize (a pyramid level, or the part of one in a stripe of the frame's rows) met by a
// sweep of a summed-area table's rows: its corner rows [first, end)
// and the output rows between them, into out (output row r - 1 from corner rows r - 1 and r).
// The output row above `first` is left to the caller (a pyramid level's row across a stripe
// edge): a target that starts past the resize's first corner row leaves corner row `first` in
// head, one that stops before its last corner row leaves its last one in tail.
struct SweepTarget {
  SweepTarget(const AreaCells& cells, float* o, int64_t f, int64_t e)
      : a(&cells), out(o), first(f), end(e) {}
  const AreaCells* a;
  float* out;
  int64_t first, end;
  std::vector<double> head, tail;
};

// A target while its rows pass: the next corner row to make, and two rows of n values, the last
// corner row made and the one being made (prev, cur; which slot holds which is swapped, the
// values never copied), held only from its first corner row to its last (the swept crops have
// thousands of targets, a few of them passing at a time). `link`: the next target waiting for
// the same table row.
struct Sweeping {
  explicit Sweeping(SweepTarget& t) : target(&t), next(t.first) {}
  double* slot(int k) { return rows.data() + k * target->a->n; }
  SweepTarget* target;
  int64_t next;
  int prev = 0, cur = 1;
  std::vector<double> rows;
  int64_t link = -1;
};

// Sweeps the summed-area table of a region of an image top to bottom, table rows t0 to t1, and
// makes every target's corner rows as their two table rows pass, and its output rows between
// them; the table is never stored, only the last two rows made. The region's pixel (y, x)
// channel c is src[y * stride + 3 * x + c], cols pixels wide. `sums` holds on entry the column
// sums of the region's rows above t0 (3 * cols values, per interleaved position); table row t
// is the horizontal prefix of the column sums of rows 0 to t - 1 (exact integers: see
// sums_fit_uint32), made only when a corner row needs it. Every target's corner rows must need
// table rows t0 to t1 only. Corner row r needs table rows cy.i[r] and cy.i[r] + 1, and cy.i
// never decreases with r: each target waits in a list for the second of the two rows its next
// corner row needs (the first is the row made just before), so a row costs only the targets it
// serves. Each corner row is the same function of the
// same two table rows whatever the region's cut into sweeps and whichever other targets share
// them, so neither changes a number (the NumPy twin makes the whole table: _reference._area).
template <class T>
void sweep_rows(const uint8_t* src, int64_t stride, int64_t cols, int64_t t0, int64_t t1,
                std::vector<T>& sums, std::vector<SweepTarget>& targets) {
  std::vector<Sweeping> state;
  state.reserve(targets.size());
  std::vector<int64_t> waiting(t1 - t0 + 1, -1);  // per table row, the first target waiting
  std::vector<char> needed(t1 - t0 + 1, 0);       // per table row, whether a corner row reads it
  auto wait = [&](int64_t k, int64_t t) {
    state[k].link = waiting[t - t0];
    waiting[t - t0] = k;
  };
  int64_t left = 0;  // targets not done
  for (SweepTarget& g : targets) {
    state.emplace_back(g);
    const std::vector<int64_t>& i = g.a->cy.i;
    for (int64_t r = g.first; r < g.end; ++r) needed[i[r] - t0] = needed[i[r] + 1 - t0] = 1;
    if (g.first < g.end) {
      wait(static_cast<int64_t>(state.size()) - 1, i[g.first] + 1);
      ++left;
    }
  }
  const int64_t w3 = 3 * cols;
  // Table rows t - 1 and t: row t in rows[t % 2], row[3 * x + c] sums channel c left of x.
  std::vector<T> rows[2] = {std::vector<T>(w3 + 3, T(0)), std::vector<T>(w3 + 3, T(0))};
  for (int64_t t = t0; t <= t1 && left > 0; ++t) {
    T* row = rows[t % 2].data();
    // The image row two table rows on: between rows the targets' corner rows run, and the
    // hardware's prefetch then falls behind the image (paired: 0.89 to 0.94x the pyramid's time).
    if (t + 1 < t1) prefetch(src + (t + 1) * stride, w3);
    if (t > t0 && needed[t - t0])
      rowops::accumulate_prefix(src + (t - 1) * stride, cols, sums.data(), row);
    else if (t > t0)
      rowops::accumulate(src + (t - 1) * stride, w3, sums.data());
    else if (needed[0])
      rowops::prefix(sums.data(), cols, row);
    const T* above = rows[(t + 1) % 2].data();  // row t - 1, made when it was needed
    for (int64_t k = waiting[t - t0]; k >= 0;) {
      Sweeping& s = state[k];
      const int64_t after = s.link;
      SweepTarget& g = *s.target;
      const AreaCells& a = *g.a;
      if (s.rows.empty()) s.rows.resize(2 * a.n);  // its first corner row
      for (; s.next < g.end && a.cy.i[s.next] + 1 == t; ++s.next) {
        double* cur = s.slot(s.cur);
        a.corner(s.next, above, row, cur);
        if (s.next == g.first) {
          if (g.first > 0) g.head.assign(cur, cur + a.n);
        } else {
          a.emit(s.slot(s.prev), cur, g.out + (s.next - 1) * a.m);
        }
        std::swap(s.prev, s.cur);
      }
      if (s.next < g.end) {
        wait(k, a.cy.i[s.next] + 1);  // past t: every corner row with cy.i = t - 1 was made
      } else {
        if (g.end < static_cast<int64_t>(a.cy.i.size()))
          g.tail.assign(s.slot(s.prev), s.slot(s.prev) + a.n);
        std::vector<double>().swap(s.rows);  // done: its rows go back
        --left;
      }
      k = after;
    }
  }
}

// The stripes a summed-area table's rows are cut into, one per thread (the pyramid's sweeps, the
// crops' stored table): at least this many source rows each (a stripe costs its starting column
// sums and, in the pyramid, a few rows per level and per level one output row made at its edge).
constexpr int64_t kStripeRows = 32;

// A region of `rows` rows cut into stripes, one per thread, of at least kStripeRows rows each
// (one stripe when it is smaller): stripe s holds rows top(s) to top(s + 1) - 1.
struct Stripes {
  Stripes(int64_t rows, int threads)
      : rows(rows), count(std::clamp<int64_t>(rows / kStripeRows, 1, std::max(threads, 1))) {}
  int64_t top(int64_t s) const { return rows * s / count; }
  int64_t rows, count;
};

// Per stripe of a region (its pixel (y, x) channel c at src[y * stride + 3 * x + c], cols pixels
// wide), the column sums of the region's rows above it: sweep_rows' starting point. Made in
// parallel over pieces of the columns, each thread reading its piece of every row above the last
// stripe once.
template <class T>
std::vector<std::vector<T>> stripe_sums(const uint8_t* src, int64_t stride, int64_t cols,
                                        const Stripes& st, int threads) {
  const int64_t w3 = 3 * cols;
  std::vector<std::vector<T>> sums(st.count, std::vector<T>(w3, T(0)));
  if (st.count > 1) {
    const int64_t pieces = std::min<int64_t>(threads, (w3 + 63) / 64);
    parallel_for(pieces, 1, threads, [&](int64_t p) {
      const int64_t j0 = w3 * p / pieces, j1 = w3 * (p + 1) / pieces;
      std::vector<T> acc(j1 - j0, T(0));  // the piece's own: no cache line shared while adding
      for (int64_t s = 1; s < st.count; ++s) {
        for (int64_t y = st.top(s - 1); y < st.top(s); ++y) {
          const uint8_t* row = src + y * stride + j0;
          for (int64_t j = 0; j < j1 - j0; ++j) acc[j] += static_cast<T>(row[j]);
        }
        std::copy(acc.begin(), acc.end(), sums[s].begin() + j0);
      }
    });
  }
  return sums;
}

// The pyramid with table entries of type T. The area-averaged levels read the frame's summed-area
// table a row at a time, in order, so it is never stored: the frame is cut into stripes of source
// rows, one per thread, each swept top to bottom (sweep_rows) from its own starting point (the
// column sums of the rows above it, made first), making the corner and output rows of every
// level whose table rows lie in it; each level's output row across a stripe edge is made last,
// from the two stripes' corner rows. Extra memory: a few rows of the table and of every level
// per stripe. Neither the stripes nor the thread count change a number.
template <class T>
void pyramid_of(const uint8_t* img, int64_t height, int64_t width, const int64_t* sizes,
                int64_t levels, float* const* out, int threads) {
  std::vector<int64_t> bilinear;
  std::vector<AreaCells> cells;
  std::vector<float*> area_out;
  for (int64_t l = 0; l < levels; ++l) {
    const int64_t oh = sizes[2 * l], ow = sizes[2 * l + 1];
    if (shrinks(height, width, oh, ow)) {
      cells.emplace_back(height, width, 0.0, 0.0, height, width, oh, ow);
      area_out.push_back(out[l]);
    } else {
      bilinear.push_back(l);
    }
  }
  const Stripes st(height, threads);
  const int64_t stripes = cells.empty() ? 0 : st.count;  // no level to sweep for: no stripe
  const int64_t w3 = 3 * width;
  std::vector<std::vector<T>> sums;
  if (stripes > 0) sums = stripe_sums<T>(img, w3, width, st, threads);
  // Per stripe, every level's corner rows whose upper table row lies in the stripe's rows.
  std::vector<std::vector<SweepTarget>> parts(stripes);
  for (int64_t s = 0; s < stripes; ++s) {
    for (size_t k = 0; k < cells.size(); ++k) {
      const std::vector<int64_t>& i = cells[k].cy.i;
      parts[s].emplace_back(cells[k], area_out[k],
                            std::lower_bound(i.begin(), i.end(), st.top(s)) - i.begin(),
                            std::lower_bound(i.begin(), i.end(), st.top(s + 1)) - i.begin());
    }
  }
  // Tasks: the bilinear levels whole (rare: only when the smallest face asked for is under
  // 12 px), then the stripes.
  const int64_t nb = static_cast<int64_t>(bilinear.size());
  parallel_for(nb + stripes, 1, threads, [&](int64_t task) {
    if (task < nb) {
      const int64_t l = bilinear[task];
      resize_normalize(img, height, width, sizes[2 * l], sizes[2 * l + 1], out[l]);
      return;
    }
    const int64_t s = task - nb;
    sweep_rows(img, w3, width, st.top(s), st.top(s + 1), sums[s], parts[s]);
  });
  // Each level's output rows across stripe edges: the last corner row of a stripe and the first
  // of the next stripe that has any.
  for (size_t k = 0; k < cells.size(); ++k) {
    const SweepTarget* above = nullptr;
    for (int64_t s = 0; s < stripes; ++s) {
      const SweepTarget& e = parts[s][k];
      if (e.first == e.end) continue;
      if (above)
        cells[k].emit(above->tail.data(), e.head.data(), area_out[k] + (e.first - 1) * cells[k].m);
      above = &e;
    }
  }
}

// The summed-area table of the image region of rows x cols pixels at (x0, y0), stored whole:
// (rows + 1) x (cols + 1) x 3 entries, row 0 and column 0 zero, made row by row like the sweep's,
// a stripe of rows per thread (integer sums: the same entries whatever the cut).
template <class T>
std::unique_ptr<T[]> region_table(const uint8_t* img, int64_t width, int64_t x0, int64_t y0,
                                  int64_t rows, int64_t cols, int threads) {
  const int64_t len = (cols + 1) * 3;
  std::unique_ptr<T[]> table(new T[(rows + 1) * len]);  // every entry is written below
  std::fill(table.get(), table.get() + len, T(0));
  const uint8_t* src = img + (y0 * width + x0) * 3;
  const Stripes st(rows, threads);
  std::vector<std::vector<T>> sums = stripe_sums<T>(src, width * 3, cols, st, threads);
  parallel_for(st.count, 1, threads, [&](int64_t s) {
    for (int64_t y = st.top(s); y < st.top(s + 1); ++y) {
      T* row = table.get() + (y + 1) * len;
      std::fill(row, row + 3, T(0));
      rowops::accumulate_prefix(src + y * width * 3, cols, sums[s].data(), row);
    }
  });
  return table;
}

// The area resize `a` (its corner rows: AreaCells) from a stored table, into out.
template <class T>
void area_from(const T* table, int64_t len, const AreaCells& a, float* out) {
  std::vector<double> prev(a.n), cur(a.n);
  auto corner_row = [&](int64_t r, double* dst) {
    const T* top = table + a.cy.i[r] * len;
    a.corner(r, top, top + len, dst);
  };
  corner_row(0, prev.data());
  for (int64_t y = 0; y + 1 < static_cast<int64_t>(a.cy.i.size()); ++y) {
    corner_row(y + 1, cur.data());
    a.emit(prev.data(), cur.data(), out + y * a.m);
    std::swap(prev, cur);
  }
}

// The area-averaged crop windows ids[0 .. count) (window_of, cut as crop_windows says) from the
// summed-area table of the image region of rows x cols pixels at (x0, y0), swept (sweep_rows)
// from the first table row any of them needs, never stored.
template <class T>
void crop_area(const uint8_t* img, int64_t width, int64_t x0, int64_t y0, int64_t rows,
               int64_t cols, const float* boxes, const int64_t* ids, int64_t count, int64_t size,
               float* out) {
  std::vector<AreaCells> cells;
  cells.reserve(count);  // the targets point into it
  std::vector<SweepTarget> targets;
  targets.reserve(count);
  int64_t t0 = rows;
  for (int64_t j = 0; j < count; ++j) {
    const int64_t k = ids[j];
    int64_t x1, y1, x2, y2;
    window_of(boxes, k, &x1, &y1, &x2, &y2);
    // Window pixel (r, c) is image pixel (y1 - 1 + r, x1 - 1 + c).
    cells.emplace_back(rows, cols, static_cast<double>(x1 - 1 - x0),
                       static_cast<double>(y1 - 1 - y0), y2 - y1 + 1, x2 - x1 + 1, size, size);
    targets.emplace_back(cells.back(), out + k * 3 * size * size, 0, size + 1);
    t0 = std::min(t0, cells.back().cy.i[0]);
  }
  const int64_t stride = 3 * width;
  const uint8_t* src = img + y0 * stride + 3 * x0;
  std::vector<T> sums(3 * cols, T(0));
  for (int64_t t = 0; t < t0; ++t) rowops::accumulate(src + t * stride, 3 * cols, sums.data());
  sweep_rows(src, stride, cols, t0, rows, sums, targets);
}

}  // namespace

void pyramid(const uint8_t* img, int64_t height, int64_t width, const int64_t* sizes,
             int64_t levels, float* const* out, int threads) {
  if (sums_fit_uint32(height, width))
    pyramid_of<uint32_t>(img, height, width, sizes, levels, out, threads);
  else
    pyramid_of<double>(img, height, width, sizes, levels, out, threads);
}

std::vector<double> pyramid_scales(int64_t height, int64_t width, double min_face, double factor) {
  std::vector<double> scales;
  const double m = 12.0 / min_face;
  double min_side = static_cast<double>(std::min(height, width)) * m;
  int k = 0;
  while (min_side >= 12.0) {
    scales.push_back(m * std::pow(factor, k));
    min_side *= factor;
    ++k;
  }
  return scales;
}

void resize_normalize(const uint8_t* img, int64_t height, int64_t width, int64_t out_h,
                      int64_t out_w, float* out) {
  const int64_t stride = width * 3;
  const int64_t n = out_w * 3;
  auto row = [=](int64_t y, const int64_t* lo, const int64_t* hi, float* xa, float* xb) {
    const uint8_t* src = img + y * stride;
    for (int64_t i = 0; i < n; ++i) {
      xa[i] = static_cast<float>(src[lo[i]]);
      xb[i] = static_cast<float>(src[hi[i]]);
    }
  };
  ResampleBuffers buf;
  resample(row, height, width, out_h, out_w, out, buf);
}

void crop_windows(const uint8_t* img, int64_t height, int64_t width, const float* boxes,
                  int64_t n, int64_t size, float* out, int threads) {
  const int64_t stride = width * 3;
  const int64_t per_window = 3 * size * size;
  // The area-averaged windows read the summed-area table of the part of the image they cover
  // (12 bytes per pixel, 24 past 16.8 Mpx). Up to kLargestStoredTable it is stored whole: swept
  // a row at a time, as the pyramid reads the frame's, it gives the same numbers faster (0.94x
  // the time at 1 thread), but from 1280x720 up it is the largest block a detection frees, and
  // so what keeps glibc's adaptive mmap and trim thresholds above the heap excursion of two live
  // 4 MB activations: without it a stream of one size faulted 1,500 to 5,000 pages per frame
  // again in 6 of 30 processes (benchmarks/README.md, issues #18, #19). A larger table is swept:
  // glibc serves a block past its largest threshold (32 MB) with mmap of its own and freeing it
  // moves no threshold, so storing it would only cost its memory (576 MB for a 6000 x 4000
  // frame's R-Net windows) and time (5x the sweep's there at 1 thread, 4x at 2).
  std::vector<int64_t> area;  // the area-averaged windows
  int64_t rx0 = INT64_MAX, ry0 = INT64_MAX, rx1 = INT64_MIN, ry1 = INT64_MIN;
  for (int64_t k = 0; k < n; ++k) {
    int64_t x1, y1, x2, y2;
    window_of(boxes, k, &x1, &y1, &x2, &y2);
    if (shrinks(y2 - y1 + 1, x2 - x1 + 1, size, size)) {  // size >= 1: never an empty window
      area.push_back(k);
      rx0 = std::min(rx0, x1 - 1);
      ry0 = std::min(ry0, y1 - 1);
      rx1 = std::max(rx1, x2);
      ry1 = std::max(ry1, y2);
    }
  }
  int64_t rows = 0, cols = 0;
  if (rx0 != INT64_MAX) {
    rx0 = std::clamp<int64_t>(rx0, 0, width);
    ry0 = std::clamp<int64_t>(ry0, 0, height);
    rows = std::clamp<int64_t>(ry1, ry0, height) - ry0;
    cols = std::clamp<int64_t>(rx1, rx0, width) - rx0;
  }
  const bool fits = sums_fit_uint32(rows, cols);
  const bool swept = rows > 0 && cols > 0 &&
                     static_cast<double>(rows + 1) * static_cast<double>(cols + 1) * 3.0 *
                             (fits ? sizeof(uint32_t) : sizeof(double)) >
                         kLargestStoredTable;
  std::unique_ptr<uint32_t[]> small;
  std::unique_ptr<double[]> large;
  if (swept) {
    // One sweep per thread, over a run of the windows taken in the order of their top rows (so
    // that each sweep covers few rows); the other windows are cut below.
    std::stable_sort(area.begin(), area.end(),
                     [&](int64_t a, int64_t b) { return boxes[4 * a + 1] < boxes[4 * b + 1]; });
    const int64_t na = static_cast<int64_t>(area.size());
    const int64_t sweeps = std::min<int64_t>(std::max(threads, 1), na);
    parallel_for(sweeps, 1, threads, [&](int64_t task) {
      const int64_t a0 = na * task / sweeps, a1 = na * (task + 1) / sweeps;
      if (fits)
        crop_area<uint32_t>(img, width, rx0, ry0, rows, cols, boxes, area.data() + a0, a1 - a0,
                            size, out);
      else
        crop_area<double>(img, width, rx0, ry0, rows, cols, boxes, area.data() + a0, a1 - a0,
                          size, out);
    });
  } else if (rows > 0 && cols > 0) {
    if (fits)
      small = region_table<uint32_t>(img, width, rx0, ry0, rows, cols, threads);
    else
      large = region_table<double>(img, width, rx0, ry0, rows, cols, threads);
  }
  std::vector<ResampleBuffers> buffers(std::max(threads, 1));  // one per OpenMP thread
  parallel_for(n, 4, threads, [&](int64_t k) {
    int64_t x1, y1, x2, y2;
    window_of(boxes, k, &x1, &y1, &x2, &y2);
    const int64_t crop_w = x2 - x1 + 1;
    const int64_t crop_h = y2 - y1 + 1;
    float* dst = out + k * per_window;
    if (crop_w <= 0 || crop_h <= 0) {  // an empty window is all zero-fill
      std::fill(dst, dst + per_window, kZero);
      return;
    }
    if (shrinks(crop_h, crop_w, size, size)) {
      if (rows == 0 || cols == 0) {  // nothing of the image: all zero-fill
        std::fill(dst, dst + per_window, kZero);
        return;
      }
      if (swept) return;  // cut by the sweeps above
      // Window pixel (r, c) is image pixel (y1 - 1 + r, x1 - 1 + c).
      const AreaCells a(rows, cols, static_cast<double>(x1 - 1 - rx0),
                        static_cast<double>(y1 - 1 - ry0), crop_h, crop_w, size, size);
      if (fits)
        area_from(small.get(), (cols + 1) * 3, a, dst);
      else
        area_from(large.get(), (cols + 1) * 3, a, dst);
      return;
    }
    ResampleBuffers& buf = buffers[thread_index()];
    // Window pixel (r, c) is image pixel (y1 - 1 + r, x1 - 1 + c), zero outside the image.
    // In interleaved units the window's column offset is 3 * (x1 - 1).
    const int64_t oy = y1 - 1, ox3 = 3 * (x1 - 1), width3 = 3 * width;
    const int64_t n3 = 3 * size;
    auto outside = [&](int64_t r, float* xa, float* xb) {
      const int64_t yy = oy + r;
      if (yy >= 0 && yy < height) return false;
      std::fill(xa, xa + n3, 0.0f);
      std::fill(xb, xb + n3, 0.0f);
      return true;
    };
    if (crop_w <= size) {
      // Enlarged across (the usual case: windows are square): a window row, at most as long as
      // an output row, is converted to float once (zeros outside the image) and sampled by
      // index, without a test or a conversion per value (about 0.77x the time of the code
      // below). The window's columns [in0, in1) lie inside the image.
      const int64_t w3 = 3 * crop_w;
      const int64_t in0 = std::clamp<int64_t>(-ox3, 0, w3);
      const int64_t in1 = std::clamp<int64_t>(width3 - ox3, in0, w3);
      // The window's image rows, an image row apart: a stride the hardware does not prefetch.
      for (int64_t r = std::max<int64_t>(0, -oy); r < crop_h && oy + r < height; ++r)
        prefetch(img + (oy + r) * stride + ox3 + in0, in1 - in0);
      std::vector<float>& line = buf.line;
      line.assign(w3, 0.0f);
      auto row = [&](int64_t r, const int64_t* lo, const int64_t* hi, float* xa, float* xb) {
        if (outside(r, xa, xb)) return;
        const uint8_t* src = img + (oy + r) * stride;
        for (int64_t j = in0; j < in1; ++j) line[j] = static_cast<float>(src[ox3 + j]);
        for (int64_t i = 0; i < n3; ++i) {
          xa[i] = line[lo[i]];
          xb[i] = line[hi[i]];
        }
      };
      resample(row, crop_h, crop_w, size, size, dst, buf);
      return;
    }
    // Shrunk across and enlarged down (a wide, low window; any width up to the coordinates'
    // limit): each sampled value is read where it lies, zero outside the image.
    auto row = [&](int64_t r, const int64_t* lo, const int64_t* hi, float* xa, float* xb) {
      if (outside(r, xa, xb)) return;
      const uint8_t* src = img + (oy + r) * stride;
      for (int64_t i = 0; i < n3; ++i) {
        const int64_t xl = ox3 + lo[i], xh = ox3 + hi[i];
        xa[i] = xl >= 0 && xl < width3 ? static_cast<float>(src[xl]) : 0.0f;
        xb[i] = xh >= 0 && xh < width3 ? static_cast<float>(src[xh]) : 0.0f;
      }
    };
    resample(row, crop_h, crop_w, size, size, dst, buf);
  });
}

void generate_windows(const float* scores, const float* reg, const int64_t* reg_strides,
                      int64_t h, int64_t w, int64_t first_row, double scale, float threshold,
                      std::vector<float>& boxes, std::vector<float>& out_scores,
                      std::vector<float>& out_reg) {
  constexpr int64_t kBlock = 16;  // cells tested together (a loop the compiler vectorises)
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const int64_t i = y * w + x;
      if (x % kBlock == 0 && x + kBlock <= w) {  // most cells fail: skip a block none passes
        bool any = false;
        for (int64_t j = 0; j < kBlock; ++j) any |= scores[i + j] >= threshold;
        if (!any) {
          x += kBlock - 1;
          continue;
        }
      }
      if (!(scores[i] >= threshold)) continue;
      const double row = static_cast<double>(first_row + y);  // the cell's row in the whole map
      boxes.push_back(static_cast<float>(std::trunc((2.0 * x + 1.0) / scale)));
      boxes.push_back(static_cast<float>(std::trunc((2.0 * row + 1.0) / scale)));
      boxes.push_back(static_cast<float>(std::trunc((2.0 * x + 12.0) / scale)));
      boxes.push_back(static_cast<float>(std::trunc((2.0 * row + 12.0) / scale)));
      out_scores.push_back(scores[i]);
      const float* r = reg + y * reg_strides[1] + x * reg_strides[2];
      for (int j = 0; j < 4; ++j) out_reg.push_back(r[j * reg_strides[0]]);
    }
  }
}

namespace {

// Overlap of boxes a and b (+1 areas): intersection over union or over the smaller area, 0 where
// that denominator is not positive.
inline float box_overlap(const float* a, const float* b, float area_a, float area_b, Overlap mode) {
  const float xx1 = std::max(a[0], b[0]);
  const float yy1 = std::max(a[1], b[1]);
  const float xx2 = std::min(a[2], b[2]);
  const float yy2 = std::min(a[3], b[3]);
  const float iw = std::max(0.0f, xx2 - xx1 + 1.0f);
  const float ih = std::max(0.0f, yy2 - yy1 + 1.0f);
  const float inter = iw * ih;
  const float denom = mode == Overlap::Min ? std::min(area_a, area_b) : area_a + area_b - inter;
  return denom > 0.0f ? inter / denom : 0.0f;
}

}  // namespace

// Kept boxes of one size class, indexed by the grid cell of their top-left corner: cells at least
// as large as the class's largest box, so that a box intersecting a given one has its corner in
// the cells that one's extent reaches (plus one cell of margin against rounding).
struct KeptGrid {
  double min_x = 0, min_y = 0, max_x = 0, max_y = 0;  // the class's top-left corners span
  double max_w = 0, max_h = 0, gx = 1, gy = 1;        // its largest box; cell sizes
  float min_area = 0, max_area = 0;                   // its boxes' areas span
  int64_t nx = 1, ny = 1;
  std::vector<int64_t> head;

  int64_t cell_x(double v) const { return clamp_cell((v - min_x) / gx, nx); }
  int64_t cell_y(double v) const { return clamp_cell((v - min_y) / gy, ny); }
  static int64_t clamp_cell(double c, int64_t count) {
    return static_cast<int64_t>(std::min(std::max(std::floor(c), 0.0), double(count - 1)));
  }
};

// Greedy NMS, computed as: in score order, a box is kept unless a box kept before it overlaps it
// by more than the threshold (the same boxes as dropping, for each kept box, every later one it
// overlaps). A threshold >= 0 can only be exceeded by boxes that intersect, so each box is
// compared only with the kept boxes that can intersect it, found in per-size-class grids (sizes
// within a factor of two share one): the same comparisons that can drop a box, in the same
// order, without the others; in union mode, classes whose areas are too far from the box's to
// overlap it by more than the threshold are passed over as well (windows of many pyramid levels
// together: 3x faster). Dense windows (P-Net at a low threshold: 10^5 per pyramid level, of every
// level's size together) cost time in proportion to the boxes, not to their square.
std::vector<int64_t> nms(const float* boxes, const float* scores, int64_t n, float threshold,
                         Overlap mode) {
  std::vector<int64_t> keep;
  if (n <= 0) return keep;
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [scores](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  // A negative threshold (not reachable from Python) drops boxes apart too: one class, one cell.
  const bool one_cell = !(threshold >= 0.0f);
  std::vector<float> area(n);
  std::vector<int> cls(n);
  double max_abs = 1.0;
  constexpr int kClasses = 64;
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 4 * i;
    area[i] = (b[2] - b[0] + 1.0f) * (b[3] - b[1] + 1.0f);
    const double side = std::max({double(b[2]) - b[0] + 1.0, double(b[3]) - b[1] + 1.0, 1.0});
    cls[i] = one_cell ? 0 : std::min(std::ilogb(side), kClasses - 1);
    for (int j = 0; j < 4; ++j) max_abs = std::max(max_abs, std::fabs(double(b[j])));
  }
  std::vector<int64_t> count(kClasses, 0);
  std::vector<KeptGrid> grids(kClasses);
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 4 * i;
    KeptGrid& g = grids[cls[i]];
    if (count[cls[i]]++ == 0) {
      g.min_x = g.max_x = b[0];
      g.min_y = g.max_y = b[1];
      g.min_area = g.max_area = area[i];
    }
    g.min_area = std::min(g.min_area, area[i]);
    g.max_area = std::max(g.max_area, area[i]);
    g.min_x = std::min(g.min_x, double(b[0]));
    g.max_x = std::max(g.max_x, double(b[0]));
    g.min_y = std::min(g.min_y, double(b[1]));
    g.max_y = std::max(g.max_y, double(b[1]));
    g.max_w = std::max(g.max_w, double(b[2]) - b[0] + 1.0);
    g.max_h = std::max(g.max_h, double(b[3]) - b[1] + 1.0);
  }
  std::vector<int> used;
  const double floor_size = std::max(1.0, max_abs * std::ldexp(1.0, -20));  // >> float rounding
  for (int c = 0; c < kClasses; ++c) {
    if (!count[c]) continue;
    used.push_back(c);
    KeptGrid& g = grids[c];
    if (one_cell) {
      g.gx = g.gy = std::numeric_limits<double>::infinity();
    } else {
      g.gx = std::max({g.max_w, floor_size, (g.max_x - g.min_x) / 2048.0});
      g.gy = std::max({g.max_h, floor_size, (g.max_y - g.min_y) / 2048.0});
    }
    for (;;) {  // at most about 4 cells per box of the class
      g.nx = static_cast<int64_t>((g.max_x - g.min_x) / g.gx) + 1;
      g.ny = static_cast<int64_t>((g.max_y - g.min_y) / g.gy) + 1;
      if (g.nx * g.ny <= 4 * count[c] + 64) break;
      g.gx *= 2.0;
      g.gy *= 2.0;
    }
    g.head.assign(g.nx * g.ny, -1);
  }
  // Union overlaps are at most the ratio of the two areas (the intersection is at most the
  // smaller one, the union at least the larger), and so are the computed ones but for rounding
  // (every step is monotonic; rounding adds less than 2^-21 of the ratio, far inside the slack
  // of 1e-5): a class whose areas all lie too far from a box's cannot drop it, and is not
  // searched. A box of non-positive area, and a class holding one, are searched as before.
  const bool by_area = mode == Overlap::Union && threshold >= 0.0f;
  const double bound = static_cast<double>(threshold) / (1.0 + 1e-5);
  auto may_exceed = [bound](float a, float lo, float hi) {
    if (!(a > 0.0f && lo > 0.0f)) return true;
    const double ratio = a > hi ? double(hi) / a : a < lo ? double(a) / lo : 1.0;
    return ratio > bound;
  };
  std::vector<int64_t> next(n, -1);
  for (int64_t oj = 0; oj < n; ++oj) {
    const int64_t j = order[oj];
    const float* bj = boxes + 4 * j;
    bool dropped = false;
    for (size_t u = 0; u < used.size() && !dropped; ++u) {
      const KeptGrid& g = grids[used[u]];
      if (by_area && !may_exceed(area[j], g.min_area, g.max_area)) continue;
      // A box i of this class intersects bj only if bj[0] - max_w < x1 of i < bj[2] + 1 (and so in y).
      const int64_t cx0 = std::max<int64_t>(g.cell_x(bj[0] - g.max_w) - 1, 0);
      const int64_t cx1 = std::min(g.cell_x(bj[2] + 1.0) + 1, g.nx - 1);
      const int64_t cy0 = std::max<int64_t>(g.cell_y(bj[1] - g.max_h) - 1, 0);
      const int64_t cy1 = std::min(g.cell_y(bj[3] + 1.0) + 1, g.ny - 1);
      for (int64_t cy = cy0; cy <= cy1 && !dropped; ++cy) {
        for (int64_t cx = cx0; cx <= cx1 && !dropped; ++cx) {
          for (int64_t i = g.head[cy * g.nx + cx]; i >= 0; i = next[i]) {
            if (box_overlap(boxes + 4 * i, bj, area[i], area[j], mode) > threshold) {
              dropped = true;
              break;
            }
          }
        }
      }
    }
    if (dropped) continue;
    keep.push_back(j);
    KeptGrid& g = grids[cls[j]];
    const int64_t c = g.cell_y(bj[1]) * g.nx + g.cell_x(bj[0]);
    next[j] = g.head[c];
    g.head[c] = j;
  }
  return keep;
}

void calibrate(const float* boxes, const float* reg, int64_t n, bool plus_one, float* out) {
  const float one = plus_one ? 1.0f : 0.0f;
  for (int64_t k = 0; k < n; ++k) {
    const float* b = boxes + 4 * k;
    const float* r = reg + 4 * k;
    const float w = b[2] - b[0] + one;
    const float h = b[3] - b[1] + one;
    out[4 * k + 0] = b[0] + r[0] * w;
    out[4 * k + 1] = b[1] + r[1] * h;
    out[4 * k + 2] = b[2] + r[2] * w;
    out[4 * k + 3] = b[3] + r[3] * h;
  }
}

void square(const float* boxes, int64_t n, float* out) {
  for (int64_t k = 0; k < n; ++k) {
    const float* b = boxes + 4 * k;
    const float w = b[2] - b[0];
    const float h = b[3] - b[1];
    const float side = std::max(w, h);
    const float x1 = b[0] + w * 0.5f - side * 0.5f;
    const float y1 = b[1] + h * 0.5f - side * 0.5f;
    out[4 * k + 0] = std::trunc(x1);
    out[4 * k + 1] = std::trunc(y1);
    out[4 * k + 2] = std::trunc(x1 + side);
    out[4 * k + 3] = std::trunc(y1 + side);
  }
}

}  // namespace mtcnn
