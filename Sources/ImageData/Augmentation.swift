import CPUKernels
import Foundation
import TensorCore

/// The I-JEPA pretraining transform (official `src/transforms.py`): `RandomResizedCrop(outputSize,
/// scale: cropScale, ratio: cropRatio)` with bilinear interpolation, an optional horizontal flip (off in every
/// official config), then `ToTensor` (x / 255) and `Normalize(mean, std)`, written as CHW Float.
///
/// With `randomResizedCrop == false` it is the evaluation transform: the whole image resized to
/// outputSize x outputSize (then the flip, if on, and the normalisation).
///
/// The crop parameters follow torchvision's `RandomResizedCrop.get_params` exactly (10 attempts, log-uniform
/// ratio, Python's round-half-to-even, exclusive `randint` bounds, the clamped centre crop as fallback), drawn
/// from the given `RandomGenerator` instead of torch's global generator. Resampling is `Resample`'s bilinear
/// with half-pixel centres; with `antialias` (default, as PIL which the official pipeline uses) a crop larger
/// than the output is low-pass filtered instead of point-sampled. Values are not rounded to UInt8 after the
/// resize (PIL does; the difference is below 1/255).
package struct Augmentation: Sendable, Codable, Equatable {
    package var outputSize: Int
    /// Fraction of the image area the crop covers, drawn uniformly (official (0.3, 1.0)).
    package var cropScale: ClosedRange<Double>
    /// Crop aspect ratio width / height, drawn log-uniformly (torchvision default (3/4, 4/3)).
    package var cropRatio: ClosedRange<Double>
    /// Mirror with probability 1/2 (official: off).
    package var horizontalFlip: Bool
    /// false: evaluation transform, resize the whole image.
    package var randomResizedCrop: Bool
    /// Low-pass filter when a crop is shrunk (PIL's bilinear); false samples two pixels per output (PyTorch's
    /// `interpolate` without antialias).
    package var antialias: Bool
    /// Per-channel normalisation: (x / 255 - mean[c]) / std[c].
    package var mean: [Float]
    package var std: [Float]

    package static let fashionMNISTMean: [Float] = [0.2860]
    package static let fashionMNISTStd: [Float] = [0.3530]
    package static let imageNetMean: [Float] = [0.485, 0.456, 0.406]
    package static let imageNetStd: [Float] = [0.229, 0.224, 0.225]

    /// The official defaults; mean/std default to the Fashion-MNIST statistics for 1 channel and ImageNet's for
    /// 3 (torchvision's values).
    package init(
        outputSize: Int, channels: Int = 1, cropScale: ClosedRange<Double> = 0.3...1.0,
        cropRatio: ClosedRange<Double> = (3.0 / 4.0)...(4.0 / 3.0), horizontalFlip: Bool = false,
        randomResizedCrop: Bool = true, antialias: Bool = true, mean: [Float]? = nil, std: [Float]? = nil
    ) {
        self.outputSize = outputSize
        self.cropScale = cropScale
        self.cropRatio = cropRatio
        self.horizontalFlip = horizontalFlip
        self.randomResizedCrop = randomResizedCrop
        self.antialias = antialias
        self.mean = mean ?? (channels == 1 ? Self.fashionMNISTMean : channels == 3 ? Self.imageNetMean : [Float](repeating: 0.5, count: channels))
        self.std = std ?? (channels == 1 ? Self.fashionMNISTStd : channels == 3 ? Self.imageNetStd : [Float](repeating: 0.5, count: channels))
    }

    enum CodingKeys: String, CodingKey {
        case outputSize, cropScale, cropRatio, horizontalFlip, randomResizedCrop, antialias, mean, std
    }

    /// Decodes a config where every key but `outputSize` may be left out (official defaults; mean/std by the
    /// number of values given, else Fashion-MNIST gray). Ranges are `[low, high]` arrays.
    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let mean = try c.decodeIfPresent([Float].self, forKey: .mean)
        let std = try c.decodeIfPresent([Float].self, forKey: .std)
        self.init(
            outputSize: try c.decode(Int.self, forKey: .outputSize),
            channels: mean?.count ?? std?.count ?? 1,
            cropScale: try c.decodeIfPresent(ClosedRange<Double>.self, forKey: .cropScale) ?? 0.3...1.0,
            cropRatio: try c.decodeIfPresent(ClosedRange<Double>.self, forKey: .cropRatio) ?? (3.0 / 4.0)...(4.0 / 3.0),
            horizontalFlip: try c.decodeIfPresent(Bool.self, forKey: .horizontalFlip) ?? false,
            randomResizedCrop: try c.decodeIfPresent(Bool.self, forKey: .randomResizedCrop) ?? true,
            antialias: try c.decodeIfPresent(Bool.self, forKey: .antialias) ?? true,
            mean: mean, std: std)
    }

    /// The evaluation transform of this one: same size and normalisation, no random crop, no flip.
    package var evaluation: Augmentation {
        var a = self
        a.randomResizedCrop = false
        a.horizontalFlip = false
        return a
    }

    /// Checks the settings against an image channel count; the message says what is wrong.
    package func validate(channels: Int) throws {
        func bad(_ s: String) -> ImageDataError { ImageDataError(path: "augmentation", problem: s) }
        guard outputSize > 0 else { throw bad("outputSize must be positive (got \(outputSize))") }
        guard cropScale.lowerBound > 0, cropScale.upperBound <= 1 else {
            throw bad("cropScale must lie in (0, 1] (got \(cropScale.lowerBound)...\(cropScale.upperBound))")
        }
        guard cropRatio.lowerBound > 0, cropRatio.upperBound.isFinite else {
            throw bad("cropRatio must be positive and finite (got \(cropRatio.lowerBound)...\(cropRatio.upperBound))")
        }
        guard mean.count == channels, std.count == channels else {
            throw bad("mean and std need one value per channel (\(channels)); got \(mean.count) and \(std.count)")
        }
        guard std.allSatisfy({ $0 > 0 && $0.isFinite }), mean.allSatisfy({ $0.isFinite }) else {
            throw bad("std must be positive and mean finite")
        }
    }

    /// torchvision's `RandomResizedCrop.get_params`: the crop (top i, left j, height h, width w).
    package func cropParameters(width: Int, height: Int, rng: inout RandomGenerator) -> (i: Int, j: Int, h: Int, w: Int) {
        let area = Double(height * width)
        let logLo = log(cropRatio.lowerBound), logHi = log(cropRatio.upperBound)
        for _ in 0..<10 {
            let targetArea = area * (cropScale.lowerBound + (cropScale.upperBound - cropScale.lowerBound) * rng.nextUniform())
            let aspect = exp(logLo + (logHi - logLo) * rng.nextUniform())
            // Python's round(): half to even.
            let w = Int((targetArea * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((targetArea / aspect).squareRoot().rounded(.toNearestOrEven))
            if 0 < w && w <= width && 0 < h && h <= height {
                let i = rng.nextInt(below: height - h + 1)
                let j = rng.nextInt(below: width - w + 1)
                return (i, j, h, w)
            }
        }
        // Fallback: centre crop, clamped to the ratio range.
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < cropRatio.lowerBound {
            h = Int((Double(w) / cropRatio.lowerBound).rounded(.toNearestOrEven))
        } else if inRatio > cropRatio.upperBound {
            w = Int((Double(h) * cropRatio.upperBound).rounded(.toNearestOrEven))
        }
        return ((height - h) / 2, (width - w) / 2, h, w)
    }

    /// Writes one image, (height, width, channels) interleaved UInt8, as normalised Float (channels, outputSize,
    /// outputSize) into `out`. Draws from `rng` only for the random crop and the flip.
    package func apply(
        _ image: ArraySlice<UInt8>, width: Int, height: Int, channels: Int, rng: inout RandomGenerator,
        into out: UnsafeMutablePointer<Float>
    ) {
        precondition(image.count == width * height * channels,
                     "Augmentation.apply: \(image.count) bytes for a \(width)x\(height)x\(channels) image")
        precondition(mean.count == channels && std.count == channels,
                     "Augmentation.apply: mean/std have \(mean.count)/\(std.count) values for \(channels) channels")
        let crop = randomResizedCrop ? cropParameters(width: width, height: height, rng: &rng) : (0, 0, height, width)
        let flip = horizontalFlip && rng.nextUniform() < 0.5
        let s = outputSize, plane = s * s
        var hwc = [Float](repeating: 0, count: plane * channels)
        image.withUnsafeBufferPointer { src in
            hwc.withUnsafeMutableBufferPointer { dst in
                Resample.crop(src.baseAddress!, srcWidth: width, channels: channels, x0: crop.1, y0: crop.0,
                              cw: crop.3, ch: crop.2, outW: s, outH: s, antialias: antialias, flip: flip,
                              into: dst.baseAddress!)
            }
        }
        normalize(hwc, channels: channels, into: out)
    }

    /// The usual ImageNet evaluation transform, as torchvision's `Resize(resize)` then `CenterCrop(outputSize)`
    /// (bilinear, antialiased as PIL) do it: the shorter side scaled to `resize` (the longer one to
    /// int(resize * long / short)), rounded to 8 bits as PIL stores it, then the centre outputSize x outputSize
    /// pixels (top / left offsets rounded half to even, as torchvision's `round`), normalised like `apply`.
    package func applyCentreCrop(
        _ image: [UInt8], width: Int, height: Int, channels: Int, resize: Int, into out: UnsafeMutablePointer<Float>
    ) {
        precondition(image.count == width * height * channels && resize >= outputSize && mean.count == channels,
                     "Augmentation.applyCentreCrop: \(image.count) bytes for \(width)x\(height)x\(channels), resize \(resize)")
        let (w, h) = width <= height ? (resize, max(resize, Int(Double(resize) * Double(height) / Double(width))))
                                     : (max(resize, Int(Double(resize) * Double(width) / Double(height))), resize)
        let resized = Resample.resize(image, width: width, height: height, channels: channels, outW: w, outH: h)
        let s = outputSize
        let top = Int((Double(h - s) / 2).rounded(.toNearestOrEven)), left = Int((Double(w - s) / 2).rounded(.toNearestOrEven))
        var hwc = [Float](repeating: 0, count: s * s * channels)
        for y in 0..<s {
            for x in 0..<s * channels { hwc[y * s * channels + x] = Float(resized[((top + y) * w + left) * channels + x]) }
        }
        normalize(hwc, channels: channels, into: out)
    }

    /// ToTensor + Normalize: (H W, channels) interleaved 0...255 -> (channels, H W) normalised.
    func normalize(_ hwc: [Float], channels: Int, into out: UnsafeMutablePointer<Float>) {
        let plane = hwc.count / channels
        for c in 0..<channels {
            let m = mean[c], sd = std[c]
            let o = out + c * plane
            for p in 0..<plane { o[p] = (hwc[p * channels + c] / 255 - m) / sd }
        }
    }
}

/// The evaluation transform (resize + normalise; no random crop, no flip) of `data`'s images in `range`, as a
/// (range.count, channels, outputSize, outputSize) tensor, for feature extraction. Images are processed on up to
/// `threads` threads; the result does not depend on the thread count.
package func evaluationTensor(_ data: ImageDataset, augmentation: Augmentation, range: Range<Int>,
                              threads: Int = Parallel.hardwareThreads) -> Tensor {
    precondition(range.lowerBound >= 0 && range.upperBound <= data.count, "evaluationTensor: range \(range) outside 0..<\(data.count)")
    let a = augmentation.evaluation
    let s = a.outputSize, c = data.channels, per = c * s * s
    var t = Tensor.zeros(range.count, c, s, s)
    t.withUnsafeMutableBufferPointer { buf in
        let base = buf.baseAddress!
        Parallel.forEach(tasks: range.count, threads: threads) { k, _ in
            var rng = RandomGenerator(seed: 0)  // not drawn from: no random crop, no flip
            a.apply(data.image(range.lowerBound + k), width: data.width, height: data.height, channels: c,
                    rng: &rng, into: base + k * per)
        }
    }
    return t
}
