// The reference dense CRF (Krähenbühl's densecrf, as vendored by pydensecrf) on one problem,
// for fixtures and timings: `reference IN OUT ITERATIONS GSXY GW BSXY BSRGB BW`.
// IN:  int32 width, height, classes; uint8 rgb[height][width][3]; float32 scores[classes][height][width]
// OUT: int32 width, height, classes; float32 q[classes][height][width]; on stdout the time in
// ms and the peak resident size in bytes.
// Unary = -log softmax(scores); Potts compatibility; DIAG_KERNEL and NORMALIZE_SYMMETRIC, as
// pydensecrf's DenseCRF2D.addPairwiseGaussian/addPairwiseBilateral default to.
#include "densecrf.h"
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char **argv) {
    if (argc != 9) { std::fprintf(stderr, "usage: reference IN OUT IT GSXY GW BSXY BSRGB BW\n"); return 2; }
    FILE *f = std::fopen(argv[1], "rb");
    if (!f) { std::perror(argv[1]); return 1; }
    int dims[3];
    if (std::fread(dims, 4, 3, f) != 3) return 1;
    const int W = dims[0], H = dims[1], C = dims[2], N = W * H;
    std::vector<unsigned char> rgb(N * 3);
    std::vector<float> scores((size_t)C * N);
    if (std::fread(rgb.data(), 1, rgb.size(), f) != rgb.size()) return 1;
    if (std::fread(scores.data(), 4, scores.size(), f) != scores.size()) return 1;
    std::fclose(f);
    const int it = std::atoi(argv[3]);
    const float gsxy = std::atof(argv[4]), gw = std::atof(argv[5]), bsxy = std::atof(argv[6]),
                bsrgb = std::atof(argv[7]), bw = std::atof(argv[8]);
    MatrixXf unary(C, N);
    for (int i = 0; i < N; i++) {
        float mx = -1e30f;
        for (int l = 0; l < C; l++) mx = std::max(mx, scores[(size_t)l * N + i]);
        double s = 0;
        for (int l = 0; l < C; l++) s += std::exp((double)scores[(size_t)l * N + i] - mx);
        for (int l = 0; l < C; l++) unary(l, i) = (float)(-((double)scores[(size_t)l * N + i] - mx - std::log(s)));
    }
    auto t0 = std::chrono::steady_clock::now();
    DenseCRF2D crf(W, H, C);
    crf.setUnaryEnergy(unary);
    crf.addPairwiseGaussian(gsxy, gsxy, new PottsCompatibility(gw), DIAG_KERNEL, NORMALIZE_SYMMETRIC);
    crf.addPairwiseBilateral(bsxy, bsxy, bsrgb, bsrgb, bsrgb, rgb.data(), new PottsCompatibility(bw), DIAG_KERNEL,
                             NORMALIZE_SYMMETRIC);
    MatrixXf Q = crf.inference(it);
    auto t1 = std::chrono::steady_clock::now();
    FILE *o = std::fopen(argv[2], "wb");
    if (!o) { std::perror(argv[2]); return 1; }
    std::fwrite(dims, 4, 3, o);
    std::vector<float> q((size_t)C * N);
    for (int i = 0; i < N; i++)
        for (int l = 0; l < C; l++) q[(size_t)l * N + i] = Q(l, i);
    std::fwrite(q.data(), 4, q.size(), o);
    std::fclose(o);
    // The time, then the peak resident size in bytes (VmHWM).
    long peak_kb = 0;
    if (FILE *st = std::fopen("/proc/self/status", "r")) {
        char line[256];
        while (std::fgets(line, sizeof line, st))
            if (std::sscanf(line, "VmHWM: %ld", &peak_kb) == 1) break;
        std::fclose(st);
    }
    std::printf("%.3f %ld\n", std::chrono::duration<double, std::milli>(t1 - t0).count(), peak_kb * 1024);
    return 0;
}
