#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A per-op profiler for training steps: while an engine carries it (`Engine.profiler`), every op reports
/// its forward time (the time since the previous op finished, so the glue between ops is charged to the op
/// that follows it and nothing between two ops is lost), its backward time (measured around its backward
/// closure, under the phase that was current when the op ran forward), and FLOP and byte estimates; named
/// regions (`region`) cover what is not an op (optimizer, EMA, data, masks). Rows are keyed by
/// (phase, op, pass). Not thread-safe: one training loop drives it; the kernels it times may be parallel.
public final class OpProfiler: @unchecked Sendable {
    public struct Row: Sendable {
        public var phase: String
        public var op: String
        public var pass: String        // "forward", "backward", or "-" for regions
        public var calls = 0
        public var seconds = 0.0
        public var flops = 0.0
        public var bytes = 0.0
    }

    public private(set) var rows: [Row] = []
    private var index: [String: Int] = [:]
    /// The phase new ops are charged to (e.g. target, context, predictor, loss).
    package var phase = "other"
    /// The pass an op's forward is charged to: "recompute" while a checkpointed block runs again in the
    /// backward pass (`recomputed`), so its cost shows as its own rows.
    private var forwardPass = "forward"
    private var lastMark = OpProfiler.now()

    public init() {}

    package static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Starts a new phase. The time since the last op or region (glue code between phases: index
    /// bookkeeping, copies outside ops) is charged to the phase that ends, as "glue".
    package func begin(_ phase: String) {
        let t = OpProfiler.now()
        if t > lastMark { add(phase: self.phase, op: "glue", pass: "-", seconds: t - lastMark, flops: 0, bytes: 0) }
        self.phase = phase
        lastMark = t
    }

    /// Marks the start of a step: what happened before (outside the step) is not charged to anything.
    package func startStep() {
        phase = "step"
        lastMark = OpProfiler.now()
    }

    package func add(phase: String, op: String, pass: String, seconds: Double, flops: Double, bytes: Double) {
        let key = phase + "\u{1}" + op + "\u{1}" + pass
        let i: Int
        if let j = index[key] {
            i = j
        } else {
            i = rows.count
            index[key] = i
            rows.append(Row(phase: phase, op: op, pass: pass))
        }
        rows[i].calls += 1
        rows[i].seconds += seconds
        rows[i].flops += flops
        rows[i].bytes += bytes
    }

    /// An op's forward pass ended now.
    func forward(op: String, flops: Double, bytes: Double) {
        let t = OpProfiler.now()
        add(phase: phase, op: op, pass: forwardPass, seconds: t - lastMark, flops: flops, bytes: bytes)
        lastMark = t
    }

    /// Times `body` as a region of the current phase (work that is not an op).
    package func region<T>(_ name: String, flops: Double = 0, bytes: Double = 0, _ body: () throws -> T) rethrows -> T {
        let t0 = OpProfiler.now()
        defer {
            let t1 = OpProfiler.now()
            add(phase: phase, op: name, pass: "-", seconds: t1 - t0, flops: flops, bytes: bytes)
            lastMark = t1
        }
        return try body()
    }

    /// `region` of `profiler` under `phase`, or just `body` when there is none.
    package static func measure<T>(
        _ profiler: OpProfiler?, _ phase: String, _ name: String, flops: Double = 0, _ body: () throws -> T
    ) rethrows -> T {
        guard let p = profiler else { return try body() }
        p.begin(phase)
        return try p.region(name, flops: flops, body)
    }

    /// Runs a backward pass; the time it spends outside the ops' own backward closures (walking the tape,
    /// releasing activation gradients) is charged to "backward / tape bookkeeping".
    package static func backwardPass(_ profiler: OpProfiler?, _ body: () throws -> Void) rethrows {
        guard let p = profiler else { return try body() }
        let inOps = { p.rows.reduce(0.0) { $0 + ($1.pass == "backward" || $1.pass == "recompute" ? $1.seconds : 0) } }
        let before = inOps(), t0 = now()
        try body()
        let t1 = now()
        p.add(phase: "backward", op: "tape bookkeeping", pass: "-", seconds: (t1 - t0) - (inOps() - before), flops: 0, bytes: 0)
        p.lastMark = t1
    }

    /// Runs `body` (a checkpointed block's forward, again, inside the backward pass) with its ops charged to
    /// `phase` under the pass "recompute"; the time before its first op is not charged to anything.
    static func recomputing<T>(_ profiler: OpProfiler?, phase: String?, _ body: () throws -> T) rethrows -> T {
        guard let p = profiler, let phase else { return try body() }
        let (savedPhase, savedPass) = (p.phase, p.forwardPass)
        (p.phase, p.forwardPass, p.lastMark) = (phase, "recompute", now())
        defer { (p.phase, p.forwardPass) = (savedPhase, savedPass) }
        return try body()
    }


    public var totalSeconds: Double { rows.reduce(0) { $0 + $1.seconds } }

    public func reset() {
        rows.removeAll()
        index.removeAll()
        lastMark = OpProfiler.now()
    }
}

/// FLOP estimates of one op: (forward, backward). Matmuls at 2 per multiply-add; row kernels by their
/// arithmetic per element (LayerNorm 8 forward / 12 backward, GELU with erf ~20 / 30, adds 1 / 2).
struct OpCost {
    var forward: Double
    var backward: Double
    static let zero = OpCost(forward: 0, backward: 0)
    static func elementwise(_ n: Int, _ f: Double, _ b: Double) -> OpCost { OpCost(forward: f * Double(n), backward: b * Double(n)) }
}

/// Reports an op's forward pass to `profiler` and wraps its backward closure in a timer.
@inline(__always)
func profiled(
    _ profiler: OpProfiler?, _ op: String, cost: OpCost, bytes: Int, _ backward: @escaping () -> Void
) -> () -> Void {
    guard let p = profiler else { return backward }
    p.forward(op: op, flops: cost.forward, bytes: Double(bytes))
    let phase = p.phase
    return {
        let t0 = OpProfiler.now()
        backward()
        p.add(phase: phase, op: op, pass: "backward", seconds: OpProfiler.now() - t0,
              flops: cost.backward, bytes: 2 * Double(bytes))
    }
}

extension OpProfiler {
    /// The profile as a table, per step over `steps` steps, rows by time; `wallSeconds` is the measured wall
    /// time of those steps, so the last line says how much of it the rows account for.
    public func table(steps: Int, wallSeconds: Double) -> String {
        let n = Double(max(steps, 1))
        var lines = ["phase      op                 pass       calls   ms/step  share   GFLOP/step  GFLOP/s   MB/step"]
        for r in rows.sorted(by: { $0.seconds > $1.seconds }) {
            let gf = r.seconds > 0 ? r.flops / r.seconds / 1e9 : 0
            lines.append(
                r.phase.padding(11) + r.op.padding(19) + r.pass.padding(9)
                    + fixed(Double(r.calls) / n, 7, 1) + fixed(1e3 * r.seconds / n, 10, 2)
                    + fixed(100 * r.seconds / max(wallSeconds, 1e-12), 6, 1) + "%"
                    + fixed(r.flops / n / 1e9, 12, 4) + fixed(gf, 9, 1) + fixed(r.bytes / n / 1e6, 10, 1))
        }
        let total = totalSeconds
        lines.append(String(repeating: "-", count: 96))
        lines.append("accounted for " + fixed(1e3 * total / n, 0, 1) + " of " + fixed(1e3 * wallSeconds / n, 0, 1)
                     + " ms per step (" + fixed(100 * total / max(wallSeconds, 1e-12), 0, 1) + " %); FLOPs "
                     + fixed(rows.reduce(0) { $0 + $1.flops } / n / 1e9, 0, 3) + " GFLOP per step")
        return lines.joined(separator: "\n")
    }

    /// One JSON object per row (per-step values), for tools.
    public func jsonLines(steps: Int, wallSeconds: Double) -> [String] {
        let n = Double(max(steps, 1))
        return rows.sorted(by: { $0.seconds > $1.seconds }).map { r in
            "{\"phase\": \"\(r.phase)\", \"op\": \"\(r.op)\", \"pass\": \"\(r.pass)\", \"callsPerStep\": \(Double(r.calls) / n), "
                + "\"msPerStep\": \(1e3 * r.seconds / n), \"share\": \(r.seconds / max(wallSeconds, 1e-12)), "
                + "\"flopsPerStep\": \(r.flops / n), \"gflops\": \(r.seconds > 0 ? r.flops / r.seconds / 1e9 : 0), "
                + "\"bytesPerStep\": \(r.bytes / n)}"
        }
    }
}

private func fixed(_ v: Double, _ width: Int, _ decimals: Int) -> String {
    var s = v.isFinite ? String(Int((abs(v) * pow(10, Double(decimals))).rounded())) : "nan"
    if v.isFinite && decimals > 0 {
        while s.count <= decimals { s = "0" + s }
        s.insert(".", at: s.index(s.endIndex, offsetBy: -decimals))
    }
    if v < 0 && v.isFinite { s = "-" + s }
    return String(repeating: " ", count: max(0, width - s.count)) + s
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
