import ImageData
import JEPA
import TensorCore

/// Draws the masks of one batch over its images, one column per image, as an RGB picture:
/// - the image itself, enlarged (gray images as gray);
/// - context patches at full brightness with a blue tint, each target block in its own colour, and every
///   other patch dimmed (those are seen by the target encoder only).
/// A patch that is both context and target (possible only with allow_overlap or after relaxation) shows the
/// target colour with the blue tint.
package func maskPicture(
    images: ImageDataset, maskBatch: MaskBatch, gridSize g: Int, scale: Int = 8
) -> (width: Int, height: Int, pixels: [UInt8]) {
    let n = images.count
    let cell = images.width * scale, gap = 4
    let width = n * cell + (n + 1) * gap, height = cell + 2 * gap
    var out = [UInt8](repeating: 255, count: width * height * 3)
    let targetColours: [(Float, Float, Float)] = [(0.95, 0.25, 0.2), (0.2, 0.75, 0.25), (0.95, 0.65, 0.1),
                                                  (0.65, 0.3, 0.85), (0.1, 0.75, 0.8), (0.9, 0.35, 0.6)]
    let patchPixels = Double(images.width) / Double(g)
    for b in 0..<n {
        var role = [Int](repeating: -1, count: g * g)  // -1 unused, -2 context, t >= 0 target block t
        var inContext = [Bool](repeating: false, count: g * g)
        for (t, m) in maskBatch.targets.enumerated() {
            for k in 0..<m.count { role[Int(m.indices[b * m.count + k])] = t }
        }
        for m in maskBatch.context {
            for k in 0..<m.count { inContext[Int(m.indices[b * m.count + k])] = true }
        }
        let img = images.image(b)
        for y in 0..<cell {
            for x in 0..<cell {
                let sy = y / scale, sx = x / scale
                let p = (sy * images.width + sx) * images.channels
                let base = img.startIndex + p
                var rgb: (Float, Float, Float) = images.channels == 1
                    ? (Float(img[base]), Float(img[base]), Float(img[base]))
                    : (Float(img[base]), Float(img[base + 1]), Float(img[base + 2]))
                let patch = min(Int(Double(sy) / patchPixels), g - 1) * g + min(Int(Double(sx) / patchPixels), g - 1)
                let edge = x % Int(patchPixels * Double(scale)) == 0 || y % Int(patchPixels * Double(scale)) == 0
                if role[patch] >= 0 {
                    let c = targetColours[role[patch] % targetColours.count]
                    rgb = (0.45 * rgb.0 + 140 * c.0, 0.45 * rgb.1 + 140 * c.1, 0.45 * rgb.2 + 140 * c.2)
                } else if !inContext[patch] {
                    rgb = (rgb.0 * 0.25, rgb.1 * 0.25, rgb.2 * 0.25)
                }
                if inContext[patch] { rgb = (rgb.0 * 0.8, rgb.1 * 0.85, min(255, rgb.2 * 0.8 + 70)) }
                if edge { rgb = (rgb.0 * 0.7, rgb.1 * 0.7, rgb.2 * 0.7) }
                let o = ((gap + y) * width + gap + b * (cell + gap) + x) * 3
                out[o] = UInt8(max(0, min(255, rgb.0)))
                out[o + 1] = UInt8(max(0, min(255, rgb.1)))
                out[o + 2] = UInt8(max(0, min(255, rgb.2)))
            }
        }
    }
    return (width, height, out)
}
