import Foundation
import TensorCore
import XCTest
import TorchImport

/// The torch.save files written by tools/make_torch_fixtures.py (an official I-JEPA checkpoint of small
/// official modules after one training step, float16 and bfloat16 state dicts, shared-storage views) against
/// the float32 values torch itself gives for them (expected.safetensors).
final class FixtureTests: XCTestCase {
    static let version = "torch-v1"

    func expected() throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let e = try SafeTensors.read(try fixturePath("expected.safetensors"))
        guard e.metadata["version"] == Self.version else {
            XCTFail("expected.safetensors is version \(e.metadata["version"] ?? "none"), the test expects \(Self.version): regenerate with tools/make_torch_fixtures.py")
            throw XCTSkip("stale fixture")
        }
        return e
    }

    /// Every tensor of every fixture equals torch's float32 values bit for bit, and none is missing.
    func testEveryTensorMatchesTorchBitForBit() throws {
        let expected = try expected().tensors
        var compared = 0
        for stem in ["official", "encoder-f16", "encoder-bf16", "views"] {
            let c = try TorchCheckpoint(path: try fixturePath(stem + ".pth"))
            let wanted = Set(expected.keys.filter { $0.hasPrefix(stem + "/") })
            XCTAssertEqual(Set(c.tensorNames.map { stem + "/" + $0 }), wanted, stem)
            for name in c.tensorNames {
                guard let e = expected[stem + "/" + name] else { XCTFail("\(stem): \(name) not in expected"); continue }
                let t = try c.tensor(name)
                XCTAssertEqual(t.shape, e.shape, "\(stem)/\(name)")
                XCTAssertEqual(c.shape(of: name), e.shape, "\(stem)/\(name)")
                // NaN payloads are not compared: torch's own float16 conversion gives different ones for the
                // same input depending on whether the element falls in a vectorised chunk.
                let got = t.scalars.map { $0.isNaN ? Float.nan.bitPattern : $0.bitPattern }
                let want = e.scalars.map { $0.isNaN ? Float.nan.bitPattern : $0.bitPattern }
                XCTAssertEqual(got, want, "\(stem)/\(name)")
                compared += 1
            }
        }
        XCTAssertEqual(compared, expected.count)
    }

    /// Names and shapes of the official checkpoint: the DDP `module.` prefix, pos_embed (1, N, D), the
    /// optimizer's 0-d step tensors, in the order torch wrote them.
    func testOfficialCheckpointNamesAndShapes() throws {
        let c = try TorchCheckpoint(path: try fixturePath("official.pth"))
        let names = c.tensorNames
        XCTAssertEqual(names.first, "encoder.module.pos_embed")
        XCTAssertEqual(c.shape(of: "encoder.module.pos_embed"), [1, 16, 16])
        XCTAssertEqual(c.shape(of: "target_encoder.module.pos_embed"), [1, 16, 16])
        XCTAssertEqual(c.shape(of: "predictor.module.predictor_pos_embed"), [1, 16, 8])
        XCTAssertEqual(c.shape(of: "encoder.module.patch_embed.proj.weight"), [16, 3, 4, 4])
        XCTAssertEqual(c.shape(of: "encoder.module.blocks.1.attn.qkv.weight"), [48, 16])
        XCTAssertEqual(c.shape(of: "predictor.module.mask_token"), [1, 1, 8])
        XCTAssertNil(c.shape(of: "encoder.pos_embed"))
        let prefixes = ["encoder.module.", "predictor.module.", "target_encoder.module.", "opt.state."]
        XCTAssertTrue(names.allSatisfy { n in prefixes.contains { n.hasPrefix($0) } }, "\(names.filter { n in !prefixes.contains { n.hasPrefix($0) } })")
        // File order: encoder, predictor, target encoder, optimizer state.
        let groups = names.map { n in prefixes.firstIndex { n.hasPrefix($0) } ?? -1 }
        XCTAssertEqual(groups, groups.sorted())
        let encoder = names.filter { $0.hasPrefix("encoder.") }.map { String($0.dropFirst("encoder.".count)) }
        let target = names.filter { $0.hasPrefix("target_encoder.") }.map { String($0.dropFirst("target_encoder.".count)) }
        XCTAssertEqual(encoder, target)
        XCTAssertEqual(encoder.count, 1 + 2 + 2 * 12 + 2)  // pos_embed, patch conv, 2 blocks of 12, final norm
        // Optimizer: exp_avg / exp_avg_sq of the parameter's shape, a 0-d step of 1 (one step taken).
        let steps = names.filter { $0.hasPrefix("opt.state.") && $0.hasSuffix(".step") }
        XCTAssertFalse(steps.isEmpty)
        for s in steps {
            XCTAssertEqual(c.shape(of: s), [], s)
            XCTAssertEqual(try c.tensor(s).scalars, [1], s)
            let base = String(s.dropLast(".step".count))
            XCTAssertEqual(c.shape(of: base + ".exp_avg"), c.shape(of: base + ".exp_avg_sq"), base)
        }
        // Parameter k of the groups' `params` lists (encoder then predictor, as init_opt orders them) has state k
        // unless it takes no gradient (the fixed sin-cos tables).
        XCTAssertNil(c.shape(of: "opt.state.0.exp_avg"))  // encoder pos_embed (requires_grad False)
        XCTAssertEqual(c.shape(of: "opt.state.1.exp_avg"), [16, 3, 4, 4])  // patch_embed.proj.weight
    }

    /// The scalars of save_dict and of the AdamW param groups.
    func testOfficialCheckpointValues() throws {
        let c = try TorchCheckpoint(path: try fixturePath("official.pth"))
        // Python's repr of each scalar (exact: Double(String) rounds correctly, JSONSerialization may not).
        let meta = try expected().metadata
        func scalar(_ name: String) throws -> String { try XCTUnwrap(meta["scalar." + name], "metadata scalar.\(name)") }
        let v = c.values
        XCTAssertEqual(v["epoch"], .int(try XCTUnwrap(Int(try scalar("epoch")))))
        XCTAssertEqual(v["batch_size"], .int(try XCTUnwrap(Int(try scalar("batch_size")))))
        XCTAssertEqual(v["world_size"], .int(try XCTUnwrap(Int(try scalar("world_size")))))
        XCTAssertEqual(v["lr"], .double(try XCTUnwrap(Double(try scalar("lr")))))
        XCTAssertEqual(v["loss"], .double(try XCTUnwrap(Double(try scalar("loss")))))
        XCTAssertEqual(v["batch_size"], .int(2))
        XCTAssertEqual(v["world_size"], .int(1))
        XCTAssertEqual(v["lr"], .double(0.0006000000000000001))  // the official warmup: 2e-4 + 0.5 (1e-3 - 2e-4)
        XCTAssertEqual(v["scaler"], TorchValue.none)
        XCTAssertEqual(v["opt.param_groups.0.betas.0"], .double(0.9))
        XCTAssertEqual(v["opt.param_groups.0.betas.1"], .double(0.999))
        XCTAssertEqual(v["opt.param_groups.0.eps"], .double(1e-8))
        XCTAssertEqual(v["opt.param_groups.0.amsgrad"], .bool(false))
        XCTAssertEqual(v["opt.param_groups.0.foreach"], TorchValue.none)
        XCTAssertEqual(v["opt.param_groups.2.WD_exclude"], .bool(true))
        XCTAssertEqual(v["opt.param_groups.2.weight_decay"], .int(0))
        XCTAssertEqual(v["opt.param_groups.2.weight_decay"]?.number, 0)
        XCTAssertEqual(v["opt.param_groups.0.params.0"], .int(0))
        XCTAssertNil(v["opt.param_groups.0.WD_exclude"])
        // The state dicts' _metadata (BUILD attributes) are dropped, not flattened.
        XCTAssertFalse(v.keys.contains { $0.contains("_metadata") })
        XCTAssertFalse(c.tensorNames.contains { $0.contains("_metadata") })
    }

    /// Shared storages: transpose, storage offset, stride 0, 0-d, empty and a float16 transpose.
    func testViewsShareOneStorage() throws {
        let c = try TorchCheckpoint(path: try fixturePath("views.pth"))
        XCTAssertEqual(c.tensorNames, ["base", "transposed", "slice", "column", "expanded", "scalar", "empty", "half_t",
                                       "half_special", "bf16_special"])
        XCTAssertEqual(c.shape(of: "transposed"), [12, 5])
        XCTAssertEqual(c.shape(of: "scalar"), [])
        XCTAssertEqual(c.shape(of: "empty"), [0, 3])
        let base = try c.tensor("base"), t = try c.tensor("transposed")
        XCTAssertEqual(t[3, 2], base[2, 3])
        XCTAssertEqual(try c.tensor("scalar").scalars, [base[4, 11]])
        XCTAssertEqual(try c.tensor("expanded").scalars, Array(repeating: Array(base.scalars[40..<43]), count: 4).flatMap { $0 })
        XCTAssertEqual(try c.tensor("empty").count, 0)
    }

    /// Opening reads no tensor data: storages whose bytes are corrupt still open, and only reading them fails.
    func testOpeningReadsNoTensorData() throws {
        let pickle = P.dict([("a", P.tensor(key: "0", numel: 2, shape: [2], stride: [1])),
                             ("b", P.tensor(key: "1", numel: 2, shape: [2], stride: [1]))])
        let bytes = torchArchive(pickle, storages: [("0", floatBytes([1, 2])), ("1", floatBytes([3, 4]))]) { w in
            w.records[3].crc = 0x1234_5678  // archive/data/1
        }
        try withTempFile("lazy.pth", bytes) { path in
            let c = try TorchCheckpoint(path: path)
            XCTAssertEqual(try c.tensor("a").scalars, [1, 2])
            XCTAssertThrowsError(try c.tensor("b")) { e in
                XCTAssertTrue("\(e)".contains("archive/data/1' is corrupt: CRC-32"), "\(e)")
            }
            XCTAssertThrowsError(try c.tensor("c")) { e in XCTAssertTrue("\(e)".contains("no tensor named 'c'"), "\(e)") }
        }
    }
}
