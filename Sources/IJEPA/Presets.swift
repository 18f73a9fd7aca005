import Foundation

/// Named recipes: the configuration a run starts from before its JSON and overrides (`meta.preset`, `ijepa train
/// --preset NAME`). The run's config.json records the name and every value, so a run reads back as it was made.
/// docs/training.md lists each departure from the official recipe with the measurement behind it.
extension TrainingConfig {
    /// The presets, the default first.
    public static let presetNames = ["official", "small-images"]

    /// The configuration of a preset, or nil for an unknown name.
    /// - "official": the defaults, the official code's recipe (facebookresearch/ijepa, src/train.py) at batch 64.
    /// - "small-images": for 28 px images on a CPU: VICReg's variance (weight 1) and covariance (0.04) terms on the
    ///   context encoder's output (C-JEPA) against the collapse the official loss shows on a 7 x 7 grid, five
    ///   epochs (under an hour on one core of the 2-core VM of docs/training.md, about 35 minutes on both), and
    ///   the probe on the last four blocks over the whole train split.
    public static func preset(_ name: String) -> TrainingConfig? {
        var c = TrainingConfig()
        switch name {
        case "official":
            break
        case "small-images":
            c.optimization.varianceWeight = 1
            c.optimization.covarianceWeight = 0.04
            c.optimization.epochs = 5
            c.evaluation.layers = 4
            c.evaluation.trainSamples = 0
        default:
            return nil
        }
        c.meta.preset = name
        return c
    }

    /// `preset(_:)` for a JSON value, refused with the names there are.
    static func preset(named value: Any, source: String) throws -> TrainingConfig {
        guard let name = value as? String else {
            throw ConfigError(source: source, problem: "meta.preset must be a string, got \(value)")
        }
        guard let c = preset(name) else { throw ConfigError(source: source, problem: unknownPreset(name)) }
        return c
    }

    static func unknownPreset(_ name: String) -> String {
        "unknown meta.preset '\(name)' (known: \(presetNames.joined(separator: ", ")))"
    }
}
