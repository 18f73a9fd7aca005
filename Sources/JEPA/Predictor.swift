import CPUKernels
import NNLayers
import TensorCore

/// The I-JEPA predictor (`VisionTransformerPredictor`, src/models/vision_transformer.py): a narrow ViT that takes the
/// context tokens and, for each target block, mask tokens at the target positions, and predicts the target
/// encoder's representations there.
package final class Predictor: ParameterContainer {
    package let embedDim: Int
    package let predictorDim: Int
    package let tokens: Int
    package let predictorEmbed: Linear  // D -> Dp
    package let maskToken: Variable     // (1, 1, Dp)
    package let posEmbed: Variable      // (N, Dp), fixed
    package let blocks: [Block]
    package let norm: LayerNorm
    package let proj: Linear            // Dp -> D

    /// `heads` is the encoder's number of heads (the official `init_model` passes it; head dim Dp / heads).
    package init(gridSize: Int, embedDim: Int, predictorDim: Int, depth: Int, heads: Int, rng: inout RandomGenerator) throws {
        guard predictorDim % heads == 0, predictorDim % 4 == 0 else {
            throw TensorError.incompatibleShapes(
                operation: "Predictor: predictor dim must be divisible by 4 and by heads", [predictorDim], [heads])
        }
        (self.embedDim, self.predictorDim, self.tokens) = (embedDim, predictorDim, gridSize * gridSize)
        predictorEmbed = try Linear(embedDim, predictorDim, rng: &rng)
        maskToken = try officialWeight([1, 1, predictorDim], rng: &rng)
        posEmbed = Variable(try sinCosPositionTable(gridSize: gridSize, dim: predictorDim))
        blocks = try (0..<depth).map { _ in try Block(dim: predictorDim, heads: heads, rng: &rng) }
        norm = try LayerNorm(predictorDim)
        proj = try Linear(predictorDim, embedDim, rng: &rng)
    }

    /// x (nenc B, Kc, D): the context encoder's output; `contextMasks` nenc masks (B, Kc); `targetMasks` npred
    /// masks (B, Kp). Returns (npred nenc B, Kp, D), rows in (target mask, context mask, image) order.
    package func callAsFunction(
        _ x: Variable, contextMasks: [TokenIndices], targetMasks: [TokenIndices], tape: Tape
    ) throws -> Variable {
        let nenc = contextMasks.count, npred = targetMasks.count
        guard nenc > 0, npred > 0, x.shape.count == 3, x.shape[0] % nenc == 0, x.shape[2] == embedDim else {
            throw TensorError.incompatibleShapes(
                operation: "Predictor: x (nenc B, Kc, \(embedDim)) with \(nenc) context and \(npred) target masks", x.shape, [])
        }
        let batch = x.shape[0] / nenc
        // Positions of the tables, gathered per mask (constants: the tables are fixed).
        let posBatch = Variable(try repeatRows(posEmbed.value, batch: batch, pool: tape.engine.storage))  // (B, N, Dp)
        var h = try predictorEmbed(x, tape: tape)
        h = try add(h, try gatherTokens(posBatch, contextMasks, tape: tape.engine.noGrad), tape: tape)
        var targetPos = try gatherTokens(posBatch, targetMasks, tape: tape.engine.noGrad).value  // (npred B, Kp, Dp)
        targetPos = try repeatInterleaveBatch(targetPos, batch: batch, repeat: nenc)
        let predTokens = try addBroadcast(Variable(targetPos), maskToken, tape: tape)
        h = try repeatBatch(h, times: npred, tape: tape)
        let kc = h.shape[1]
        h = try concatTokens(h, predTokens, tape: tape)
        for block in blocks { h = try block(h, recompute: tape.engine.recomputeBlocks, tape: tape) }
        h = try norm(h, tape: tape)
        return try proj(try sliceTokens(h, from: kc, tape: tape), tape: tape)
    }

    package var namedParameters: [(String, Variable)] {
        var out: [(String, Variable)] = [("mask_token", maskToken)]
        out += prefixed("predictor_embed", predictorEmbed)
        for (i, b) in blocks.enumerated() { out += prefixed("predictor_blocks.\(i)", b) }
        return out + prefixed("predictor_norm", norm) + prefixed("predictor_proj", proj)
    }

    /// Parameters plus the fixed table, as this model holds them (predictor_pos_embed (N, Dp)).
    package var stateDict: [(String, Variable)] { [("predictor_pos_embed", posEmbed)] + namedParameters }

    /// The official `VisionTransformerPredictor`'s state_dict: predictor_pos_embed as (1, N, Dp).
    package var stateTensors: [(String, Tensor)] {
        [("predictor_pos_embed", withLeadingAxis(posEmbed.value))] + parameterTensors(namedParameters)
    }
}

/// (N, D) -> (B, N, D): the table repeated for every image (`pos.repeat(B, 1, 1)`).
func repeatRows(_ table: Tensor, batch: Int, pool: StoragePool?) throws -> Tensor {
    var out = try Tensor(uninitialized: [batch] + table.shape, pool: pool)  // written in full below
    let n = table.count
    out.withUnsafeMutableBufferPointer { o in
        table.withUnsafeBufferPointer { t in
            for b in 0..<batch { (o.baseAddress! + b * n).update(from: t.baseAddress!, count: n) }
        }
    }
    return out
}

/// The official `repeat_interleave_batch(x, B, repeat)`: x is cut into chunks of B rows, each chunk tiled
/// `repeat` times in place: [c0, c0, c1, c1, ...] for repeat 2.
package func repeatInterleaveBatch(_ x: Tensor, batch: Int, repeat times: Int) throws -> Tensor {
    guard batch > 0, times > 0, x.shape.count >= 1, x.shape[0] % batch == 0 else {
        throw TensorError.incompatibleShapes(operation: "repeatInterleaveBatch: rows divisible by batch", x.shape, [batch])
    }
    if times == 1 { return x }
    let chunks = x.shape[0] / batch
    let chunk = x.count / chunks
    var out = try Tensor(zeros: [x.shape[0] * times] + x.shape.dropFirst())
    out.withUnsafeMutableBufferPointer { o in
        x.withUnsafeBufferPointer { s in
            for c in 0..<chunks {
                for r in 0..<times {
                    (o.baseAddress! + (c * times + r) * chunk).update(from: s.baseAddress! + c * chunk, count: chunk)
                }
            }
        }
    }
    return out
}
