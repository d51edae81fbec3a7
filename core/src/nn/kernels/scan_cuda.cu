// The spatial scan's per-step kernels on CUDA (compiled at run time with NVRTC; see scan_cuda.rs).
//
// Layouts (all f32, contiguous, row-major):
//   xi   [K_in, N, T, GD]   input projection (K_in = K, or 1 when every direction shares it)
//   h    [K, N, T, D]       hidden states (GRU: the state s_t)
//   ln   [K, 2, D]          LayerNorm gain and bias
// and per-step scratch rows, one row per (direction k, sequence n):
//   hp   [K, N, D]          previous state (forward: the state just computed)
//   s    [K, N, GD]         products from cuBLAS (h_{t-1} V^T and friends)
//   da   [K, N, GD]         gradient of the pre-activations (backward)
// Step i of direction k works at position t = i, or T-1-i when bit k of `rev` is set.
// The products between kernels run in cuBLAS; these kernels do everything elementwise or per row.

#define IDX_SETUP                                                          \
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;                \
    if (idx >= (long)K * N * D) return;                                    \
    int j = (int)(idx % D);                                                \
    long kn = idx / D;                                                     \
    int k = (int)(kn / N);                                                 \
    int t = step_t(i, T, rev, k);

__device__ __forceinline__ int step_t(int i, int T, unsigned rev, int k) {
    return ((rev >> k) & 1u) ? T - 1 - i : i;
}

__device__ __forceinline__ float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

// Row start of xi for row kn at position t (gd: row width of xi).
__device__ __forceinline__ const float* xi_row(const float* xi, int xi_shared, long kn, int N, int T, int t, int gd) {
    long n = kn % N;
    long k = xi_shared ? 0 : kn / N;
    return xi + ((k * N + n) * T + t) * (long)gd;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); `red` holds 33 floats.
__device__ float block_sum(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    __syncthreads();
    if (l == 0) red[w] = v;
    __syncthreads();
    if (w == 0) {
        int nw = blockDim.x >> 5;
        v = l < nw ? red[l] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (l == 0) red[32] = v;
    }
    __syncthreads();
    return red[32];
}

// For this block's row: n = LN(x + srow) (srow unread when first), normalised in place in `n`
// (D floats of shared memory); returns the reciprocal standard deviation. `red` holds 33 floats.
// Each thread keeps the columns j = threadIdx.x + m·blockDim.x, here and in its caller.
__device__ float ln_row(const float* x, const float* srow, int first, float* n, int D, float eps, float* red) {
    float sum = 0.0f;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        float v = x[j] + (first ? 0.0f : srow[j]);
        n[j] = v;
        sum += v;
    }
    float mean = block_sum(sum, red) / D;
    float sq = 0.0f;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        float c = n[j] - mean;
        sq += c * c;
    }
    float r = 1.0f / sqrtf(block_sum(sq, red) / D + eps);
    for (int j = threadIdx.x; j < D; j += blockDim.x) n[j] = (n[j] - mean) * r;
    return r;
}

// ---------------------------------------------------------------- forward

// Vanilla: h_t = relu(xi_t + h_{t-1} V^T), with s = h_{t-1} V^T (unread when first).
extern "C" __global__ void fwd_vanilla(const float* xi, int xi_shared, const float* s, float* hp, float* h,
                                       int K, int N, int T, int D, int i, unsigned rev, int first) {
    IDX_SETUP
    float a = xi_row(xi, xi_shared, kn, N, T, t, D)[j] + (first ? 0.0f : s[idx]);
    a = fmaxf(a, 0.0f);
    hp[idx] = a;
    h[(kn * T + t) * D + j] = a;
}

// Vanilla + LayerNorm, one block per row: h_t = relu(gain * LN(xi_t + s) + bias).
// Dynamic shared memory: D + 33 floats.
extern "C" __global__ void fwd_ln(const float* xi, int xi_shared, const float* s, const float* ln, float* hp,
                                  float* h, int K, int N, int T, int D, int i, unsigned rev, int first, float eps) {
    extern __shared__ float sh[];
    float* n = sh;
    float* red = sh + D;
    long kn = blockIdx.x;
    int k = (int)(kn / N);
    int t = step_t(i, T, rev, k);
    ln_row(xi_row(xi, xi_shared, kn, N, T, t, D), s + kn * D, first, n, D, eps, red);
    const float* gain = ln + (long)k * 2 * D;
    const float* bias = gain + D;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        float y = fmaxf(gain[j] * n[j] + bias[j], 0.0f);
        hp[kn * D + j] = y;
        h[(kn * T + t) * D + j] = y;
    }
}

// GRU gates z and r (into zr_sig [K, N, 2D]) and e = s_{t-1} * r (zero when first), from
// zr = s_{t-1} [W_z; W_r]^T ([K, N, 2D], unread when first).
extern "C" __global__ void gru_gates(const float* xi, int xi_shared, const float* zr, const float* hp,
                                     float* zr_sig, float* e, int K, int N, int T, int D, int i, unsigned rev,
                                     int first) {
    IDX_SETUP
    const float* x = xi_row(xi, xi_shared, kn, N, T, t, 3 * D);
    long row2 = kn * 2 * D;
    float z = sigm(x[j] + (first ? 0.0f : zr[row2 + j]));
    float r = sigm(x[D + j] + (first ? 0.0f : zr[row2 + D + j]));
    zr_sig[row2 + j] = z;
    zr_sig[row2 + D + j] = r;
    e[idx] = first ? 0.0f : hp[idx] * r;
}

// GRU state: s_t = (1 - z) relu(xi_h + he) + z s_{t-1}, he = e W_h^T (unread when first).
extern "C" __global__ void gru_out(const float* xi, int xi_shared, const float* he, const float* zr_sig, float* hp,
                                   float* h, int K, int N, int T, int D, int i, unsigned rev, int first) {
    IDX_SETUP
    const float* x = xi_row(xi, xi_shared, kn, N, T, t, 3 * D);
    float hc = fmaxf(x[2 * D + j] + (first ? 0.0f : he[idx]), 0.0f);
    float z = zr_sig[kn * 2 * D + j];
    float prev = first ? 0.0f : hp[idx];
    float st = (1.0f - z) * hc + z * prev;
    hp[idx] = st;
    h[(kn * T + t) * D + j] = st;
}

// ---------------------------------------------------------------- backward

// hp = h at the previous step in scan order (zero at the first), g = grad_h at t + carry.
extern "C" __global__ void bwd_prep(const float* h, const float* grad, const float* carry, float* hp, float* g,
                                    int K, int N, int T, int D, int i, unsigned rev) {
    IDX_SETUP
    hp[idx] = i > 0 ? h[(kn * T + step_t(i - 1, T, rev, k)) * D + j] : 0.0f;
    g[idx] = grad[(kn * T + t) * D + j] + carry[idx];
}

// Vanilla: da = g * 1[h_t > 0].
extern "C" __global__ void bwd_vanilla(const float* h, const float* g, float* da, int K, int N, int T, int D, int i,
                                       unsigned rev) {
    IDX_SETUP
    da[idx] = h[(kn * T + t) * D + j] > 0.0f ? g[idx] : 0.0f;
}

// Vanilla + LayerNorm, one block per row: recomputes a = xi_t + s, its normalisation n and rstd,
// then da, and adds this row's share of the gain and bias gradients into dln_rows [K, N, 2D].
// Dynamic shared memory: 2D + 33 floats.
extern "C" __global__ void bwd_ln(const float* xi, int xi_shared, const float* s, const float* ln, const float* g,
                                  float* da, float* dln_rows, int K, int N, int T, int D, int i, unsigned rev,
                                  int first, float eps) {
    extern __shared__ float sh[];
    float* nrm = sh;
    float* dn = sh + D;
    float* red = sh + 2 * D;
    long kn = blockIdx.x;
    int k = (int)(kn / N);
    int t = step_t(i, T, rev, k);
    float r = ln_row(xi_row(xi, xi_shared, kn, N, T, t, D), s + kn * D, first, nrm, D, eps, red);
    const float* gain = ln + (long)k * 2 * D;
    const float* bias = gain + D;
    float* dg = dln_rows + kn * 2 * D;
    float s1 = 0.0f, s2 = 0.0f;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        float nj = nrm[j];
        float y = gain[j] * nj + bias[j];
        float dy = y > 0.0f ? g[kn * D + j] : 0.0f;
        dg[j] += dy * nj;
        dg[D + j] += dy;
        float d = dy * gain[j];
        dn[j] = d;
        s1 += d;
        s2 += d * nj;
    }
    float mean_dn = block_sum(s1, red) / D;
    float mean_dnn = block_sum(s2, red) / D;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        da[kn * D + j] = r * (dn[j] - mean_dn - nrm[j] * mean_dnn);
    }
}

// GRU, part 1: with z, r in zr_sig and he = e W_h^T (unread when first), the gradients of the z
// and candidate pre-activations into da [K, N, 3D]; the reset gate's is zero when first.
extern "C" __global__ void gru_bwd1(const float* xi, int xi_shared, const float* he, const float* zr_sig,
                                    const float* hp, const float* g, float* da, int K, int N, int T, int D, int i,
                                    unsigned rev, int first) {
    IDX_SETUP
    const float* x = xi_row(xi, xi_shared, kn, N, T, t, 3 * D);
    float hc = fmaxf(x[2 * D + j] + (first ? 0.0f : he[idx]), 0.0f);
    float z = zr_sig[kn * 2 * D + j];
    float gj = g[idx];
    float* row = da + kn * 3 * D;
    row[j] = gj * (hp[idx] - hc) * z * (1.0f - z);
    row[2 * D + j] = hc > 0.0f ? gj * (1.0f - z) : 0.0f;
    if (first) row[D + j] = 0.0f;
}

// GRU, part 2 (when there is a previous state): dsr = da_h W_h (in `dsr`), the reset gate's
// gradient, and carry = g z + dsr r (the products add [da_z, da_r] [W_z; W_r] afterwards).
extern "C" __global__ void gru_bwd2(const float* zr_sig, const float* hp, const float* g, const float* dsr, float* da,
                                    float* carry, int K, int N, int T, int D, int i, unsigned rev) {
    IDX_SETUP
    float z = zr_sig[kn * 2 * D + j];
    float r = zr_sig[kn * 2 * D + D + j];
    float d = dsr[idx];
    da[kn * 3 * D + D + j] = d * hp[idx] * r * (1.0f - r);
    carry[idx] = g[idx] * z + d * r;
}

// dxi at step t = da (gd: row width).
extern "C" __global__ void scatter_da(const float* da, float* dxi, int K, int N, int T, int gd, int i, unsigned rev) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)K * N * gd) return;
    int c = (int)(idx % gd);
    long kn = idx / gd;
    int k = (int)(kn / N);
    int t = step_t(i, T, rev, k);
    dxi[(kn * T + t) * gd + c] = da[idx];
}
