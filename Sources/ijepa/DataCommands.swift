import ArgumentParser
import CPUKernels
import Foundation
import IJEPA
import ImageData
import JEPA
import TensorCore

struct Masks: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw the context and target blocks of one batch over sample images, into a PNG.",
        discussion: """
            Blue-tinted patches: the context block (what the context encoder sees);
            coloured patches: the target blocks (what the predictor must predict, one
            colour per block); dimmed patches: seen only by the target encoder. The masks
            are exactly those of training step --step for the configuration's seed.

            Examples:
              ijepa masks --output masks.png
              ijepa masks --set mask.fixed=true --images 12 --output fixed-masks.png
            """)

    @OptionGroup var config: ConfigOptions

    @Option(help: "Where to write the PNG.")
    var output = "masks.png"

    @Option(help: "Images to draw (the batch size of the drawn masks; the official trimming depends on it).")
    var images = 8

    @Option(help: "Training step whose masks are drawn.")
    var step = 0

    func run() throws {
        try userFacing {
            let cfg = try config.load()
            guard images >= 1 && images <= 64 else { throw ValidationError("--images must be in 1...64") }
            let (_, test) = try loadDatasets(cfg, threads: Parallel.hardwareThreads)
            let sample = test.subset(Array(0..<min(images, test.count)))
            let collator = try cfg.maskCollator()
            let m = collator.sample(batch: sample.count, step: step, seed: UInt64(cfg.meta.seed))
            let g = cfg.data.cropSize / cfg.mask.patchSize
            let pic = maskPicture(images: sample, maskBatch: m, gridSize: g, scale: max(1, 224 / max(sample.width, 1)))
            try PNGCodec.write(path: output, width: pic.width, height: pic.height, channels: 3, pixels: pic.pixels)
            print("wrote \(output): \(sample.count) images, grid \(g)x\(g); context block \(m.contextBlock.h)x\(m.contextBlock.w) -> \(m.context.first?.count ?? 0) patches kept; \(m.targets.count) target blocks \(m.targetBlock.h)x\(m.targetBlock.w) (\(m.targets.first?.count ?? 0) patches)\(m.relaxedContexts > 0 ? "; \(m.relaxedContexts) contexts relaxed" : "")")
        }
    }
}

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write average-pooled target-encoder features of a split of any data set to a safetensors file.",
        discussion: """
            Output tensors: "features" (n, D) float32 and "labels" (n) float32, plus
            metadata (checkpoint, data set, split, step, encoder). The data set is the
            one the model was trained on unless --data-root or --image-folder names
            another.

            With --images, the given PNG files (or every .png under the given folders,
            sorted) are embedded instead, through the library's Encoder: "features"
            (n, D) and the file names in the metadata key "files" (JSON list).

            Examples:
              ijepa embed --out runs/fashion-mnist --split test --output
                  test-features.safetensors
              ijepa embed --out runs/fashion-mnist --data-root data/digits-idx --output
                  digits.safetensors
              ijepa embed --out runs/fashion-mnist --images shoe.png photos/ --output
                  mine.safetensors
            """)

    @OptionGroup var model: TrainedModelOptions

    @Option(help: "train or test.")
    var split = "test"

    @Option(parsing: .upToNextOption, help: "PNG files or folders of PNGs to embed instead of a data set split.")
    var images: [String] = []

    @Option(help: "With --images: the target (EMA) or the context encoder.")
    var network = "target"

    @Option(help: "With --images or --tensors: the encoder's heads, for a checkpoint whose width is no official preset's.")
    var heads: Int?

    @Option(help: "Embed already preprocessed inputs instead: a safetensors file whose tensor \"images\" is (n, C, S, S) (parity checks against other engines).")
    var tensors: String?

    @Option(help: "The safetensors file to write.")
    var output: String

    @OptionGroup var runOptions: RunOptions

    func run() throws {
        let engine = try runOptions.engine()
        try userFacing {
            if !images.isEmpty || tensors != nil { return try embedFiles(engine: engine) }
            guard split == "train" || split == "test" else { throw ValidationError("--split must be train or test") }
            let trained = try model.open()
            let cfg = trained.config
            let (train, test) = try loadDatasets(cfg, threads: engine.threads)
            let data = split == "train" ? train : test
            let f = try encoderFeatures(trained.evaluatedEncoder, data: data, augmentation: augmentation(cfg).evaluation,
                                        layers: cfg.evaluation.layers, engine: engine)
            let labels = try Tensor(shape: [data.count], values: data.labels.map(Float.init))
            let step = trained.state.map { "\($0.stepsDone)" } ?? "unknown"
            try SafeTensors.write([("features", f), ("labels", labels)],
                                  metadata: ["checkpoint": trained.path, "dataset": data.name, "split": split, "step": step,
                                             "encoder": "\(cfg.evaluation.encoder) encoder, average-pooled"], to: output)
            print("wrote \(output): features \(f.shape), labels (\(data.count)) of \(data.name) from step \(step)")
        }
    }

    /// `--images`: the files through `Encoder`, as an app would embed them.
    func embedFiles(engine: Engine) throws {
        guard let net = Encoder.Network(rawValue: network) else { throw ValidationError("--network must be target or context") }
        guard model.dataRoot == nil, model.imageFolder == nil, model.overrides.isEmpty else {
            throw ValidationError("--images embeds files: --data-root, --image-folder and --set do not apply")
        }
        guard images.isEmpty || tensors == nil else { throw ValidationError("give --images or --tensors, not both") }
        let files = try pngFiles(images)
        let encoder = try Encoder(checkpoint: model.checkpoint ?? model.out + "/checkpoint.safetensors", network: net,
                                  config: model.configPath, heads: heads)
        encoder.engine = engine
        let features: Tensor
        if let tensors {
            let input = try SafeTensorsFile(path: tensors)
            guard input.shape(of: "images") != nil else { throw SafeTensorsError(path: tensors, problem: "no tensor \"images\"") }
            features = try encoder.embed(preprocessed: try input.tensor("images"))
        } else {
            features = try encoder.embed(try files.map { try Image(contentsOfFile: $0) })
        }
        let list = String(decoding: try JSONSerialization.data(withJSONObject: files), as: UTF8.self)
        try SafeTensors.write([("features", features)],
                              metadata: ["checkpoint": encoder.source, "files": list,
                                         "encoder": "\(network) encoder, average-pooled"], to: output)
        print("wrote \(output): features \(features.shape) from \(encoder.source) (\(encoder.architecture.depth) blocks of \(encoder.dimension), \(encoder.architecture.imageSize) px)")
    }
}

/// The PNG files named, folders expanded to the .png files under them (sorted); an error names what is missing.
func pngFiles(_ paths: [String]) throws -> [String] {
    var out: [String] = []
    for p in paths {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
            throw ImageDataError(path: p, problem: "no such file or folder")
        }
        if !isDir.boolValue { out.append(p); continue }
        let found = (FileManager.default.enumerator(atPath: p)?.compactMap { $0 as? String } ?? [])
            .filter { $0.lowercased().hasSuffix(".png") }.sorted().map { p + "/" + $0 }
        guard !found.isEmpty else { throw ImageDataError(path: p, problem: "holds no .png files") }
        out += found
    }
    return out
}

struct ExportPNG: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-png",
        abstract: "Export an IDX data set (Fashion-MNIST by default) as an ImageFolder of PNGs: <to>/<label>_<class>/<n>.png.",
        discussion: """
            Example:
              ijepa export-png --split test --to /tmp/fmnist-test
              ijepa train --set data.dataset=image-folder --set
                  data.image_folder=/tmp/fmnist-train ...
            """)

    @Option(help: "Folder with the IDX files (train-images-idx3-ubyte.gz, ...).")
    var idx = FashionMNIST.defaultDirectory

    @Option(help: "train or test.")
    var split = "train"

    @Option(help: "Target folder (must not exist or be empty, unless --overwrite).")
    var to: String

    @Option(help: "Export only the first N images.")
    var limit: Int?

    @Flag(help: "Write into a non-empty folder.")
    var overwrite = false

    func run() throws {
        try userFacing {
            var data = try FashionMNIST.load(split: split, directory: idx)
            if let limit { data = data.subset(Array(0..<min(max(limit, 0), data.count))) }
            try ImageFolder.export(data, to: to, overwrite: overwrite)
            print("wrote \(data.count) PNGs in \(data.classNames.count) class folders under \(to)")
        }
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Convert an official I-JEPA checkpoint (torch.save, e.g. facebookresearch/ijepa's ViT-H/14) to safetensors.",
        discussion: """
            Reads the zip archive in Swift (its pickle is parsed, never run: only the
            state dicts' own types are accepted) and writes the encoder, predictor and
            target encoder under our names (module. prefixes removed), with a training
            configuration that describes the architecture (inferred from the shapes;
            heads from the official preset for the width, or --heads) and the ImageNet
            evaluation preprocessing. One tensor is held at a time.

            Examples:
              ijepa import IN1K-vit.h.14-300e.pth.tar --output vith14.safetensors
              ijepa embed --checkpoint vith14.safetensors --images photos/ --output f.safetensors
              ijepa probe --checkpoint vith14.safetensors --image-folder data/train
                  --test-folder data/test
            """)

    @Argument(help: "The torch.save checkpoint.")
    var file: String

    @Option(help: "The safetensors file to write.")
    var output: String

    @Option(help: "Heads of the encoder, when its width is no official preset's.")
    var heads: Int?

    func run() throws {
        try userFacing {
            let r = try importTorchCheckpoint(file, to: output, heads: heads)
            let a = r.architecture
            print("wrote \(output): encoder \(r.networks["encoder"] ?? 0), predictor \(r.networks["predictor"] ?? 0), target_encoder \(r.networks["target_encoder"] ?? 0) tensors; ViT \(a.embedDim) wide, \(a.depth) blocks, \(a.heads) heads, patch \(a.patchSize), \(a.imageSize) px; predictor \(r.config.meta.predEmbDim) x \(r.config.meta.predDepth)\(r.values.isEmpty ? "" : "; " + r.values.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        }
    }
}
