/// Separable bilinear resampling with half-pixel centres (align_corners=False), the triangle filter of PIL's
/// `resize(BILINEAR)`: output sample x has centre c = (x + 0.5) * in/out in source coordinates and takes the
/// source pixels whose centres lie within `support` of c, weighted by 1 - |distance| / support and normalised
/// over the pixels inside the image (the edge rule equals PyTorch's clamping).
///
/// Upscaling, support is 1: plain bilinear interpolation (PyTorch `interpolate(mode="bilinear")`). Downscaling
/// with `antialias`, the triangle is stretched to the scale factor (as PIL and torchvision's `antialias=True`),
/// so every source pixel contributes; without it, downscaling samples two pixels per output (aliasing).
/// Same size gives the identity exactly (one weight of 1).
struct ResampleAxis {
    /// For output sample o: source indices first[o] ..< first[o] + count[o], weights[o * taps ..< o * taps + count[o]].
    var first: [Int]
    var count: [Int]
    var weights: [Float]
    let taps: Int

    /// Maps the window `start ..< start + inSize` of a source axis onto `outSize` samples.
    init(start: Int, inSize: Int, outSize: Int, antialias: Bool) {
        precondition(inSize > 0 && outSize > 0, "ResampleAxis: sizes must be positive (\(inSize) -> \(outSize))")
        let scale = Double(inSize) / Double(outSize)
        let filterScale = antialias ? max(scale, 1) : 1
        let support = filterScale
        taps = Int((2 * support).rounded(.up)) + 2
        first = [Int](repeating: 0, count: outSize)
        count = [Int](repeating: 0, count: outSize)
        weights = [Float](repeating: 0, count: outSize * taps)
        var w = [Double](repeating: 0, count: taps)
        for o in 0..<outSize {
            let centre = (Double(o) + 0.5) * scale
            let lo = max(0, Int((centre - support + 0.5).rounded(.down)))
            let hi = min(inSize, Int((centre + support + 0.5).rounded(.down)))
            // Keep only the non-zero weights, so the same size maps each pixel to itself with weight exactly 1.
            var n = 0, firstIndex = -1, total = 0.0
            for x in lo..<max(lo, hi) {
                let v = max(0, 1 - abs((Double(x) + 0.5 - centre) / filterScale))
                if v > 0 {
                    if firstIndex < 0 { firstIndex = x }
                    // Weights are contiguous in x (the triangle has no holes): store by offset from the first.
                    w[x - firstIndex] = v
                    n = x - firstIndex + 1
                    total += v
                }
            }
            if firstIndex < 0 {  // cannot happen for positive sizes; keep a nearest-pixel fallback
                firstIndex = min(inSize - 1, max(0, Int(centre)))
                w[0] = 1; n = 1; total = 1
            }
            first[o] = start + firstIndex
            count[o] = n
            for k in 0..<n { weights[o * taps + k] = Float(w[k] / total) }
        }
    }
}

enum Resample {
    /// Resamples the crop (x0, y0, cw, ch) of an interleaved UInt8 image (`srcWidth` pixels per row, `channels`
    /// channels) to outW x outH, as Float in the 0...255 range, (outH, outW, channels) interleaved. With `flip` the
    /// output columns are mirrored (the same as mirroring the crop first: the filter is symmetric).
    static func crop(
        _ src: UnsafePointer<UInt8>, srcWidth: Int, channels: Int,
        x0: Int, y0: Int, cw: Int, ch: Int, outW: Int, outH: Int, antialias: Bool, flip: Bool = false,
        into out: UnsafeMutablePointer<Float>
    ) {
        let ax = ResampleAxis(start: x0, inSize: cw, outSize: outW, antialias: antialias)
        let ay = ResampleAxis(start: y0, inSize: ch, outSize: outH, antialias: antialias)
        let c = channels
        // Horizontal pass over the crop's rows: (ch, outW, c).
        var tmp = [Float](repeating: 0, count: ch * outW * c)
        tmp.withUnsafeMutableBufferPointer { t in
            for r in 0..<ch {
                let row = src + (y0 + r) * srcWidth * c
                let trow = t.baseAddress! + r * outW * c
                for o in 0..<outW {
                    let dst = trow + (flip ? outW - 1 - o : o) * c
                    let f = ax.first[o], n = ax.count[o], wb = o * ax.taps
                    for k in 0..<c {
                        var acc: Float = 0
                        for i in 0..<n { acc += ax.weights[wb + i] * Float(row[(f + i) * c + k]) }
                        dst[k] = acc
                    }
                }
            }
            // Vertical pass into the output.
            let rowLen = outW * c
            for o in 0..<outH {
                let f = ay.first[o] - y0, n = ay.count[o], wb = o * ay.taps
                let dst = out + o * rowLen
                for j in 0..<rowLen {
                    var acc: Float = 0
                    for i in 0..<n { acc += ay.weights[wb + i] * t[(f + i) * rowLen + j] }
                    dst[j] = acc
                }
            }
        }
    }

    /// Resizes a whole UInt8 image to outW x outH (antialiased triangle filter), rounding to UInt8.
    static func resize(_ src: [UInt8], width: Int, height: Int, channels: Int, outW: Int, outH: Int) -> [UInt8] {
        if width == outW && height == outH { return src }
        var f = [Float](repeating: 0, count: outW * outH * channels)
        src.withUnsafeBufferPointer { s in
            f.withUnsafeMutableBufferPointer { o in
                crop(s.baseAddress!, srcWidth: width, channels: channels, x0: 0, y0: 0, cw: width, ch: height,
                     outW: outW, outH: outH, antialias: true, into: o.baseAddress!)
            }
        }
        return f.map { UInt8(max(0, min(255, $0.rounded()))) }
    }
}
